package telemetry

import (
	"strconv"
)

// maxTimestamp is the end of year 9999: a later "timestamp" is not a time.
const maxTimestamp = 253402300799

// messageTimestamp returns the "timestamp" member (Unix seconds) of the
// "message" object of a message event, e.g.
// {"type":"message","message":{...,"timestamp":1700000000},...}, also when
// the event is the "data" of a structured-mode CloudEvent.
//
// It runs for every published message, so it does not decode the payload:
// it walks the top-level members and those of "message" once, skipping
// every other value without building it, stops at the timestamp, and
// allocates nothing. It relies on the mapping having validated the JSON;
// on input it cannot follow it returns false rather than a wrong number.
// Member names written with escapes are not recognised, which no Zulip
// server does.
func messageTimestamp(payload []byte) (float64, bool) {
	s := jsonWalker{b: payload}
	ts, found := s.eventTimestamp(true)
	if !found || !(ts >= 0 && ts <= maxTimestamp) {
		return 0, false
	}
	return ts, true
}

// eventTimestamp walks the event object at the cursor; inEnvelope allows
// one level of CloudEvents "data" around it.
func (s *jsonWalker) eventTimestamp(inEnvelope bool) (ts float64, found bool) {
	// Returning false stops a walk: on a malformed value, or as soon as
	// the timestamp is read, since the rest (often the message content
	// follows it) does not matter.
	s.object(func(key []byte) bool {
		switch {
		case string(key) == "message" && s.peek() == '{':
			s.object(func(key []byte) bool {
				if string(key) != "timestamp" {
					return s.skip()
				}
				ts, found = s.number()
				return false
			})
			return false
		case string(key) == "data" && inEnvelope && s.peek() == '{':
			ts, found = s.eventTimestamp(false)
			return false
		default:
			return s.skip()
		}
	})
	return ts, found
}

// jsonWalker moves through JSON text that is known to be valid.
type jsonWalker struct {
	b []byte
	i int
}

// peek returns the next byte after whitespace, 0 at the end.
func (s *jsonWalker) peek() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// object walks the object at the cursor, calling member with each member
// name once the cursor is on its value; member must consume the value.
func (s *jsonWalker) object(member func(key []byte) bool) bool {
	if s.peek() != '{' {
		return false
	}
	s.i++
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		start := s.i + 1
		if !s.skipString() {
			return false
		}
		key := s.b[start : s.i-1]
		if s.peek() != ':' {
			return false
		}
		s.i++
		if !member(key) {
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// skipString moves past the string that starts at the cursor.
func (s *jsonWalker) skipString() bool {
	for i := s.i + 1; i < len(s.b); i++ {
		switch s.b[i] {
		case '\\':
			i++ // the escaped byte; \uXXXX's hex digits need no care
		case '"':
			s.i = i + 1
			return true
		}
	}
	return false
}

// skip moves past the value at the cursor.
func (s *jsonWalker) skip() bool {
	switch s.peek() {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	case 0:
		return false
	default: // number, true, false, null
		start := s.i
		s.scalarEnd()
		return s.i > start
	}
}

func (s *jsonWalker) scalarEnd() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return
		}
		s.i++
	}
}

// number reads the number at the cursor.
func (s *jsonWalker) number() (float64, bool) {
	if c := s.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, false
	}
	start := s.i
	s.scalarEnd()
	v, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return v, err == nil
}
