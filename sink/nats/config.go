package nats

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/tlsfiles"
)

// Config is the NATS part of the bridge's configuration. Like every Config
// of the bridge, its zero value means the documented defaults (each written
// on its field, as the envDefault tag): JetStream publishing with
// confirmations into the stream ZULIP, created when missing. Only the URL
// (or an in-process connection) must be given.
type Config struct {
	// URL is a comma-separated list of NATS server URLs (nats://, tls://,
	// ws://, wss://). Empty means the bridge runs an embedded server; the
	// caller then puts that server's URL here, or passes an in-process
	// connection with WithConnectOptions, before calling New.
	URL string `env:"BRIDGE_NATS_URL" example:"nats://nats:4222" help:"NATS server URLs, comma-separated; unset = start the embedded server"`

	// SubjectPrefix is the first token (or tokens) of every subject the
	// sink publishes, the mapping's: a stream the sink creates captures
	// <prefix>.>. Empty means zulip. The mapping's Config validates it.
	SubjectPrefix string `env:"BRIDGE_SUBJECT_PREFIX" envDefault:"zulip" example:"acme.zulip" help:"first token of every NATS subject and Kafka topic"`

	// JetStream publishes into a stream and waits for its acknowledgements.
	// Nil (the zero value) means true, the safe choice; false publishes
	// with core NATS, which is at-most-once.
	JetStream *bool `env:"BRIDGE_NATS_JETSTREAM" envDefault:"true" example:"true" help:"true: JetStream with acknowledgements; false: core NATS, at-most-once"`

	// Stream is the JetStream stream that captures <prefix>.>. Empty means
	// ZULIP.
	Stream string `env:"BRIDGE_NATS_STREAM" envDefault:"ZULIP" example:"ZULIP" help:"JetStream stream to publish into"`

	// CreateStream creates Stream, with the settings below, when it does
	// not exist. An existing stream is used as it is: its owner manages it.
	// Nil (the zero value) means true, so that the zero-setup embedded
	// server works.
	CreateStream *bool `env:"BRIDGE_NATS_CREATE_STREAM" envDefault:"true" example:"false" help:"create the stream (capturing <prefix>.>) if missing; an existing stream is never changed"`

	// DuplicateWindow is how long the stream remembers Nats-Msg-Id values
	// to drop duplicates. Exactly-once does not depend on it alone (see
	// PublishedSince), but a longer window makes retries cheaper. Zero
	// means 2m.
	DuplicateWindow time.Duration `env:"BRIDGE_NATS_DUPLICATE_WINDOW" envDefault:"2m" example:"2m" help:"duplicate window of a created stream"`

	// MaxAge limits how long a created stream keeps messages; 0 = forever.
	MaxAge time.Duration `env:"BRIDGE_NATS_MAX_AGE" envDefault:"0s" example:"168h" help:"max message age of a created stream; 0s = unlimited"`

	// MaxBytes limits a created stream's size in bytes; 0 = unlimited.
	MaxBytes int64 `env:"BRIDGE_NATS_MAX_BYTES" envDefault:"0" example:"10737418240" help:"max bytes of a created stream; 0 = unlimited"`

	// Replicas is the replication factor of a created stream (1 to 5).
	// Zero means 1.
	Replicas int `env:"BRIDGE_NATS_REPLICAS" envDefault:"1" example:"3" help:"replicas of a created stream, 1-5"`

	// MaxPending bounds the JetStream messages in flight (sent, not yet
	// acknowledged) per Publish; it bounds memory and paces the sink to the
	// server. Zero means 4096.
	MaxPending int `env:"BRIDGE_NATS_MAX_PENDING" envDefault:"4096" example:"4096" help:"JetStream publishes in flight before waiting for acknowledgements"`

	// Creds is the path of a .creds file (user JWT and nkey seed).
	Creds string `env:"BRIDGE_NATS_CREDS" example:"/etc/nats/bridge.creds" help:".creds file (user JWT and nkey seed)"`
	// NKey is the path of a file holding a user nkey seed (SU...).
	NKey string `env:"BRIDGE_NATS_NKEY" example:"/etc/nats/bridge.nk" help:"file holding a user nkey seed"`
	// User and Password authenticate with a user name and password.
	User     string `env:"BRIDGE_NATS_USER" example:"bridge" help:"user name"`
	Password string `env:"BRIDGE_NATS_PASSWORD" secret:"true" help:"password (secret)"`
	// PasswordFile is filled with the content of the file named by
	// BRIDGE_NATS_PASSWORD_FILE (trailing newlines are ignored).
	PasswordFile string `env:"BRIDGE_NATS_PASSWORD_FILE,file" secret:"true" example:"/run/secrets/nats-password" help:"file holding the password"`
	// Token authenticates with a bearer token.
	Token string `env:"BRIDGE_NATS_TOKEN" secret:"true" help:"authentication token (secret)"`
	// TokenFile is filled with the content of the file named by
	// BRIDGE_NATS_TOKEN_FILE (trailing newlines are ignored).
	TokenFile string `env:"BRIDGE_NATS_TOKEN_FILE,file" secret:"true" example:"/run/secrets/nats-token" help:"file holding the token"`

	// TLSCA is a PEM file of CAs to verify the server with, instead of the
	// system roots. Setting any TLS variable makes the connection use TLS.
	TLSCA string `env:"BRIDGE_NATS_TLS_CA" example:"/etc/nats/ca.pem" help:"PEM CA bundle to verify the server; any BRIDGE_NATS_TLS_* turns TLS on"`
	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// servers that verify clients.
	TLSCert string `env:"BRIDGE_NATS_TLS_CERT" example:"/etc/nats/client.pem" help:"PEM client certificate"`
	TLSKey  string `env:"BRIDGE_NATS_TLS_KEY" example:"/etc/nats/client-key.pem" help:"PEM client key"`
}

// withDefaults returns c with every zero field that has a default set to
// it.
func (c Config) withDefaults() Config {
	if c.JetStream == nil {
		c.JetStream = new(true)
	}
	if c.CreateStream == nil {
		c.CreateStream = new(true)
	}
	c.SubjectPrefix = cmp.Or(c.SubjectPrefix, "zulip")
	c.Stream = cmp.Or(c.Stream, "ZULIP")
	c.DuplicateWindow = cmp.Or(c.DuplicateWindow, 2*time.Minute)
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.MaxPending = cmp.Or(c.MaxPending, 4096)
	return c
}

// Validate checks the configuration without connecting. Every problem is
// reported, each naming its variable, what is wrong and a valid example;
// no message contains a password, token or the userinfo of a URL. Zero
// fields mean their defaults. Like every Config of the bridge, it reads the
// files it names (credentials, nkey seed, TLS) so that a missing or broken
// file fails at start, as a configuration error.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, example, format string, args ...any) {
		errs = append(errs, &envconfig.Error{Key: key, Problem: fmt.Sprintf(format, args...), Example: example})
	}
	if _, err := c.urls(); err != nil {
		bad("BRIDGE_NATS_URL", "nats://nats-1:4222,nats://nats-2:4222", "%v", err)
	}
	if *c.JetStream {
		if err := validStreamName(c.Stream); err != nil {
			bad("BRIDGE_NATS_STREAM", "ZULIP", "%v", err)
		}
		if c.DuplicateWindow <= 0 {
			bad("BRIDGE_NATS_DUPLICATE_WINDOW", "2m", "must be positive, got %v", c.DuplicateWindow)
		}
		if c.MaxAge < 0 {
			bad("BRIDGE_NATS_MAX_AGE", "168h", "must be 0 (unlimited) or positive, got %v", c.MaxAge)
		}
		if c.MaxAge > 0 && c.DuplicateWindow > c.MaxAge {
			bad("BRIDGE_NATS_DUPLICATE_WINDOW", "2m", "%v is longer than BRIDGE_NATS_MAX_AGE=%v; the server refuses such a stream", c.DuplicateWindow, c.MaxAge)
		}
		if c.MaxBytes < 0 {
			bad("BRIDGE_NATS_MAX_BYTES", "10737418240", "must be 0 (unlimited) or a positive number of bytes, got %d", c.MaxBytes)
		}
		if c.Replicas < 1 || c.Replicas > 5 {
			bad("BRIDGE_NATS_REPLICAS", "3", "must be between 1 and 5, got %d", c.Replicas)
		}
		if c.MaxPending < 1 {
			bad("BRIDGE_NATS_MAX_PENDING", "4096", "must be at least 1, got %d", c.MaxPending)
		}
	}

	var methods []string
	if c.Creds != "" {
		methods = append(methods, "BRIDGE_NATS_CREDS")
		if err := readable(c.Creds); err != nil {
			bad("BRIDGE_NATS_CREDS", "/etc/nats/bridge.creds", "%v", err)
		}
	}
	if c.NKey != "" {
		methods = append(methods, "BRIDGE_NATS_NKEY")
		if err := readable(c.NKey); err != nil {
			bad("BRIDGE_NATS_NKEY", "/etc/nats/bridge.nk", "%v", err)
		} else if _, err := nats.NkeyOptionFromSeed(c.NKey); err != nil {
			// nats.go reports a malformed seed without echoing it.
			bad("BRIDGE_NATS_NKEY", "/etc/nats/bridge.nk", "%s: %v", c.NKey, err)
		}
	}
	if c.Password != "" && c.PasswordFile != "" {
		bad("BRIDGE_NATS_PASSWORD", "", "set either BRIDGE_NATS_PASSWORD or BRIDGE_NATS_PASSWORD_FILE, not both")
	}
	if c.User != "" || c.password() != "" {
		methods = append(methods, "BRIDGE_NATS_USER")
		if c.User == "" {
			bad("BRIDGE_NATS_USER", "bridge", "is required with BRIDGE_NATS_PASSWORD")
		}
		if c.password() == "" {
			bad("BRIDGE_NATS_PASSWORD", "", "is required with BRIDGE_NATS_USER (or use BRIDGE_NATS_PASSWORD_FILE)")
		}
	}
	if c.Token != "" && c.TokenFile != "" {
		bad("BRIDGE_NATS_TOKEN", "", "set either BRIDGE_NATS_TOKEN or BRIDGE_NATS_TOKEN_FILE, not both")
	}
	if c.token() != "" {
		methods = append(methods, "BRIDGE_NATS_TOKEN")
	}
	if len(methods) > 1 {
		bad(methods[1], "", "conflicts with %s: configure one NATS authentication method (creds, nkey, user/password or token)", methods[0])
	}

	if (c.TLSCert == "") != (c.TLSKey == "") {
		key := "BRIDGE_NATS_TLS_KEY"
		if c.TLSCert == "" {
			key = "BRIDGE_NATS_TLS_CERT"
		}
		bad(key, "", "BRIDGE_NATS_TLS_CERT and BRIDGE_NATS_TLS_KEY go together; set both or neither")
	} else if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// urls splits URL into the server list nats.go takes, checking each.
func (c Config) urls() ([]string, error) {
	if strings.TrimSpace(c.URL) == "" {
		return nil, nil
	}
	var out []string
	for i, raw := range strings.Split(c.URL, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return nil, fmt.Errorf("URL %d of the list is empty", i+1)
		}
		u, err := url.Parse(raw)
		if err != nil {
			// url.Parse quotes its input, which may hold a password.
			return nil, fmt.Errorf("URL %d of the list is not a URL", i+1)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return nil, fmt.Errorf("URL %q: scheme must be nats, tls, ws or wss", redactURL(u))
		}
		if u.Hostname() == "" {
			return nil, fmt.Errorf("URL %q has no host", redactURL(u))
		}
		out = append(out, raw)
	}
	return out, nil
}

// RedactedURL is URL, for a log line or an error, with the userinfo of
// each server (a user and password, or a token) replaced by "redacted".
func (c Config) RedactedURL() string {
	if strings.TrimSpace(c.URL) == "" {
		return ""
	}
	parts := strings.Split(c.URL, ",")
	for i, raw := range parts {
		raw = strings.TrimSpace(raw)
		if u, err := url.Parse(raw); err == nil {
			parts[i] = redactURL(u)
		} else if at := strings.LastIndex(raw, "@"); at >= 0 {
			parts[i] = "redacted" + raw[at:]
		} else {
			parts[i] = raw
		}
	}
	return strings.Join(parts, ",")
}

// redactURL shows a URL without its userinfo, which holds credentials.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User("redacted")
	}
	return c.String()
}

// validStreamName applies the server's rules for stream names.
func validStreamName(name string) error {
	if name == "" {
		return errors.New("must not be empty")
	}
	if len(name) > 255 {
		return fmt.Errorf("is %d characters long, at most 255 are allowed", len(name))
	}
	if i := strings.IndexAny(name, " \t\r\n.*>/\\"); i >= 0 {
		return fmt.Errorf("%q must not contain whitespace, '.', '*', '>', '/' or '\\'", name)
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return errors.New(tlsfiles.Problem(path, err))
	}
	return f.Close()
}

func (c Config) password() string {
	if c.PasswordFile != "" {
		return strings.TrimRight(c.PasswordFile, "\r\n")
	}
	return c.Password
}

func (c Config) token() string {
	if c.TokenFile != "" {
		return strings.TrimRight(c.TokenFile, "\r\n")
	}
	return c.Token
}

// tlsConfig returns the client TLS settings, or nil when no TLS variable
// is set (a tls:// or wss:// URL then uses the system roots).
func (c Config) tlsConfig() (*tls.Config, error) {
	if c.TLSCA == "" && c.TLSCert == "" && c.TLSKey == "" {
		return nil, nil
	}
	return tlsfiles.Load(
		tlsfiles.File{Var: "BRIDGE_NATS_TLS_CA", Path: c.TLSCA, Example: "/etc/nats/ca.pem"},
		tlsfiles.File{Var: "BRIDGE_NATS_TLS_CERT", Path: c.TLSCert, Example: "/etc/nats/client.pem"},
		tlsfiles.File{Var: "BRIDGE_NATS_TLS_KEY", Path: c.TLSKey, Example: "/etc/nats/client-key.pem"},
	)
}
