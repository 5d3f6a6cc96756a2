package zuliptest

import (
	"bytes"
	"encoding/json"
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

// MarshalJSON writes the fields in order. Values are encoded with
// encoding/json, except json.RawMessage values, which are written verbatim so
// that event bytes recorded for Delivered are exactly the bytes sent.
func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(f.key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		if raw, ok := f.value.(json.RawMessage); ok {
			b.Write(raw)
			continue
		}
		v, err := marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// rawList is a JSON array of pre-encoded elements, written verbatim.
type rawList []json.RawMessage

func (l rawList) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, e := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(e)
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}

// marshal encodes v without HTML escaping: Zulip (orjson) writes '<', '>'
// and '&' as they are, and rendered message content is full of them.
func marshal(v any) ([]byte, error) {
	if o, ok := v.(object); ok {
		return o.MarshalJSON()
	}
	if l, ok := v.(rawList); ok {
		return l.MarshalJSON()
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func compactJSON(raw []byte) (json.RawMessage, error) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
