package zuliptest

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// object is a JSON object whose keys keep the order they were added in.
// Zulip's responses are built from Python dicts, which keep insertion order;
// following the same order keeps the simulator's bodies close to upstream's
// and, above all, byte-for-byte deterministic.
type object []field

type field struct {
	key   string
	value any
}

func (o object) with(key string, value any) object {
	return append(o, field{key, value})
}

// MarshalJSON writes the fields in order. Values are encoded as
// encoding/json encodes them without HTML escaping, except json.RawMessage
// values, which are written verbatim so that event bytes recorded for
// Delivered are exactly the bytes sent.
func (o object) MarshalJSON() ([]byte, error) {
	return o.appendJSON(nil)
}

func (o object) appendJSON(b []byte) ([]byte, error) {
	b = append(b, '{')
	for i, f := range o {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendString(b, f.key); err != nil {
			return nil, err
		}
		b = append(b, ':')
		if b, err = appendValue(b, f.value); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// rawList is a JSON array of pre-encoded elements, written verbatim.
type rawList []json.RawMessage

func (l rawList) MarshalJSON() ([]byte, error) {
	return l.appendJSON(nil), nil
}

func (l rawList) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, e := range l {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e...)
	}
	return append(b, ']')
}

// marshal encodes v without HTML escaping: Zulip (orjson) writes '<', '>'
// and '&' as they are, and rendered message content is full of them.
func marshal(v any) ([]byte, error) {
	return appendValue(nil, v)
}

// appendValue appends v encoded as marshal encodes it. The types the
// simulator's bodies are made of are written directly; anything else (maps,
// structs, floats) goes through encoding/json, which gives the same bytes,
// only slower.
func appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case json.RawMessage:
		if x == nil {
			return append(b, "null"...), nil
		}
		return append(b, x...), nil
	case object: // nil too is {}, as before
		return x.appendJSON(b)
	case rawList:
		return x.appendJSON(b), nil
	case string:
		return appendString(b, x)
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case []any:
		return appendArray(b, x, appendValue)
	case []object:
		return appendArray(b, x, func(b []byte, o object) ([]byte, error) { return appendValue(b, o) })
	case []string:
		return appendArray(b, x, appendString)
	case []int64:
		return appendArray(b, x, func(b []byte, n int64) ([]byte, error) { return strconv.AppendInt(b, n, 10), nil })
	}
	return appendStdlib(b, v)
}

// appendString quotes s as encoding/json does without HTML escaping:
// printable ASCII other than '"' and '\\' as it is; a string with anything
// else is left to encoding/json, whose escapes (control characters,
// U+2028, invalid UTF-8) are the reference.
func appendString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return appendStdlib(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

func appendStdlib(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

func compactJSON(raw []byte) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// appendArray appends xs as a JSON array (null when nil), each element by
// elem.
func appendArray[T any](b []byte, xs []T, elem func([]byte, T) ([]byte, error)) ([]byte, error) {
	if xs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i, e := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = elem(b, e); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}
