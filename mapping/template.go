package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Default templates: exactly the names of docs/names.md.
const (
	// DefaultSubjectTemplate renders <prefix>.<type>[.<op>][.stream.<id>|.direct].
	DefaultSubjectTemplate = "{prefix}.{type}.{op}.{scope}"
	// DefaultTopicTemplate renders <prefix>.<type>.
	DefaultTopicTemplate = "{prefix}.{type}"

	exampleSubjectTemplate = "{prefix}.{type}.{op}.{scope}.{topic}"
	exampleTopicTemplate   = "{prefix}.{type}.{op}"
)

// Limits on rendered names.
const (
	// MaxSubjectLength bounds NATS subjects. NATS itself sets no limit on
	// a subject, but nats-server rejects a protocol line longer than its
	// max_control_line (4096 bytes by default), and that line also holds
	// the reply subject and sizes; a subject over the limit would make the
	// server close the connection on every attempt to publish it.
	MaxSubjectLength = 2048
	// MaxTopicLength is Kafka's limit on topic names.
	MaxTopicLength = 249
)

// nameKind is the broker a template renders names for.
type nameKind uint8

const (
	natsName nameKind = iota
	kafkaName
)

func (k nameKind) String() string {
	if k == kafkaName {
		return "Kafka topic"
	}
	return "NATS subject"
}

// placeholder is a value a template substitutes.
type placeholder uint8

const (
	phNone     placeholder = iota
	phPrefix               // BRIDGE_SUBJECT_PREFIX
	phType                 // event type, e.g. message
	phOp                   // event op, e.g. add; absent if the event has none
	phScope                // "stream.<id>", "direct", or absent (docs/names.md)
	phStreamID             // stream id, or absent
	phStream               // escaped stream name, or absent
	phTopic                // escaped Zulip topic, or absent
	phSite                 // escaped site host
)

var placeholders = map[string]placeholder{
	"prefix":    phPrefix,
	"type":      phType,
	"op":        phOp,
	"scope":     phScope,
	"stream_id": phStreamID,
	"stream":    phStream,
	"topic":     phTopic,
	"site":      phSite,
}

// segment is one dot-separated part of a template: literal text around at
// most one placeholder.
type segment struct {
	before, after string
	ph            placeholder
}

// template is a parsed BRIDGE_SUBJECT_TEMPLATE or BRIDGE_TOPIC_TEMPLATE.
//
// A segment whose placeholder has no value for an event and that has no
// literal text is left out together with its dot; this is how the default
// subject omits a missing op or scope. A value is never empty when present
// (EscapeToken writes "" as "_"), so leaving a segment out cannot make two
// events' names collide.
//
// A segment holds at most one placeholder: "{stream}{topic}" would render
// the streams "a" + topic "bc" and "ab" + "c" alike.
type template struct {
	kind nameKind
	segs []segment
}

func parseTemplate(src string, kind nameKind) (*template, error) {
	if len(src) > 1000 {
		return nil, fmt.Errorf("%d characters, the limit is 1000", len(src))
	}
	t := &template{kind: kind}
	parts := strings.Split(src, ".")
	if parts[0] != "{prefix}" {
		// Spec section 2: the prefix is the first token of every subject
		// and topic, which is what lets the JetStream stream capture
		// <prefix>.> and the Kafka sink own the topics <prefix>.*.
		return nil, errors.New("must start with the segment {prefix}: BRIDGE_SUBJECT_PREFIX is the first token of every name")
	}
	for i, part := range parts {
		if part == "" {
			return nil, fmt.Errorf("segment %d is empty (leading, trailing or doubled '.')", i+1)
		}
		seg, err := parseSegment(part, kind)
		if err != nil {
			return nil, fmt.Errorf("segment %d %q: %w", i+1, part, err)
		}
		t.segs = append(t.segs, seg)
	}
	return t, nil
}

func parseSegment(part string, kind nameKind) (segment, error) {
	var seg segment
	open := strings.IndexByte(part, '{')
	if open < 0 {
		if strings.IndexByte(part, '}') >= 0 {
			return seg, errors.New("'}' without '{'")
		}
		seg.before = part
		return seg, checkLiteral(part, kind)
	}
	end := strings.IndexByte(part[open:], '}')
	if end < 0 {
		return seg, errors.New("'{' without '}'")
	}
	end += open
	name := part[open+1 : end]
	ph, ok := placeholders[name]
	if !ok {
		return seg, fmt.Errorf("unknown placeholder {%s}: known are {prefix} {type} {op} {scope} {stream_id} {stream} {topic} {site}", name)
	}
	seg.before, seg.ph, seg.after = part[:open], ph, part[end+1:]
	if strings.ContainsAny(seg.before, "}") || strings.ContainsAny(seg.after, "{}") {
		return seg, errors.New("at most one placeholder per segment, so that values cannot run into each other; separate them with '.'")
	}
	if err := checkLiteral(seg.before+seg.after, kind); err != nil {
		return seg, err
	}
	return seg, nil
}

// checkLiteral accepts literal template text: for Kafka the topic
// alphabet, for NATS any printable ASCII but the wildcards.
func checkLiteral(s string, kind nameKind) error {
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i], kind) {
			return badByte(s[i], kind)
		}
	}
	return nil
}

// nameByte reports whether c may appear in a token of a kind name.
func nameByte(c byte, kind nameKind) bool {
	if kind == kafkaName {
		return isTokenByte(c)
	}
	return c > ' ' && c < 0x7f && c != '*' && c != '>' && c != '.'
}

func badByte(c byte, kind nameKind) error {
	if kind == kafkaName {
		return fmt.Errorf("character %q is not allowed in a Kafka topic (allowed: letters, digits, '.', '_', '-')", c)
	}
	return fmt.Errorf("character %q is not allowed in a NATS subject token (no whitespace, '*', '>' or non-ASCII)", c)
}

// vars are the values one event gives the placeholders.
type vars struct {
	prefix string
	typ    string // a validated token
	op     string // a validated token, "" when absent
	site   []byte // escaped host
	naming *naming
}

// value appends p's value to dst and reports whether p has one.
func (v *vars) value(dst []byte, p placeholder) ([]byte, bool) {
	n := v.naming
	switch p {
	case phPrefix:
		return append(dst, v.prefix...), true
	case phType:
		return append(dst, v.typ...), true
	case phOp:
		return append(dst, v.op...), v.op != ""
	case phSite:
		return append(dst, v.site...), true
	case phScope:
		switch n.scope {
		case scopeStream:
			return strconv.AppendInt(append(dst, "stream."...), n.streamID, 10), true
		case scopeDirect:
			return append(dst, "direct"...), true
		}
	case phStreamID:
		if n.scope == scopeStream {
			return strconv.AppendInt(dst, n.streamID, 10), true
		}
	case phStream:
		if n.stream.ok {
			return appendEscapedStr(dst, n.stream), true
		}
	case phTopic:
		if n.topic.ok {
			return appendEscapedStr(dst, n.topic), true
		}
	}
	return dst, false
}

func appendEscapedStr(dst []byte, s str) []byte {
	if !s.esc {
		return appendEscaped(dst, s.raw)
	}
	var buf [128]byte
	return appendEscaped(dst, s.appendTo(buf[:0]))
}

// render appends the name for v to dst and checks it.
func (t *template) render(dst []byte, v *vars) ([]byte, error) {
	start := len(dst)
	for _, seg := range t.segs {
		mark := len(dst)
		if mark > start {
			dst = append(dst, '.')
		}
		dst = append(dst, seg.before...)
		var set bool
		dst, set = v.value(dst, seg.ph)
		if !set && seg.before == "" && seg.after == "" {
			dst = dst[:mark]
			continue
		}
		dst = append(dst, seg.after...)
	}
	return dst, checkName(dst[start:], t.kind)
}

// checkName validates a rendered name. Templates are checked when they are
// parsed and values are escaped, so what remains to fail here is length;
// the full check stays as the guarantee that no invalid name is returned.
func checkName(name []byte, kind nameKind) error {
	limit := MaxSubjectLength
	if kind == kafkaName {
		limit = MaxTopicLength
	}
	if len(name) > limit {
		return fmt.Errorf("%w: %s of %d characters, the limit is %d", ErrInvalidName, kind, len(name), limit)
	}
	if len(name) == 0 {
		return fmt.Errorf("%w: empty %s", ErrInvalidName, kind)
	}
	if kind == kafkaName && (string(name) == "." || string(name) == "..") {
		return fmt.Errorf("%w: %s %q", ErrInvalidName, kind, name)
	}
	prev := byte('.')
	for _, c := range name {
		if c == '.' && prev == '.' && kind == natsName {
			return fmt.Errorf("%w: %s %q has an empty token", ErrInvalidName, kind, name)
		}
		prev = c
		if c == '.' {
			continue
		}
		if !nameByte(c, kind) {
			return fmt.Errorf("%w: %s %q: %v", ErrInvalidName, kind, name, badByte(c, kind))
		}
	}
	if prev == '.' && kind == natsName {
		return fmt.Errorf("%w: %s %q has an empty token", ErrInvalidName, kind, name)
	}
	return nil
}
