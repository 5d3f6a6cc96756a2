package source

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/tlsfiles"
)

// Defaults of the Config fields whose zero value means "default".
const (
	DefaultEventTypes       = "message"
	DefaultRequestTimeout   = 60 * time.Second
	DefaultMaxResponseBytes = 64 << 20
	DefaultRetryBase        = 500 * time.Millisecond
	DefaultRetryMax         = 30 * time.Second

	// defaultServerLongPoll is what servers that do not report
	// event_queue_longpoll_timeout_seconds (and Zulip's docs) say to allow.
	defaultServerLongPoll = 90 * time.Second
	// longPollMargin is added to the server's long-poll timeout so that a
	// response that comes at the last moment is not cut off in transit.
	longPollMargin = 15 * time.Second
	// maxQueueLifespan is the server's cap on queue_lifespan_secs.
	maxQueueLifespan = 7 * 24 * time.Hour
)

// Config says which Zulip server to talk to, as whom, and which events to
// register for. Credentials use the names of Zulip's official Python client,
// so an existing zuliprc or environment works unchanged. The zero value of
// every field other than the credentials is a working default.
//
// Credentials come from, highest precedence first:
//  1. ZULIP_SITE, ZULIP_EMAIL, ZULIP_API_KEY (or ZULIP_API_KEY_FILE, a file
//     holding the key, as Kubernetes mounts secrets; setting both is an
//     error), ZULIP_CERT, ZULIP_CERT_KEY, ZULIP_CERT_BUNDLE,
//     ZULIP_ALLOW_INSECURE;
//  2. the [api] section of the zuliprc named by ZULIP_CONFIG, or else of
//     DefaultConfigFile ($HOME/.zuliprc, as the official client reads when
//     ZULIP_CONFIG is unset: see HomeZuliprc): site, email, key,
//     client_cert, client_cert_key, cert_bundle, insecure.
//
// Call Resolve (which reads those files) and then Validate; NewClient does
// both if the caller did not.
type Config struct {
	// ConfigFile is the zuliprc to read. Empty: none.
	ConfigFile string `env:"ZULIP_CONFIG" example:"/etc/zulip/zuliprc" help:"zuliprc file to read credentials from ([api] section); unset = $HOME/.zuliprc if it exists, set empty = none; ZULIP_* variables win over it"`
	// DefaultConfigFile is the zuliprc read when ConfigFile is empty, as
	// the official client reads $HOME/.zuliprc when ZULIP_CONFIG is unset;
	// unlike ConfigFile's, a file that does not exist is no error. Set it to
	// HomeZuliprc(os.Environ()) to behave as the official client. Empty:
	// none, so a Config built in code never reads a home directory's file.
	DefaultConfigFile string
	// Site is the organization's URL, e.g. https://chat.example.com; without
	// a scheme, https is meant, or http for a site starting with
	// "localhost", as in the official client. A trailing /api is accepted.
	Site string `env:"ZULIP_SITE" example:"https://chat.example.com" help:"organization URL, e.g. https://chat.example.com (no scheme: https, or http when it starts with localhost)"`
	// Email is the bot's email address.
	Email string `env:"ZULIP_EMAIL" example:"bridge-bot@chat.example.com" help:"bot email"`
	// APIKey is the bot's API key. Secret: never logged, never in errors.
	APIKey string `env:"ZULIP_API_KEY" secret:"true" help:"bot API key (secret)"`
	// APIKeyFile names a file holding the API key (surrounding whitespace
	// trimmed). Mutually exclusive with APIKey.
	APIKeyFile string `env:"ZULIP_API_KEY_FILE" example:"/var/run/secrets/zulip/api-key" help:"file holding the bot API key, instead of ZULIP_API_KEY (setting both is an error)"`
	// Cert and CertKey are a PEM client certificate and its key for mutual
	// TLS. CertKey may be empty when Cert holds the key too.
	Cert    string `env:"ZULIP_CERT" example:"/etc/zulip/client.crt" help:"PEM client certificate for mutual TLS"`
	CertKey string `env:"ZULIP_CERT_KEY" example:"/etc/zulip/client.key" help:"PEM key of ZULIP_CERT (omit when ZULIP_CERT holds the key)"`
	// CertBundle is a PEM file of CA certificates that replaces the system
	// roots, for servers with a private CA.
	CertBundle string `env:"ZULIP_CERT_BUNDLE" example:"/etc/zulip/ca.pem" help:"PEM CA bundle replacing the system roots"`
	// AllowInsecure disables TLS certificate verification (a loud warning is
	// logged). Nil: not set, so the zuliprc's insecure decides; default false.
	AllowInsecure *bool `env:"ZULIP_ALLOW_INSECURE" example:"false" help:"true disables TLS certificate verification (dangerous); unset = the zuliprc's insecure, else false"`

	// EventTypes are the event types to register for; "*" alone means all.
	// Default: message.
	EventTypes []string `env:"BRIDGE_EVENT_TYPES" envDefault:"message" envSeparator:"," example:"message,reaction" help:"comma list of event types to register for; * = all"`
	// Narrow is a JSON narrow: a list of [operator, operand] pairs, e.g.
	// [["stream","Denmark"]]; the single pair ["stream","Denmark"] of older
	// docs is accepted too. Empty: no narrow.
	Narrow string `env:"BRIDGE_NARROW" example:"[[\"stream\",\"Denmark\"]]" help:"JSON narrow, a list of [operator, operand] pairs, e.g. [[\"stream\",\"Denmark\"]]; unset = none"`
	// AllPublicStreams registers with all_public_streams=true.
	AllPublicStreams bool `env:"BRIDGE_ALL_PUBLIC_STREAMS" envDefault:"false" example:"true" help:"true registers with all_public_streams"`
	// QueueLifespan is the queue_lifespan_secs to request: how long the
	// server keeps an idle queue (whole seconds, at most 168h). Zero: the
	// server's default, 10 minutes.
	QueueLifespan time.Duration `env:"BRIDGE_QUEUE_LIFESPAN" example:"30m" help:"queue_lifespan_secs to request, whole seconds up to 168h; unset = the server's default (10 minutes)"`
	// ApplyMarkdown asks for message content rendered as HTML
	// (content_type text/html) instead of the Markdown the sender typed
	// (text/x-markdown): apply_markdown of POST /register, and of
	// GET /messages, so that backfilled messages read like live ones.
	// Default false.
	ApplyMarkdown bool `env:"BRIDGE_ZULIP_APPLY_MARKDOWN" envDefault:"false" example:"true" help:"true: message content as the server renders it, HTML (content_type text/html), in live events and backfilled messages alike; false: the Markdown as sent"`
	// ClientGravatar lets the server leave avatar_url null for users whose
	// avatar is a Gravatar (the consumer computes it from the email), in
	// messages, live and backfilled alike, and in the initial state's
	// users: client_gravatar of POST /register and GET /messages. Default
	// false: every avatar_url is a URL.
	ClientGravatar bool `env:"BRIDGE_ZULIP_CLIENT_GRAVATAR" envDefault:"false" example:"true" help:"true: avatar_url is null for users with a Gravatar (computed from the email by the consumer), in messages, live and backfilled, and in the initial state; false: always a URL"`
	// FetchEventTypes are the types whose initial state the register
	// response (bridge.state) holds: fetch_event_types of POST /register.
	// Nil: not sent, so the server uses EventTypes. When messages are
	// registered for, message is added if missing: its state is
	// max_message_id, where the backfill of a lost queue ends.
	FetchEventTypes []string `env:"BRIDGE_ZULIP_FETCH_EVENT_TYPES" envSeparator:"," example:"subscription,realm_user" help:"comma list of the types whose initial state the register response (bridge.state) holds; unset = those of BRIDGE_EVENT_TYPES; message is added when messages are registered for (its max_message_id is where a backfill ends)"`
	// IncludeSubscribers asks for the subscriber ids of every stream of
	// the initial state's subscriptions (include_subscribers of
	// POST /register; slower in large organizations). Default false: not
	// sent.
	IncludeSubscribers bool `env:"BRIDGE_ZULIP_INCLUDE_SUBSCRIBERS" envDefault:"false" example:"true" help:"true: every stream of the initial state's subscriptions lists its subscribers' user ids (slower in large organizations)"`

	// LongPollTimeout is the client-side timeout of a waiting GET /events.
	// Zero: the server's event_queue_longpoll_timeout_seconds (90 s when not
	// reported) plus 15 s. A value below the server's heartbeat interval
	// makes the client reconnect endlessly.
	LongPollTimeout time.Duration `env:"BRIDGE_ZULIP_LONGPOLL_TIMEOUT" example:"105s" help:"client timeout of a waiting GET /events; unset = the server's long-poll timeout (90 s when not reported) + 15 s"`
	// RequestTimeout bounds every other request. Zero: 60s.
	RequestTimeout time.Duration `env:"BRIDGE_ZULIP_REQUEST_TIMEOUT" envDefault:"60s" help:"timeout of every other Zulip request"`
	// MaxResponseBytes caps one event of a GET /events response (which is
	// read as it arrives, whatever its total size: a larger event comes
	// Oversized, without its bytes) and every other response body. Zero:
	// 64 MiB.
	MaxResponseBytes int64 `env:"BRIDGE_ZULIP_MAX_RESPONSE_BYTES" envDefault:"67108864" help:"largest single Zulip event (GET /events is streamed, whatever its size; a larger event is set aside as a bridge.invalid notice) and largest other Zulip response accepted (64 MiB)"`
	// RetryBase and RetryMax shape the backoff between retries of transient
	// failures: full jitter below min(RetryMax, RetryBase*2^n). Zero: 500ms
	// and 30s.
	RetryBase time.Duration `env:"BRIDGE_ZULIP_RETRY_BASE" envDefault:"500ms" help:"first retry delay ceiling (exponential backoff, full jitter, Retry-After honoured)"`
	RetryMax  time.Duration `env:"BRIDGE_ZULIP_RETRY_MAX" envDefault:"30s" help:"largest retry delay"`

	resolved bool
	origin   credentialOrigin
}

// credentialOrigin records where Resolve took the credentials from; never
// a value.
type credentialOrigin struct {
	vars    []string // the variables that were set, e.g. ZULIP_SITE
	file    string   // the zuliprc read; "" if none
	deflt   bool     // file is DefaultConfigFile, not ZULIP_CONFIG's
	keys    []string // the keys taken from file, e.g. site
	missing string   // DefaultConfigFile, when it does not exist
}

// HomeZuliprc returns the zuliprc Zulip's official Python client reads
// when none is named: $HOME/.zuliprc, when ZULIP_CONFIG is unset in environ
// (KEY=VALUE pairs, as os.Environ returns them). It returns "" when
// ZULIP_CONFIG is set, even empty (the official client then reads no
// default file either), and when HOME is unset or empty (where the
// official client would look for .zuliprc in the working directory).
func HomeZuliprc(environ []string) string {
	m := envconfig.ToMap(environ)
	if _, set := m["ZULIP_CONFIG"]; set {
		return ""
	}
	if m["HOME"] == "" {
		return ""
	}
	return filepath.Join(m["HOME"], ".zuliprc")
}

// CredentialsOrigin says where Resolve took the credentials from, for
// `bridge check`: the variables that were set, and which zuliprc supplied
// which keys, or why none was read. It never shows a value.
func (c Config) CredentialsOrigin() string {
	o := c.origin
	var parts []string
	if len(o.vars) > 0 {
		parts = append(parts, strings.Join(o.vars, ", ")+" from the environment")
	}
	via := "named by ZULIP_CONFIG"
	if o.deflt {
		via = "$HOME/.zuliprc, read as ZULIP_CONFIG is unset"
	}
	switch {
	case !c.resolved:
		parts = append(parts, "zuliprc not read yet (Resolve not called)")
	case o.file != "" && len(o.keys) > 0:
		parts = append(parts, strings.Join(o.keys, ", ")+" from "+o.file+" ("+via+")")
	case o.file != "":
		parts = append(parts, "nothing from "+o.file+" ("+via+"): the variables win")
	case o.missing != "":
		parts = append(parts, "no zuliprc: ZULIP_CONFIG is unset and "+o.missing+" does not exist")
	default:
		parts = append(parts, "no zuliprc: ZULIP_CONFIG is set empty, or unset with HOME unset")
	}
	return strings.Join(parts, "; ")
}

// setVars lists the credential variables set in c, before Resolve fills
// anything in.
func (c *Config) setVars() []string {
	var out []string
	for _, v := range []struct {
		name string
		set  bool
	}{
		{"ZULIP_SITE", c.Site != ""},
		{"ZULIP_EMAIL", c.Email != ""},
		{"ZULIP_API_KEY", c.APIKey != ""},
		{"ZULIP_API_KEY_FILE", c.APIKeyFile != ""},
		{"ZULIP_CERT", c.Cert != ""},
		{"ZULIP_CERT_KEY", c.CertKey != ""},
		{"ZULIP_CERT_BUNDLE", c.CertBundle != ""},
		{"ZULIP_ALLOW_INSECURE", c.AllowInsecure != nil},
	} {
		if v.set {
			out = append(out, v.name)
		}
	}
	return out
}

// zuliprcHint completes "is not set (nor <key> ...)": where the key was
// looked for.
func (c Config) zuliprcHint(key string) string {
	switch o := c.origin; {
	case o.file != "":
		return fmt.Sprintf("nor %s in %s", key, o.file)
	case o.missing != "":
		return fmt.Sprintf("nor %s in a zuliprc: ZULIP_CONFIG is unset and %s does not exist", key, o.missing)
	}
	return fmt.Sprintf("nor %s in a zuliprc: ZULIP_CONFIG names none and no $HOME/.zuliprc was read", key)
}

// Resolve completes c from the files it names: the API key file and the
// zuliprc (ConfigFile, or else DefaultConfigFile if it exists). Values
// already set in c (from the environment) win over the zuliprc's. Calling
// it again is a no-op.
func (c *Config) Resolve() error {
	if c.resolved {
		return nil
	}
	c.origin = credentialOrigin{vars: c.setVars()}
	if c.APIKeyFile != "" {
		if c.APIKey != "" {
			return configError("ZULIP_API_KEY_FILE", "is set together with ZULIP_API_KEY: set only one", "/var/run/secrets/zulip/api-key")
		}
		b, err := os.ReadFile(c.APIKeyFile)
		if err != nil {
			return configError("ZULIP_API_KEY_FILE", tlsfiles.Problem(c.APIKeyFile, err), "/var/run/secrets/zulip/api-key")
		}
		c.APIKey = strings.TrimSpace(string(b))
		if c.APIKey == "" {
			return configError("ZULIP_API_KEY_FILE", fmt.Sprintf("%s is empty: it must hold the bot's API key", c.APIKeyFile), "/var/run/secrets/zulip/api-key")
		}
	}
	switch {
	case c.ConfigFile != "":
		if err := c.mergeZuliprc(c.ConfigFile, false); err != nil {
			return err
		}
	case c.DefaultConfigFile != "":
		// As the official client: read only if it exists (os.path.exists,
		// which is false for a broken link or an unreachable directory too).
		if _, err := os.Stat(c.DefaultConfigFile); err != nil {
			c.origin.missing = c.DefaultConfigFile
			break
		}
		if err := c.mergeZuliprc(c.DefaultConfigFile, true); err != nil {
			return err
		}
	}
	c.resolved = true
	return nil
}

func (c *Config) mergeZuliprc(path string, deflt bool) error {
	const example = "/etc/zulip/zuliprc"
	problem := func(p string) error {
		if deflt {
			return configError("ZULIP_CONFIG", "is unset, so "+p+" (read as the official client reads $HOME/.zuliprc): "+
				"fix that file, or set ZULIP_CONFIG to another zuliprc (empty: none)", example)
		}
		return configError("ZULIP_CONFIG", p, example)
	}
	f, err := os.Open(path)
	if err != nil {
		return problem(tlsfiles.Problem(path, err) + ": it must name a zuliprc with an [api] section")
	}
	defer f.Close()
	rc, err := parseZuliprc(f)
	if err != nil {
		return problem(fmt.Sprintf("%s: %v", path, err))
	}
	c.origin.file, c.origin.deflt = path, deflt
	fill := func(dst *string, key string) {
		if *dst == "" && rc[key] != "" {
			*dst = rc[key]
			c.origin.keys = append(c.origin.keys, key)
		}
	}
	fill(&c.Site, "site")
	fill(&c.Email, "email")
	fill(&c.APIKey, "key")
	fill(&c.Cert, "client_cert")
	fill(&c.CertKey, "client_cert_key")
	fill(&c.CertBundle, "cert_bundle")
	if v, ok := rc["insecure"]; ok && c.AllowInsecure == nil {
		b, ok := parseIniBool(v)
		if !ok {
			return problem(fmt.Sprintf("%s: insecure=%q is not a boolean: use insecure=true or insecure=false", path, v))
		}
		c.AllowInsecure = &b
		c.origin.keys = append(c.origin.keys, "insecure")
	}
	return nil
}

// configError is a configuration error in the one format of the bridge:
// VAR: problem (example: VAR=value).
func configError(key, problem, example string) error {
	return &envconfig.Error{Key: key, Problem: problem, Example: example}
}

// Validate checks c without touching the network: every problem, each
// naming its variable, what is wrong and a valid example. Like every Config
// of the bridge, it reads the files c names (TLS certificates and keys), so
// that a missing or broken file is a configuration error.
func (c Config) Validate() error {
	if (c.ConfigFile != "" || c.DefaultConfigFile != "") && !c.resolved {
		return configError("ZULIP_CONFIG", "names a zuliprc (or DefaultConfigFile does) but the file was not read: call Config.Resolve before Validate", "/etc/zulip/zuliprc")
	}
	var errs []error
	bad := func(key, example, format string, args ...any) {
		errs = append(errs, configError(key, fmt.Sprintf(format, args...), example))
	}

	if strings.TrimSpace(c.Site) == "" {
		bad("ZULIP_SITE", siteExample, "is not set (%s): set it to the organization's URL", c.zuliprcHint("site"))
	} else if _, err := ParseSite(c.Site); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.Email == "":
		bad("ZULIP_EMAIL", "bridge-bot@chat.example.com", "is not set (%s): set it to the bot's email", c.zuliprcHint("email"))
	case !strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " \t\r\n:"):
		bad("ZULIP_EMAIL", "bridge-bot@chat.example.com", "%q is not an email address: use the bot's email", c.Email)
	}
	switch {
	case c.APIKey == "":
		bad("ZULIP_API_KEY", "ZULIP_API_KEY_FILE=/var/run/secrets/zulip/api-key", "is not set (nor ZULIP_API_KEY_FILE, %s): set one", c.zuliprcHint("key"))
	case strings.ContainsFunc(c.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		bad("ZULIP_API_KEY", "ZULIP_API_KEY_FILE=/var/run/secrets/zulip/api-key", "contains whitespace or control characters (value not shown): "+
			"it must be the key exactly as Zulip shows it (32 letters and digits); a key file may end in a newline")
	}
	if _, err := c.tlsConfig(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.eventTypes(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.fetchEventTypes(nil); err != nil {
		errs = append(errs, err)
	}
	if _, err := normalizeNarrow(c.Narrow); err != nil {
		bad("BRIDGE_NARROW", `'[["stream","Denmark"]]'`, "%v: use a JSON list of [operator, operand] pairs", err)
	}
	switch d := c.QueueLifespan; {
	case d < 0, d%time.Second != 0:
		bad("BRIDGE_QUEUE_LIFESPAN", "30m", "%v is not a positive whole number of seconds", d)
	case d > maxQueueLifespan:
		bad("BRIDGE_QUEUE_LIFESPAN", "24h", "%v is above 168h, the server's cap on queue lifespans", d)
	}
	for _, v := range []struct {
		name string
		d    time.Duration
		eg   string
	}{
		{"BRIDGE_ZULIP_LONGPOLL_TIMEOUT", c.LongPollTimeout, "105s"},
		{"BRIDGE_ZULIP_REQUEST_TIMEOUT", c.RequestTimeout, "60s"},
		{"BRIDGE_ZULIP_RETRY_BASE", c.RetryBase, "500ms"},
		{"BRIDGE_ZULIP_RETRY_MAX", c.RetryMax, "30s"},
	} {
		if v.d < 0 {
			bad(v.name, v.eg, "%v is negative", v.d)
		}
	}
	if c.RetryBase > 0 && c.RetryMax > 0 && c.RetryBase > c.RetryMax {
		bad("BRIDGE_ZULIP_RETRY_BASE", "500ms", "%v is above BRIDGE_ZULIP_RETRY_MAX=%v: the base must not exceed the cap", c.RetryBase, c.RetryMax)
	}
	if c.MaxResponseBytes < 0 {
		bad("BRIDGE_ZULIP_MAX_RESPONSE_BYTES", "67108864", "%d is negative", c.MaxResponseBytes)
	}
	return errors.Join(errs...)
}

// tlsConfig loads the TLS material c names.
func (c Config) tlsConfig() (*tls.Config, error) {
	tc, err := tlsfiles.Load(
		tlsfiles.File{Var: "ZULIP_CERT_BUNDLE", Path: c.CertBundle, Example: "/etc/zulip/ca.pem"},
		tlsfiles.File{Var: "ZULIP_CERT", Path: c.Cert, Example: "/etc/zulip/client.crt"},
		tlsfiles.File{Var: "ZULIP_CERT_KEY", Path: c.CertKey, Example: "/etc/zulip/client.key"},
	)
	if err != nil {
		return nil, err
	}
	tc.InsecureSkipVerify = c.insecure()
	return tc, nil
}

// withDefaults returns c with every zero field that has a default set to
// it, as the envDefault tags document.
func (c Config) withDefaults() Config {
	if c.EventTypes == nil {
		c.EventTypes = []string{DefaultEventTypes}
	}
	c.RequestTimeout = cmp.Or(c.RequestTimeout, DefaultRequestTimeout)
	c.MaxResponseBytes = cmp.Or(c.MaxResponseBytes, DefaultMaxResponseBytes)
	c.RetryBase = cmp.Or(c.RetryBase, DefaultRetryBase)
	c.RetryMax = cmp.Or(c.RetryMax, DefaultRetryMax)
	return c
}

// insecure reports whether TLS verification is off.
func (c Config) insecure() bool { return c.AllowInsecure != nil && *c.AllowInsecure }

var eventTypeRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// eventTypes returns the event types to register for; nil means all.
func (c Config) eventTypes() ([]string, error) {
	var out []string
	for _, t := range c.EventTypes {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	if c.EventTypes == nil {
		return []string{DefaultEventTypes}, nil
	}
	if len(out) == 1 && out[0] == "*" {
		return nil, nil
	}
	if len(out) == 0 {
		return nil, configError("BRIDGE_EVENT_TYPES", "is empty: list event types or use * alone for all", "message,reaction")
	}
	for _, t := range out {
		if !eventTypeRE.MatchString(t) {
			return nil, configError("BRIDGE_EVENT_TYPES", fmt.Sprintf("%q is not an event type: use a comma list of Zulip event types, or * alone for all", t), "message,reaction")
		}
	}
	return out, nil
}

// fetchEventTypes returns the fetch_event_types to send for a queue
// registered for types (nil: all); nil means none is sent. message is added
// when types registers for messages, as the register response's
// max_message_id is what the backfill of a lost queue runs up to.
func (c Config) fetchEventTypes(types []string) ([]string, error) {
	if c.FetchEventTypes == nil {
		return nil, nil
	}
	const example = "subscription,realm_user"
	var out []string
	for _, t := range c.FetchEventTypes {
		switch t = strings.TrimSpace(t); {
		case t == "":
		case t == "*":
			return nil, configError("BRIDGE_ZULIP_FETCH_EVENT_TYPES", "* is not accepted (the server has no way to fetch every type): "+
				"unset it to fetch the state of the types of BRIDGE_EVENT_TYPES, or list types", example)
		case !eventTypeRE.MatchString(t):
			return nil, configError("BRIDGE_ZULIP_FETCH_EVENT_TYPES", fmt.Sprintf("%q is not an event type: use a comma list of Zulip event types", t), example)
		case !slices.Contains(out, t):
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, configError("BRIDGE_ZULIP_FETCH_EVENT_TYPES", "is empty: list event types, or unset it to fetch the state of the types of BRIDGE_EVENT_TYPES", example)
	}
	if (types == nil || slices.Contains(types, "message")) && !slices.Contains(out, "message") {
		out = append(out, "message")
	}
	return out, nil
}

// normalizeNarrow turns either spelling of a narrow into the list-of-pairs
// JSON the server expects; "" for no narrow. Both spellings of the same
// narrow give the same bytes.
func normalizeNarrow(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nil
	}
	var top []json.RawMessage
	if err := json.Unmarshal([]byte(s), &top); err != nil {
		return "", fmt.Errorf("not a JSON list: %v", err)
	}
	if len(top) == 0 {
		return "", nil
	}
	var pairs [][]json.RawMessage
	if first := bytes.TrimSpace(top[0]); len(first) > 0 && first[0] == '"' {
		pairs = [][]json.RawMessage{top} // the single-pair spelling
	} else {
		for i, raw := range top {
			var p []json.RawMessage
			if err := json.Unmarshal(raw, &p); err != nil {
				return "", fmt.Errorf("term %d is not an [operator, operand] pair", i+1)
			}
			pairs = append(pairs, p)
		}
	}
	out := make([][2]any, 0, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return "", fmt.Errorf("term %d has %d elements, want [operator, operand]", i+1, len(p))
		}
		var op string
		if err := json.Unmarshal(p[0], &op); err != nil || op == "" {
			return "", fmt.Errorf("term %d: the operator must be a non-empty string", i+1)
		}
		var operand any
		dec := json.NewDecoder(bytes.NewReader(p[1]))
		dec.UseNumber()
		if err := dec.Decode(&operand); err != nil {
			return "", fmt.Errorf("term %d: %v", i+1, err)
		}
		switch operand.(type) {
		case string, json.Number:
		default:
			return "", fmt.Errorf("term %d: the operand must be a string or a number", i+1)
		}
		out = append(out, [2]any{op, operand})
	}
	b, err := json.Marshal(out)
	if err != nil {
		return "", err
	}
	return string(b), nil
}
