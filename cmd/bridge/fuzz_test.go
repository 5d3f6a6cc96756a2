package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// canary is put into every secret of the environment (a password, a token,
// a key, the content of a secret file, the userinfo of a URL): no error
// may contain it.
const canary = "C4NARY"

// secretContent are the file variables whose file content is a secret.
var secretContent = map[string]bool{
	"ZULIP_API_KEY_FILE": true, "ZULIP_CERT_KEY": true, "BRIDGE_NATS_CREDS": true, "BRIDGE_NATS_NKEY": true,
	"BRIDGE_NATS_PASSWORD_FILE": true, "BRIDGE_NATS_TOKEN_FILE": true, "BRIDGE_NATS_TLS_KEY": true,
	"BRIDGE_KAFKA_PASSWORD_FILE": true, "BRIDGE_KAFKA_TLS_KEY": true,
}

// urlVars hold URLs, which may carry userinfo (a comma list for some);
// BRIDGE_KAFKA_BROKERS holds host:port addresses, which errors quote.
var urlVars = []string{"ZULIP_SITE", "BRIDGE_NATS_URL",
	"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"}

// zuliprcKey is the key line of a zuliprc, whose value is the API key.
var zuliprcKey = regexp.MustCompile(`(?im)^(\s*key\s*[=:]\s*)`)

// exampleTail is the end of an error line that gives an example.
var exampleTail = regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`)

// FuzzLoadConfig feeds the bridge's whole configuration (envconfig.Parse
// over config, then validate, as `bridge run` does) arbitrary environments,
// one KEY=VALUE a line. A variable that names a file (a zuliprc, a key file,
// a certificate, a .creds file) gets a file holding its value instead, with
// \n for a line break, so that the files' parsers are fuzzed too. Either the
// configuration is accepted, and validating it again accepts it too, or every
// line of the error is `VAR: problem (example: VAR=value)` for a variable the
// bridge reads, saying no prefix twice; and the same environment with a
// canary in every secret gives errors without the canary.
func FuzzLoadConfig(f *testing.F) {
	known := map[string]envconfig.Var{}
	for _, v := range vars() {
		known[v.Key] = v
	}
	base := "ZULIP_SITE=https://chat.example.com\nZULIP_EMAIL=bot@chat.example.com\nZULIP_API_KEY=" + testAPIKey + "\n"
	kafka := "BRIDGE_SINK=kafka\nBRIDGE_KAFKA_BROKERS=k:9092\n"
	f.Add(base)
	f.Add(base + kafka)
	f.Add("")
	for _, v := range vars() {
		if v.Example != "" {
			f.Add(base + v.Key + "=" + v.Example + "\n")
		}
	}
	// The bad values of TestConfigErrorFormat and TestBadConfigurationExits2.
	for _, s := range []string{
		"BRIDGE_SINK=rabbitmq", "BRIDGE_HTTP_ADDR=8080", "BRIDGE_LOG_LEVEL=loud", "ZULIP_SITE=ftp://chat.example.com",
		"ZULIP_SITE=https://bot:hunter2@chat.example.com/%zz", "ZULIP_EMAIL=bot", "ZULIP_API_KEY=a b",
		"BRIDGE_EVENT_TYPES=Message!", "BRIDGE_ZULIP_FETCH_EVENT_TYPES=*", "BRIDGE_NARROW=stream:Denmark",
		"BRIDGE_SUBJECT_TEMPLATE={prefix}.{x}", "BRIDGE_CHECKPOINT=etcd", "BRIDGE_NATS_URL=http://u:pw@nats:4222",
		"BRIDGE_NATS_USER=bridge", "BRIDGE_NATS_PASSWORD=secret", "BRIDGE_NATS_NKEY=SUAAAA", "BRIDGE_SHUTDOWN_TIMEOUT=soon",
		"BRIDGE_PUBLISH_HEARTBEATS=maybe", "BRIDGE_BACKFILL_PAGE_SIZE=many", "OTEL_EXPORTER_OTLP_ENDPOINT=ftp://u:p@collector",
		"ZULIP_API_KEY=\nZULIP_CONFIG=[api]\\nsite=chat.example.com\\nemail=b@x\\nkey=" + testAPIKey + "\\ninsecure=maybe",
		"ZULIP_API_KEY=\nZULIP_API_KEY_FILE=" + testAPIKey + "\\n", "ZULIP_CONFIG=[api\\nkey=" + testAPIKey,
	} {
		f.Add(base + s + "\n")
		f.Add(base + kafka + s + "\n")
	}
	pki := testutil.NewPKI(f)
	for _, pair := range [][3]string{
		{"ZULIP_CERT_BUNDLE", pki.CAFile, ""}, {"ZULIP_CERT", pki.ClientCertFile, "ZULIP_CERT_KEY"},
		{"BRIDGE_NATS_TLS_CERT", pki.ClientCertFile, "BRIDGE_NATS_TLS_KEY"}, {"BRIDGE_KAFKA_TLS_CA", pki.CAFile, ""},
	} {
		s := base + kafka + pair[0] + "=" + escapedFile(f, pair[1]) + "\n"
		if pair[2] != "" {
			s += pair[2] + "=" + escapedFile(f, pki.ClientKeyFile) + "\n"
		}
		f.Add(s)
	}

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in string) {
		if strings.Contains(in, "\x00") {
			return // no environment holds a NUL
		}
		env := map[string]string{}
		for _, line := range strings.Split(in, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				if _, ok := known[k]; ok {
					env[k] = v
				}
			}
		}
		cfg, err := loadConfig(environ(t, dir, env, known))
		if err == nil {
			if err := cfg.validate(); err != nil {
				t.Fatalf("%q: accepted, then refused: %v", in, err)
			}
			if _, err := source.ParseSite(cfg.Zulip.Site); err != nil {
				t.Fatalf("%q: accepted with a site that does not parse: %v", in, err)
			}
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			key, _, _ := strings.Cut(line, ": ")
			if _, ok := known[key]; !ok || !errorLine.MatchString(line) {
				t.Fatalf("%q: %q is not VAR: problem for a variable the bridge reads (all of it: %q)", in, line, err)
			}
			if i := strings.LastIndex(line, " (example: "); i >= 0 && strings.HasSuffix(line, ")") &&
				!exampleTail.MatchString(line[i+len(" (example: "):]) {
				t.Fatalf("%q: %q has a malformed example", in, line)
			}
			if stutters(line) {
				t.Fatalf("%q: %q repeats a prefix", in, line)
			}
		}

		marked := map[string]string{}
		for k, v := range env {
			switch {
			case known[k].Secret && !known[k].File && !secretContent[k]:
				v = canary + v + canary
			case secretContent[k]:
				v = canary + `\n` + v + `\n` + canary
			case k == "ZULIP_CONFIG":
				v = zuliprcKey.ReplaceAllString(strings.ReplaceAll(v, `\n`, "\n"), "${1}"+canary)
				v = strings.ReplaceAll(v, "\n", `\n`)
			case slices.Contains(urlVars, k):
				v = canaryInUserinfo(v)
			}
			marked[k] = v
		}
		if _, err := loadConfig(environ(t, dir, marked, known)); err != nil && strings.Contains(err.Error(), canary) {
			t.Fatalf("%q: a secret is in the error: %v", in, err)
		}
	})
}

// environ turns env into an environment: each file variable's value is
// written to a file in dir, which the variable then names; a directory
// variable names one inside dir; HOME is dir/home, which holds no .zuliprc.
func environ(t *testing.T, dir string, env map[string]string, known map[string]envconfig.Var) []string {
	t.Helper()
	out := []string{"HOME=" + filepath.Join(dir, "home")}
	for k, v := range env {
		switch {
		case strings.HasSuffix(k, "_DIR"):
			// A directory (the state's, the spool's): one inside dir, in
			// case a check ever creates or probes it.
			v = filepath.Join(dir, "dirs", strings.ReplaceAll(v, "/", "_"))
		case isFileVar(known[k]):
			path := filepath.Join(dir, k)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(v, `\n`, "\n")), 0o600); err != nil {
				t.Fatal(err)
			}
			v = path
		}
		out = append(out, k+"="+v)
	}
	return out
}

// isFileVar reports whether v names a file to read (its example is an
// absolute path), rather than a directory or a value.
func isFileVar(v envconfig.Var) bool {
	return v.File || strings.HasPrefix(v.Example, "/") && !strings.HasSuffix(v.Key, "_DIR")
}

// canaryInUserinfo puts the canary into the userinfo of each URL of a
// comma list, where there is one.
func canaryInUserinfo(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		rest := p
		if _, after, ok := strings.Cut(p, "://"); ok {
			rest = after
		}
		start := len(p) - len(rest)
		authority := rest
		if j := strings.IndexAny(rest, "/?#"); j >= 0 {
			authority = rest[:j]
		}
		if at := strings.LastIndex(authority, "@"); at >= 0 {
			parts[i] = p[:start+at] + canary + p[start+at:]
		}
	}
	return strings.Join(parts, ",")
}

// escapedFile returns a file's content with \n for its line breaks.
func escapedFile(f *testing.F, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\n", `\n`)
}
