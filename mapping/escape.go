package mapping

import (
	"errors"
	"fmt"
)

// escapeChar introduces an escape in a name token. '_' because Kafka
// topics allow only [A-Za-z0-9._-], '.' separates NATS tokens, and '-' is
// far more common than '_' in Zulip stream names.
const escapeChar = '_'

const upperHex = "0123456789ABCDEF"

// isVerbatim reports whether c is copied unchanged into an escaped token.
func isVerbatim(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
}

// EscapeToken returns s as one name token that is valid in NATS subjects
// and Kafka topics alike: letters, digits and '-' are kept, every other
// byte (of the UTF-8 encoding) becomes '_' and two upper-case hex digits,
// and the empty string becomes a lone "_". Different strings always give
// different tokens (UnescapeToken inverts it), so a stream or topic name
// substituted into a subject can never collide with another one.
//
// Examples: "Denmark" -> "Denmark", "design team" -> "design_20team",
// "a.b" -> "a_2Eb", "café" -> "caf_C3_A9", "" -> "_".
func EscapeToken(s string) string {
	return string(appendEscaped(nil, []byte(s)))
}

func appendEscaped(dst, s []byte) []byte {
	if len(s) == 0 {
		return append(dst, escapeChar)
	}
	for _, c := range s {
		if isVerbatim(c) {
			dst = append(dst, c)
		} else {
			dst = append(dst, escapeChar, upperHex[c>>4], upperHex[c&0xF])
		}
	}
	return dst
}

// UnescapeToken returns the string that EscapeToken turned into tok.
func UnescapeToken(tok string) (string, error) {
	if tok == string(escapeChar) {
		return "", nil
	}
	if tok == "" {
		return "", errors.New("empty token: EscapeToken never returns one")
	}
	out := make([]byte, 0, len(tok))
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		switch {
		case isVerbatim(c):
			out = append(out, c)
		case c == escapeChar && i+2 < len(tok) && isUpperHex(tok[i+1]) && isUpperHex(tok[i+2]):
			b := unhex(tok[i+1])<<4 | unhex(tok[i+2])
			if isVerbatim(b) {
				// EscapeToken never escapes these; accepting them would
				// give one string two tokens.
				return "", fmt.Errorf("byte %d: %q is escaped but need not be", i, b)
			}
			out = append(out, b)
			i += 2
		default:
			return "", fmt.Errorf("byte %d: %q cannot appear in an escaped token", i, c)
		}
	}
	return string(out), nil
}

func isUpperHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'A' + 10
}
