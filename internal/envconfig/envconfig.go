package envconfig

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Var describes one environment variable of a configuration struct.
type Var struct {
	Key     string // e.g. BRIDGE_SINK
	Default string // envDefault, "" when none
	Secret  bool   // value must never be shown
	File    bool   // the variable holds a file path whose content is the value
	Example string // a valid value, from the `example` tag
	Help    string // one line, from the `help` tag
	Type    reflect.Type
}

// Error is a configuration error about one variable, in the one format of
// every configuration error of the bridge:
//
//	VAR: problem (example: VAR=value)
type Error struct {
	Key     string // the variable, e.g. BRIDGE_SINK
	Problem string // what is wrong; it never quotes a secret
	// Example is a valid value of Key; or, where the fix is to set another
	// variable (a secret's file instead of the secret), a whole
	// OTHER_VAR=value. Empty: no example (secrets have none).
	Example string
}

func (e *Error) Error() string {
	msg := e.Key + ": " + e.Problem
	switch {
	case e.Example == "":
	case isAssignment(e.Example):
		msg += " (example: " + e.Example + ")"
	default:
		msg += " (example: " + e.Key + "=" + e.Example + ")"
	}
	return msg
}

// isAssignment reports whether s is a whole VAR=value.
func isAssignment(s string) bool {
	name, _, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return false
	}
	for i, c := range name {
		if !(c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// secretSuffixes are the names that hold credentials even when a struct
// forgets to tag them secret: better to hide too much than too little.
var secretSuffixes = []string{"_API_KEY", "_PASSWORD", "_TOKEN", "_NKEY", "_SECRET", "_CREDS_CONTENT"}

// IsSecretName reports whether a variable name denotes a credential.
func IsSecretName(key string) bool {
	k := strings.TrimSuffix(key, "_FILE")
	for _, s := range secretSuffixes {
		if strings.HasSuffix(k, s) {
			return true
		}
	}
	return false
}

// Vars lists the variables of the struct v points to, in field order,
// each once (two packages may read the same variable, e.g. the state dir).
func Vars(v any) []Var {
	var out []Var
	seen := map[string]bool{}
	walk(reflect.TypeOf(v), func(f reflect.StructField) {
		key, opts := splitTag(f.Tag.Get("env"))
		if key == "" || key == "-" || seen[key] {
			return
		}
		seen[key] = true
		out = append(out, Var{
			Key:     key,
			Default: f.Tag.Get("envDefault"),
			Secret:  f.Tag.Get("secret") == "true" || IsSecretName(key),
			File:    contains(opts, "file"),
			Example: f.Tag.Get("example"),
			Help:    f.Tag.Get("help"),
			Type:    f.Type,
		})
	})
	return out
}

func walk(t reflect.Type, fn func(reflect.StructField)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if _, has := f.Tag.Lookup("env"); !has && isStruct(f.Type) {
			walk(f.Type, fn)
			continue
		}
		fn(f)
	}
}

func isStruct(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	// time.Time and friends parse from text; they are values, not sections.
	return !reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]())
}

func splitTag(tag string) (string, []string) {
	parts := strings.Split(tag, ",")
	return parts[0], parts[1:]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Parse fills the struct v points to from environ (KEY=VALUE pairs, as
// os.Environ returns them). Every value that is set is checked against its
// field's type first, so that an error names the variable and shows a valid
// value instead of a Go field name. The environment library then reads the
// booleans, numbers and durations with the same function that checked them
// (parseScalar), so a value that passed the check is the value the field
// gets, and no value reaches the library's own parse errors. A value is
// read as it is: surrounding spaces make any of these kinds invalid.
func Parse(v any, environ []string) error {
	envMap := ToMap(environ)
	var errs []error
	funcMap := map[reflect.Type]env.ParserFunc{}
	walk(reflect.TypeOf(v), func(f reflect.StructField) {
		key, opts := splitTag(f.Tag.Get("env"))
		if key == "" || key == "-" {
			return
		}
		registerParser(funcMap, f.Type)
		if contains(opts, "file") {
			return
		}
		val, ok := envMap[key]
		if !ok || val == "" {
			return
		}
		if err := checkValue(f.Type, val); err != nil {
			shown := fmt.Sprintf("%q", val)
			if f.Tag.Get("secret") == "true" || IsSecretName(key) {
				shown = "the value"
			}
			errs = append(errs, &Error{
				Key:     key,
				Problem: fmt.Sprintf("%s is not %s", shown, err),
				Example: exampleFor(f),
			})
		}
	})
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := env.ParseWithOptions(v, env.Options{Environment: envMap, FuncMap: funcMap}); err != nil {
		return cleanEnvError(err)
	}
	return nil
}

// registerParser makes parseScalar the library's parser of t (or of what t
// points to), when t is a kind parseScalar reads.
func registerParser(funcMap map[reflect.Type]env.ParserFunc, t reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if _, scalar, _ := parseScalar(t, ""); !scalar {
		return
	}
	funcMap[t] = func(val string) (any, error) {
		v, _, err := parseScalar(t, val)
		if err != nil {
			return nil, err
		}
		return v.Interface(), nil
	}
}

// cleanEnvError rewrites the env library's errors so they name variables
// and never echo a value (a file variable's error would otherwise be a path,
// harmless, but a parse error could quote a secret).
func cleanEnvError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return err
	}
	var out []error
	for _, e := range agg.Errors {
		var fileErr env.LoadFileContentError
		var notSet env.VarIsNotSetError
		var empty env.EmptyVarError
		switch {
		case errors.As(e, &fileErr):
			out = append(out, &Error{Key: fileErr.Key, Problem: fmt.Sprintf("cannot read file %q: %v", fileErr.Filename, errors.Unwrap(fileErr.Err))})
		case errors.As(e, &notSet):
			out = append(out, &Error{Key: notSet.Key, Problem: "is required but not set"})
		case errors.As(e, &empty):
			out = append(out, &Error{Key: empty.Key, Problem: "must not be empty"})
		default:
			out = append(out, e)
		}
	}
	return errors.Join(out...)
}

// checkValue reports what val is not, when it is not a value of t.
func checkValue(t reflect.Type, val string) error {
	_, _, err := parseScalar(t, val)
	return err
}

// parseScalar reads val as a value of t, pointers dereferenced: a boolean
// (strconv.ParseBool), an integer of t's size, a float or a time.Duration,
// each as it is, untrimmed. scalar is false, and the value and error zero,
// for the other kinds (strings, slices, text unmarshalers), which the
// library reads itself.
// The error says what val is not ("an integer from 0 to 255"), for
// "VALUE is not ...".
func parseScalar(t reflect.Type, val string) (v reflect.Value, scalar bool, err error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[encoding.TextUnmarshaler]()) {
		return reflect.Value{}, false, nil // the library calls UnmarshalText
	}
	v = reflect.New(t).Elem()
	if t == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(val)
		if err != nil {
			return reflect.Value{}, true, errors.New("a duration")
		}
		v.SetInt(int64(d))
		return v, true, nil
	}
	switch t.Kind() {
	case reflect.Bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return reflect.Value{}, true, errors.New("a boolean (true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(val, 10, t.Bits())
		if errors.Is(err, strconv.ErrRange) {
			lo := int64(-1) << (t.Bits() - 1)
			return reflect.Value{}, true, fmt.Errorf("an integer from %d to %d", lo, ^lo)
		}
		if err != nil {
			return reflect.Value{}, true, errors.New("an integer")
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(val, 10, t.Bits())
		if errors.Is(err, strconv.ErrRange) {
			return reflect.Value{}, true, fmt.Errorf("an integer from 0 to %d", ^uint64(0)>>(64-t.Bits()))
		}
		if err != nil {
			return reflect.Value{}, true, errors.New("a non-negative integer")
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(val, t.Bits())
		if err != nil {
			return reflect.Value{}, true, errors.New("a number")
		}
		v.SetFloat(x)
	default:
		return reflect.Value{}, false, nil
	}
	return v, true, nil
}

func exampleFor(f reflect.StructField) string {
	if ex := f.Tag.Get("example"); ex != "" {
		return ex
	}
	if d := f.Tag.Get("envDefault"); d != "" {
		return d
	}
	t := f.Type
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Duration]() {
		return "30s"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "10"
	case reflect.Float32, reflect.Float64:
		return "1.5"
	}
	return ""
}

// ToMap turns KEY=VALUE pairs into a map; later pairs win, as in a shell.
func ToMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Describe renders the `bridge env` table: every variable, its default, and
// its current value, secrets shown only as set or unset.
func Describe(vars []Var, environ []string) string {
	envMap := ToMap(environ)
	var b strings.Builder
	w := 0
	for _, v := range vars {
		w = max(w, len(v.Key))
	}
	for _, v := range vars {
		val, set := envMap[v.Key]
		var shown string
		switch {
		case !set:
			shown = "unset"
		case v.Secret:
			shown = "set (secret)"
		default:
			shown = "set: " + strconv.Quote(val)
		}
		def := v.Default
		if def == "" {
			def = "-"
		}
		fmt.Fprintf(&b, "%-*s  default=%s  %s\n", w, v.Key, strconv.Quote(def), shown)
	}
	return b.String()
}

// varName is a variable name inside a help text, which Markdown shows as
// code.
var varName = regexp.MustCompile(`\b[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9]\b`)

// Markdown renders the configuration table of the docs from the tags:
// variable, default ("-" for none) and the help text, in vars order, with
// the variable names in the help shown as code. The docs hold exactly this
// (`bridge env --markdown`), which a test checks.
func Markdown(vars []Var) string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n| --- | --- | --- |\n")
	for _, v := range vars {
		def := v.Default
		if def == "" {
			def = "-"
		}
		help := strings.ReplaceAll(v.Help, "|", "\\|")
		help = varName.ReplaceAllString(help, "`$0`")
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", v.Key, def, help)
	}
	return b.String()
}

// Unknown returns the BRIDGE_* and ZULIP_* variables in environ that no
// field reads: almost always a typo worth a warning.
func Unknown(vars []Var, environ []string, prefixes ...string) []string {
	known := map[string]bool{}
	for _, v := range vars {
		known[v.Key] = true
	}
	var out []string
	for k := range ToMap(environ) {
		for _, p := range prefixes {
			if strings.HasPrefix(k, p) && !known[k] {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
