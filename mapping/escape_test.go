package mapping

import (
	"math/rand/v2"
	"strings"
	"testing"
	"testing/quick"
	"unicode/utf8"
)

func TestEscapeToken(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Denmark", "Denmark"},
		{"zulip-terminal", "zulip-terminal"},
		{"design team", "design_20team"},
		{"a.b", "a_2Eb"},
		{"a_2Eb", "a_5F2Eb"},
		{"*", "_2A"},
		{">", "_3E"},
		{"café", "caf_C3_A9"},
		{"", "_"},
		{"_", "_5F"},
		{"\x00\n", "_00_0A"},
		{"\xff", "_FF"},
	}
	for _, tt := range tests {
		if got := EscapeToken(tt.in); got != tt.want {
			t.Errorf("EscapeToken(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := UnescapeToken(tt.want)
		if err != nil || back != tt.in {
			t.Errorf("UnescapeToken(%q) = %q, %v; want %q", tt.want, back, err, tt.in)
		}
	}
}

func TestUnescapeTokenRejects(t *testing.T) {
	// Each of these is a token EscapeToken never returns; accepting one
	// would give some string two tokens.
	for _, tok := range []string{"", "a.b", "_", "_2", "_2e", "_41", "_2D", "a b", "é", "__"} {
		if tok == "_" {
			continue // the empty string's token
		}
		if s, err := UnescapeToken(tok); err == nil {
			t.Errorf("UnescapeToken(%q) = %q, want an error", tok, s)
		}
	}
}

// TestEscapeInjective is the property that names rely on: EscapeToken has
// an inverse, so no two strings share a token, and every token is valid in
// both brokers' names.
func TestEscapeInjective(t *testing.T) {
	roundTrip := func(s string) bool {
		tok := EscapeToken(s)
		back, err := UnescapeToken(tok)
		return err == nil && back == s && tokenValid(tok)
	}
	if err := quick.Check(roundTrip, &quick.Config{MaxCount: 20000}); err != nil {
		t.Error(err)
	}

	// testing/quick draws from all of Unicode; names collide, if ever,
	// between strings that are alike, so also draw from a small alphabet
	// of the characters that escaping treats specially.
	const alphabet = "aZ09-_. *>%\x00\n\t\xc3\xa9\xff"
	rng := rand.New(rand.NewPCG(1, 2))
	seen := make(map[string]string)
	for range 200000 {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		if !roundTrip(s) {
			t.Fatalf("round trip of %q failed", s)
		}
		tok := EscapeToken(s)
		if prev, ok := seen[tok]; ok && prev != s {
			t.Fatalf("%q and %q both escape to %q", prev, s, tok)
		}
		seen[tok] = s
	}
}

// tokenValid: one token of a NATS subject and of a Kafka topic.
func tokenValid(tok string) bool {
	if tok == "" || !utf8.ValidString(tok) {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if !nameByte(tok[i], kafkaName) || !nameByte(tok[i], natsName) {
			return false
		}
	}
	return true
}
