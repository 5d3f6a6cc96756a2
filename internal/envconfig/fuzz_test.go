package envconfig

import (
	"errors"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzed has a variable of every kind the bridge's configuration uses
// (bool, *bool, int, int64, time.Duration, string, []string) and of the
// others Parse checks, two of them secret (one by its name, one by its tag),
// one in a nested struct.
type fuzzed struct {
	Bool      bool          `env:"FZ_BOOL" envDefault:"false"`
	PBool     *bool         `env:"FZ_PBOOL" example:"true"`
	Int       int           `env:"FZ_INT" envDefault:"1000"`
	Int8      int8          `env:"FZ_INT8"`
	Int64     int64         `env:"FZ_INT64" envDefault:"67108864" example:"1024"`
	Uint16    uint16        `env:"FZ_UINT16"`
	Float     float64       `env:"FZ_FLOAT"`
	Dur       time.Duration `env:"FZ_DUR" envDefault:"30s"`
	Str       string        `env:"FZ_STR" envDefault:"nats" example:"kafka"`
	List      []string      `env:"FZ_LIST" envSeparator:","`
	Token     int           `env:"FZ_NATS_TOKEN"`
	SecretDur time.Duration `env:"FZ_SECRET_DUR" secret:"true"`
	Nested    struct {
		Pages int `env:"FZ_PAGES" envDefault:"1000"`
	}
}

// fuzzedVars are the variables of fuzzed in field order: the order of the
// fuzz arguments and of the errors.
var fuzzedVars = []string{"FZ_BOOL", "FZ_PBOOL", "FZ_INT", "FZ_INT8", "FZ_INT64", "FZ_UINT16", "FZ_FLOAT",
	"FZ_DUR", "FZ_STR", "FZ_LIST", "FZ_NATS_TOKEN", "FZ_SECRET_DUR", "FZ_PAGES"}

// typeProblem is the end of a problem: what the value is not.
var typeProblem = regexp.MustCompile(`^ is not (a|an) [a-z][a-z0-9 (),-]*[a-z0-9)]$`)

// FuzzParse holds Parse to a reference reading of every value with strconv
// and time.ParseDuration, as the environment library reads them. A value
// the reference reads is the field's value (an unset or empty variable: its
// default); any other is an error, one line per bad variable in field order,
// each `VAR: "value" is not <kind> (example: VAR=value)`, where a secret's
// value is shown as "the value", so that nothing of it is in the text.
func FuzzParse(f *testing.F) {
	f.Add("true", "false", "10", "-128", "9223372036854775807", "65535", "1.5", "30s", "kafka", "a,b", "7", "1m", "1")
	f.Add("yes please", "maybe", "1k", "128", "1e3", "-1", "fast", "soon", "", ",", "hunter2-secret", "hunter2-secret", "x")
	f.Add("", "", "", "", "", "", "", "", "", "", "", "", "")
	f.Add("1", "T", "+5", "0x10", "-0", "0", "NaN", " 5s", " spaced ", "a, b ,", "", " 1s", "1_000")
	f.Add("True", "FALSE", "2147483648", "007", "", "99999", "-Inf", "1h2m3.5s", "\x00", "\xff", "12", "-1ns", "")
	f.Fuzz(func(t *testing.T, b, pb, i, i8, i64, u16, fl, dur, str, list, token, secretDur, pages string) {
		values := []string{b, pb, i, i8, i64, u16, fl, dur, str, list, token, secretDur, pages}
		var environ []string
		for k, v := range values {
			if strings.Contains(v, "\x00") {
				return // no environment holds a NUL
			}
			environ = append(environ, fuzzedVars[k]+"="+v)
		}
		var got fuzzed
		err := Parse(&got, environ)

		want, bad := referenceParse(values)
		if err == nil {
			if len(bad) > 0 {
				t.Fatalf("Parse(%q) accepted %v", environ, bad)
			}
			if !sameFuzzed(got, want) {
				t.Fatalf("Parse(%q) = %+v, want %+v", environ, got, want)
			}
			return
		}
		var ce *Error
		lines := strings.Split(err.Error(), "\n")
		if !errors.As(err, &ce) || len(lines) != len(bad) {
			t.Fatalf("Parse(%q) = %q; want an envconfig.Error for each of %v", environ, err, bad)
		}
		for n, line := range lines {
			k := bad[n]
			key, value := fuzzedVars[k], values[k]
			shown := strconv.Quote(value)
			if key == "FZ_NATS_TOKEN" || key == "FZ_SECRET_DUR" {
				shown = "the value"
			}
			prefix := key + ": " + shown
			m := exampleSuffix.FindStringSubmatchIndex(line)
			if !strings.HasPrefix(line, prefix) || m == nil || m[0] < len(prefix) ||
				!typeProblem.MatchString(line[len(prefix):m[0]]) || line[m[2]:m[3]] != key {
				t.Fatalf("Parse(%q): error %q, want %s is not <kind> (example: %s=<value>)", environ, line, prefix, key)
			}
			if example := line[m[4]:m[5]]; fields[k].parse(new(fuzzed), example) != nil {
				t.Fatalf("Parse(%q): error %q: the example %q is not a valid value", environ, line, example)
			}
		}
	})
}

// exampleSuffix is the end of a line: the variable and its example.
var exampleSuffix = regexp.MustCompile(` \(example: ([A-Z0-9_]+)=(.*)\)$`)

// fields read each variable of fuzzed as the environment library documents
// it: strconv for numbers and booleans, time.ParseDuration, a comma split
// for the list, in fuzzedVars order.
var fields = []struct {
	def   string // envDefault
	parse func(c *fuzzed, s string) error
}{
	{"false", func(c *fuzzed, s string) (err error) { c.Bool, err = strconv.ParseBool(s); return err }},
	{"", func(c *fuzzed, s string) error { v, err := strconv.ParseBool(s); c.PBool = &v; return err }},
	{"1000", func(c *fuzzed, s string) (err error) { c.Int, err = strconv.Atoi(s); return err }},
	{"", func(c *fuzzed, s string) error { n, err := strconv.ParseInt(s, 10, 8); c.Int8 = int8(n); return err }},
	{"67108864", func(c *fuzzed, s string) (err error) { c.Int64, err = strconv.ParseInt(s, 10, 64); return err }},
	{"", func(c *fuzzed, s string) error {
		n, err := strconv.ParseUint(s, 10, 16)
		c.Uint16 = uint16(n)
		return err
	}},
	{"", func(c *fuzzed, s string) (err error) { c.Float, err = strconv.ParseFloat(s, 64); return err }},
	{"30s", func(c *fuzzed, s string) (err error) { c.Dur, err = time.ParseDuration(s); return err }},
	{"nats", func(c *fuzzed, s string) error { c.Str = s; return nil }},
	{"", func(c *fuzzed, s string) error { c.List = strings.Split(s, ","); return nil }},
	{"", func(c *fuzzed, s string) (err error) { c.Token, err = strconv.Atoi(s); return err }},
	{"", func(c *fuzzed, s string) (err error) { c.SecretDur, err = time.ParseDuration(s); return err }},
	{"1000", func(c *fuzzed, s string) (err error) { c.Nested.Pages, err = strconv.Atoi(s); return err }},
}

// referenceParse reads values with fields; "" is unset, so the default.
// It returns the indexes of the values it cannot read.
func referenceParse(values []string) (fuzzed, []int) {
	var c fuzzed
	var bad []int
	for k, v := range values {
		if v == "" {
			v = fields[k].def
		}
		if v == "" {
			continue
		}
		if err := fields[k].parse(&c, v); err != nil {
			bad = append(bad, k)
		}
	}
	return c, bad
}

func sameFuzzed(a, b fuzzed) bool {
	if math.IsNaN(a.Float) && math.IsNaN(b.Float) {
		a.Float, b.Float = 0, 0
	}
	return reflect.DeepEqual(a, b)
}
