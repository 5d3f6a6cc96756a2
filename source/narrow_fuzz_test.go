package source

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzNormalizeNarrow holds normalizeNarrow (BRIDGE_NARROW) to a reference
// reading of the same value, written independently with encoding/json: both
// accept the same narrows and agree on the terms; what it returns is in
// the canonical list-of-pairs form, a fixed point of normalizeNarrow, and
// any narrow the user wrote in that form already comes back term for term.
func FuzzNormalizeNarrow(f *testing.F) {
	for _, s := range []string{
		// TestNormalizeNarrow and the BRIDGE_NARROW cases of TestValidate.
		``, `[]`, `["stream","Denmark"]`, ` [ [ "stream" , "Denmark" ] ] `,
		`[["stream","Denmark"],["topic","tivoli"]]`, `[["sender",12]]`, `["is","dm"]`,
		`stream:Denmark`, `[["stream","a","b"]]`, `["stream",{}]`,
		// Edges: null, numbers, escapes, nesting, empty operator.
		`null`, `[null]`, `[["stream",null]]`, `[["",1]]`, `[[null,"x"]]`, `["id",1e400]`,
		`[["sender",-0.5E+3]]`, `[["stream","\u00e9\ud800<&>"]]`, `[[["stream","x"]]]`,
		`[["stream","a"],"topic"]`, `["stream"]`, `[1,2]`, `{"stream":"x"}`, "\u00a0[]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := normalizeNarrow(in)
		want, werr := referenceNarrow(in)
		if (err != nil) != (werr != nil) {
			t.Fatalf("normalizeNarrow(%q) = %q, %v; the reference reading says %v", in, got, err, werr)
		}
		if err != nil {
			if got != "" {
				t.Fatalf("normalizeNarrow(%q) returned %q with the error %v", in, got, err)
			}
			return
		}
		if len(want) == 0 {
			if got != "" {
				t.Fatalf("normalizeNarrow(%q) = %q, want no narrow", in, got)
			}
			return
		}
		terms, perr := referenceNarrow(got)
		if perr != nil || !strings.HasPrefix(got, "[[") {
			t.Fatalf("normalizeNarrow(%q) = %q, which is not a list of pairs: %v", in, got, perr)
		}
		if !reflect.DeepEqual(terms, want) {
			t.Fatalf("normalizeNarrow(%q) = %q: terms %#v, want %#v", in, got, terms, want)
		}
		again, err := normalizeNarrow(got)
		if err != nil || again != got {
			t.Fatalf("normalizeNarrow is not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
	})
}

// narrowTerm is one [operator, operand] of a narrow; the operand is a
// string or a json.Number.
type narrowTerm struct {
	op      string
	operand any
}

// referenceNarrow reads a narrow as Zulip's API documents it: a JSON list
// of [operator, operand] pairs, or (older docs) the one pair itself, with
// an operator that is a non-empty string and an operand that is a string or
// a number. null and [] are no narrow.
func referenceNarrow(s string) ([]narrowTerm, error) {
	s = strings.TrimSpace(s) // as the environment value is read
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var top any
	if err := dec.Decode(&top); err != nil {
		return nil, err
	}
	if rest := strings.TrimLeft(s[dec.InputOffset():], " \t\r\n"); rest != "" {
		return nil, errors.New("data after the narrow")
	}
	if top == nil {
		return nil, nil
	}
	list, ok := top.([]any)
	if !ok {
		return nil, errors.New("not a list")
	}
	if len(list) > 0 {
		if _, single := list[0].(string); single {
			list = []any{list}
		}
	}
	var out []narrowTerm
	for _, e := range list {
		pair, ok := e.([]any)
		if !ok || len(pair) != 2 {
			return nil, errors.New("a term is not a pair")
		}
		op, ok := pair[0].(string)
		if !ok || op == "" {
			return nil, errors.New("an operator is not a non-empty string")
		}
		switch pair[1].(type) {
		case string, json.Number:
		default:
			return nil, errors.New("an operand is neither a string nor a number")
		}
		out = append(out, narrowTerm{op, pair[1]})
	}
	return out, nil
}
