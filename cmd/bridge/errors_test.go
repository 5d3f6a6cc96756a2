package main

import (
	"cmp"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// errorLine is the one format of every configuration error:
// VAR: problem, or VAR: problem (example: VAR=value).
var errorLine = regexp.MustCompile(`^[A-Z][A-Z0-9_]*: [^ ].*$`)

// stutters reports whether a line says a prefix twice, as in "nats sink:
// nats sink: ..." or "kafka sink: BRIDGE_X: kafka sink: ...".
func stutters(line string) bool {
	seen := map[string]bool{}
	parts := strings.Split(line, ": ")
	for _, p := range parts[:len(parts)-1] {
		if seen[p] {
			return true
		}
		seen[p] = true
	}
	return false
}

// TestConfigErrorFormat gives every variable the bridge reads an invalid
// value, by kind (durations, booleans, integers, lists, and each string
// variable a value its package rejects), and holds every resulting error
// to the one format, naming the variable and repeating no prefix.
func TestConfigErrorFormat(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	type bad struct {
		value   string
		wantVar string   // "" means the variable itself
		env     []string // needed beside it
	}
	kafka := []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=k:9092"}
	standby := []string{"BRIDGE_LEADER_ELECTION=lease", "BRIDGE_NATS_URL=nats://n:4222", "BRIDGE_CHECKPOINT=nats-kv"}
	strs := map[string]bad{
		"BRIDGE_SINK":                        {value: "rabbitmq"},
		"BRIDGE_NATS_EMBEDDED_ADDR":          {value: "4222"},
		"BRIDGE_HTTP_ADDR":                   {value: "8080"},
		"BRIDGE_LOG_LEVEL":                   {value: "loud"},
		"BRIDGE_LOG_FORMAT":                  {value: "xml"},
		"ZULIP_CONFIG":                       {value: missing},
		"ZULIP_SITE":                         {value: "ftp://chat.example.com"},
		"ZULIP_EMAIL":                        {value: "bot"},
		"ZULIP_API_KEY":                      {value: "a b"},
		"ZULIP_API_KEY_FILE":                 {value: missing, env: []string{"ZULIP_API_KEY="}},
		"ZULIP_CERT":                         {value: missing},
		"ZULIP_CERT_KEY":                     {value: missing},
		"ZULIP_CERT_BUNDLE":                  {value: missing},
		"BRIDGE_EVENT_TYPES":                 {value: "Message!"},
		"BRIDGE_ZULIP_FETCH_EVENT_TYPES":     {value: "*"},
		"BRIDGE_NARROW":                      {value: "stream:Denmark"},
		"BRIDGE_SUBJECT_PREFIX":              {value: "zu lip"},
		"BRIDGE_SUBJECT_TEMPLATE":            {value: "{prefix}.{x}"},
		"BRIDGE_TOPIC_TEMPLATE":              {value: "{prefix}.{x}"},
		"BRIDGE_CLOUDEVENTS":                 {value: "yes"},
		"BRIDGE_CHECKPOINT":                  {value: "etcd"},
		"BRIDGE_CHECKPOINT_NAME":             {value: "a b"},
		"BRIDGE_SPOOL":                       {value: "maybe"},
		"BRIDGE_SPOOL_MAX_BYTES":             {value: "1000"},
		"BRIDGE_LEADER_ELECTION":             {value: "zookeeper"},
		"BRIDGE_LEADER_LEASE_NAME":           {value: "Not_A_Name", env: standby},
		"BRIDGE_LEADER_LEASE_NAMESPACE":      {value: "Not_A_Namespace", env: standby},
		"BRIDGE_LEADER_NATS_BUCKET":          {value: "a.b", env: []string{"BRIDGE_LEADER_ELECTION=nats-kv", "BRIDGE_NATS_URL=nats://n:4222", "BRIDGE_CHECKPOINT=nats-kv"}},
		"BRIDGE_CHECKPOINT_KEY":              {value: "a b"},
		"BRIDGE_CHECKPOINT_KV_BUCKET":        {value: "a.b"},
		"BRIDGE_CHECKPOINT_KAFKA_TOPIC":      {value: "a/b"},
		"BRIDGE_NATS_URL":                    {value: "http://nats:4222"},
		"BRIDGE_NATS_STREAM":                 {value: "a.b"},
		"BRIDGE_NATS_CREDS":                  {value: missing},
		"BRIDGE_NATS_NKEY":                   {value: missing},
		"BRIDGE_NATS_USER":                   {value: "bridge", wantVar: "BRIDGE_NATS_PASSWORD"},
		"BRIDGE_NATS_PASSWORD":               {value: "secret", wantVar: "BRIDGE_NATS_USER"},
		"BRIDGE_NATS_PASSWORD_FILE":          {value: missing},
		"BRIDGE_NATS_TOKEN":                  {value: "secret", wantVar: "BRIDGE_NATS_TOKEN", env: []string{"BRIDGE_NATS_USER=u", "BRIDGE_NATS_PASSWORD=p"}},
		"BRIDGE_NATS_TOKEN_FILE":             {value: missing},
		"BRIDGE_NATS_TLS_CA":                 {value: missing},
		"BRIDGE_NATS_TLS_CERT":               {value: missing, wantVar: "BRIDGE_NATS_TLS_KEY"},
		"BRIDGE_NATS_TLS_KEY":                {value: missing, wantVar: "BRIDGE_NATS_TLS_CERT"},
		"BRIDGE_KAFKA_BROKERS":               {value: "nohost", env: []string{"BRIDGE_SINK=kafka"}},
		"BRIDGE_KAFKA_TOPIC_PREFIX":          {value: "a b", env: kafka},
		"BRIDGE_KAFKA_SASL_MECHANISM":        {value: "kerberos", env: kafka},
		"BRIDGE_KAFKA_USERNAME":              {value: "u", wantVar: "BRIDGE_KAFKA_SASL_MECHANISM", env: kafka},
		"BRIDGE_KAFKA_PASSWORD":              {value: "p", wantVar: "BRIDGE_KAFKA_SASL_MECHANISM", env: kafka},
		"BRIDGE_KAFKA_PASSWORD_FILE":         {value: missing, env: kafka},
		"BRIDGE_KAFKA_TLS_CA":                {value: missing, env: kafka},
		"BRIDGE_KAFKA_TLS_CERT":              {value: missing, wantVar: "BRIDGE_KAFKA_TLS_KEY", env: kafka},
		"BRIDGE_KAFKA_TLS_KEY":               {value: missing, wantVar: "BRIDGE_KAFKA_TLS_CERT", env: kafka},
		"BRIDGE_KAFKA_COMPRESSION":           {value: "brotli", env: kafka},
		"OTEL_TRACES_EXPORTER":               {value: "jaeger"},
		"OTEL_EXPORTER_OTLP_ENDPOINT":        {value: "ftp://collector"},
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": {value: "ftp://collector"},
		"OTEL_EXPORTER_OTLP_PROTOCOL":        {value: "thrift"},
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": {value: "thrift"},
		"OTEL_METRICS_EXPORTER":              {value: "statsd"},
		"OTEL_PROPAGATORS":                   {value: "b3"},

		"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": {value: "ftp://collector"},
		"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": {value: "thrift"},
	}
	// Free text that no value makes invalid.
	free := map[string]bool{"BRIDGE_STATE_DIR": true, "BRIDGE_SPOOL_DIR": true, "BRIDGE_KAFKA_CLIENT_ID": true, "BRIDGE_KAFKA_TLS_SERVER_NAME": true,
		"BRIDGE_LEADER_IDENTITY": true, "KUBECONFIG": true}
	for _, v := range vars() {
		b, ok := strs[v.Key]
		typ := v.Type
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch {
		case ok:
		case typ == reflect.TypeFor[time.Duration]():
			b = bad{value: "soon"}
		case typ.Kind() == reflect.Bool:
			b = bad{value: "maybe"}
		case typ.Kind() == reflect.Int, typ.Kind() == reflect.Int64:
			b = bad{value: "many"}
		case free[v.Key]:
			continue
		default:
			// A new variable: give it an invalid value above, or list it
			// as free text.
			t.Errorf("%s (%s) has no invalid value in this test", v.Key, v.Type)
			continue
		}
		if strings.HasPrefix(v.Key, "BRIDGE_KAFKA_") && b.env == nil {
			b.env = kafka
		}
		want := cmp.Or(b.wantVar, v.Key)
		env := override(validEnv(t), append(append([]string(nil), b.env...), v.Key+"="+b.value))
		_, err := loadConfig(env)
		if err == nil {
			t.Errorf("%s=%s was accepted", v.Key, b.value)
			continue
		}
		named := false
		for _, line := range strings.Split(err.Error(), "\n") {
			if !errorLine.MatchString(line) {
				t.Errorf("%s=%s: %q is not in the format VAR: problem (example: VAR=value)", v.Key, b.value, line)
			}
			if i := strings.Index(line, " (example: "); i >= 0 && (!strings.HasSuffix(line, ")") || !regexp.MustCompile(`^[A-Z][A-Z0-9_]*=`).MatchString(line[i+len(" (example: "):])) {
				t.Errorf("%s=%s: %q has a malformed example", v.Key, b.value, line)
			}
			if stutters(line) {
				t.Errorf("%s=%s: %q repeats a prefix", v.Key, b.value, line)
			}
			if strings.HasPrefix(line, want+": ") {
				named = true
			}
		}
		if !named {
			t.Errorf("%s=%s: no error names %s:\n%v", v.Key, b.value, want, err)
		}
	}
}
