package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
)

// File is one PEM file and the variable that names it.
type File struct {
	Var     string // e.g. BRIDGE_NATS_TLS_CA
	Path    string // "" when the variable is not set
	Example string // a valid value of Var, for the error
}

func (f File) error(problem string) error {
	return &envconfig.Error{Key: f.Var, Problem: problem, Example: f.Example}
}

// Load reads the CA bundle (which replaces the system roots) and the client
// certificate and key, any of them unset, into a client configuration of
// TLS 1.2 or later. An unset key with a set certificate means the
// certificate file holds the key too. Every error is an *envconfig.Error
// naming the variable of the file at fault; none shows key material.
func Load(ca, cert, key File) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca.Path != "" {
		pem, err := os.ReadFile(ca.Path)
		if err != nil {
			return nil, ca.error(Problem(ca.Path, err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, ca.error(fmt.Sprintf("%s holds no PEM certificate", ca.Path))
		}
		cfg.RootCAs = pool
	}
	switch {
	case cert.Path == "" && key.Path != "":
		return nil, key.error(fmt.Sprintf("is set without %s: set both", cert.Var))
	case cert.Path == "":
		return cfg, nil
	}
	keyPath := key.Path
	if keyPath == "" {
		keyPath = cert.Path
	}
	if _, err := os.Stat(cert.Path); err != nil {
		return nil, cert.error(Problem(cert.Path, err))
	}
	if _, err := os.Stat(keyPath); err != nil {
		return nil, key.error(Problem(keyPath, err))
	}
	pair, err := tls.LoadX509KeyPair(cert.Path, keyPath)
	if err != nil {
		// The error describes the PEM blocks, never the key bytes.
		return nil, cert.error(fmt.Sprintf("cannot load %s with the key %s: %v", cert.Path, keyPath, err))
	}
	cfg.Certificates = []tls.Certificate{pair}
	return cfg, nil
}

// Problem describes a file that cannot be read, without the operation a
// *fs.PathError repeats: "cannot read /etc/x.pem: no such file or directory".
func Problem(path string, err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("cannot read %s: %v", path, err)
}
