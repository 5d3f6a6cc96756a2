package kafka

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/zulip-bridge/zulip-bridge/internal/tlsfiles"
)

// newTransport returns the connection pool shared by the writer and the
// read-back, with the configured TLS and SASL.
func newTransport(c Config) (*kafka.Transport, error) {
	t := &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: c.DialTimeout}).DialContext,
		DialTimeout: c.DialTimeout,
		ClientID:    c.ClientID,
	}
	if c.tlsEnabled() {
		cfg, err := tlsConfig(c)
		if err != nil {
			return nil, err
		}
		t.TLS = cfg
	}
	mech, err := saslMechanism(c)
	if err != nil {
		return nil, err
	}
	t.SASL = mech
	return t, nil
}

func tlsConfig(c Config) (*tls.Config, error) {
	cfg, err := tlsfiles.Load(
		tlsfiles.File{Var: "BRIDGE_KAFKA_TLS_CA", Path: c.TLSCA, Example: "/etc/kafka/ca.pem"},
		tlsfiles.File{Var: "BRIDGE_KAFKA_TLS_CERT", Path: c.TLSCert, Example: "/etc/kafka/client.pem"},
		tlsfiles.File{Var: "BRIDGE_KAFKA_TLS_KEY", Path: c.TLSKey, Example: "/etc/kafka/client-key.pem"},
	)
	if err != nil {
		return nil, err
	}
	cfg.ServerName = c.TLSServerName
	cfg.InsecureSkipVerify = c.TLSInsecure //nolint:gosec // opt-in, documented as tests only
	return cfg, nil
}

func saslMechanism(c Config) (sasl.Mechanism, error) {
	switch strings.ToLower(c.SASLMechanism) {
	case "":
		return nil, nil
	case MechanismPlain:
		return plain.Mechanism{Username: c.Username, Password: c.password()}, nil
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if strings.EqualFold(c.SASLMechanism, MechanismSCRAMSHA512) {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, c.password())
		if err == nil {
			return m, nil
		}
		// The SCRAM library quotes the offending string in its error, which
		// would put the password in our logs: say which one it was instead.
		if _, uerr := scram.Mechanism(algo, c.Username, ""); uerr != nil {
			return nil, errors.New("BRIDGE_KAFKA_USERNAME: contains characters SCRAM does not allow (SASLprep, RFC 4013)")
		}
		return nil, errors.New("BRIDGE_KAFKA_PASSWORD: contains characters SCRAM does not allow (SASLprep, RFC 4013)")
	default:
		return nil, errors.New("BRIDGE_KAFKA_SASL_MECHANISM: unknown mechanism " + c.SASLMechanism)
	}
}

func compression(name string) kafka.Compression {
	switch strings.ToLower(name) {
	case CompressionGzip:
		return kafka.Gzip
	case CompressionSnappy:
		return kafka.Snappy
	case CompressionLz4:
		return kafka.Lz4
	case CompressionZstd:
		return kafka.Zstd
	default:
		return 0
	}
}
