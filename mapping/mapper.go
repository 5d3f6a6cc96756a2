package mapping

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/zulip-bridge/zulip-bridge/source"
)

// Mapper turns Zulip events of one site into broker messages. It is
// immutable after New and safe for concurrent use.
type Mapper struct {
	prefix      string
	subject     *template
	topic       *template
	cloudEvents string
	sink        string
	host        string // canonical site host: Zulip-Site, dedup keys
	source      string // canonical site URL: CloudEvents source
	siteToken   []byte // EscapeToken(host), for {site}
}

// New returns a Mapper for the Zulip site (source.ParseSite of ZULIP_SITE).
// It fails if cfg is invalid or site is the zero Site.
//
// The site's host, lower-cased and without a default port, is the
// Zulip-Site header and the first part of every dedup key, so spelling
// ZULIP_SITE differently (trailing slash, explicit :443, upper case) after a
// restart cannot change the dedup keys of the same events.
func New(cfg Config, site source.Site) (*Mapper, error) {
	subject, topic, err := cfg.compile()
	if err != nil {
		return nil, err
	}
	if site.IsZero() {
		return nil, errors.New("mapping: no Zulip site: parse ZULIP_SITE with source.ParseSite")
	}
	cfg = cfg.withDefaults()
	return &Mapper{
		prefix:      cfg.SubjectPrefix,
		subject:     subject,
		topic:       topic,
		cloudEvents: cfg.CloudEvents,
		sink:        cfg.Sink,
		host:        site.Host(),
		source:      site.Origin(),
		siteToken:   appendEscaped(nil, []byte(site.Host())),
	}, nil
}

// Prefix returns BRIDGE_SUBJECT_PREFIX (default applied): the first token
// of every subject and topic, templates included, so <prefix>.> captures
// every subject and <prefix>. begins every Kafka topic.
func (m *Mapper) Prefix() string { return m.prefix }

// Site returns the site host that the Mapper puts in Zulip-Site and dedup
// keys, e.g. "chat.example.com".
func (m *Mapper) Site() string { return m.host }

// EventInfo is what the mapper read from an event: its id, type, op, and
// the id and time of the new message of a message event. The bridge's
// pipeline takes event and message ids from the source's parse of the
// batch instead; its telemetry reads Timestamp, so that it does not parse
// the payload again. EventInfo is the same whatever the CloudEvents mode.
type EventInfo struct {
	// ID is the event id to acknowledge; -1 for backfilled messages and
	// control events, which come from no queue.
	ID int64
	// Type and Op are the event's type and op ("" when it has none).
	Type, Op string
	// MessageID is the id of the new message of a message event (live or
	// backfilled), to track the highest message id seen; 0 for every
	// other event, including those that refer to a message (reaction,
	// update_message), whose id is in the Zulip-Message-Id header.
	MessageID int64
	// Timestamp is the new message's "timestamp" (Unix seconds, when the
	// server received it) for a message event, live or backfilled: the
	// message.timestamp member of the event. 0 for every other event, and
	// when the message has no timestamp or one that is not a non-negative
	// integer; it is not range-checked (a timestamp beyond year 9999 is
	// kept, though no CloudEvents time is made of it).
	Timestamp int64
}

// peek reads an event's id, type, op, message id and timestamp without
// mapping it. It validates the event as Map does, so an event peek accepts
// Map accepts too, unless a rendered name is invalid.
func peek(raw []byte) (EventInfo, error) {
	var ev event
	if err := parseEvent(raw, nil, &ev); err != nil {
		return EventInfo{}, err
	}
	typ, op, err := ev.typeAndOp()
	if err != nil {
		return EventInfo{}, err
	}
	info := EventInfo{ID: ev.id.v, Type: typ, Op: op}
	if err := ev.check(info.Type, true); err != nil {
		return EventInfo{}, err
	}
	if info.Type == "message" {
		info.MessageID = ev.msg.id.v
		info.Timestamp = ev.msg.timestamp.orZero()
	}
	return info, nil
}

// typeAndOp decodes and checks the event's type and op; op is "" when the
// event has none (or an empty one).
func (ev *event) typeAndOp() (typ, op string, err error) {
	if !ev.typ.ok {
		return "", "", fmt.Errorf(`%w: no string member "type"`, ErrInvalidEvent)
	}
	typ = ev.typ.intern()
	if err := checkToken(typ); err != nil {
		return "", "", fmt.Errorf("%w: type: %v", ErrInvalidEvent, err)
	}
	if ev.op.ok {
		op = ev.op.intern()
		if err := checkToken(op); op != "" && err != nil {
			return "", "", fmt.Errorf("%w: op: %v", ErrInvalidEvent, err)
		}
	}
	return typ, op, nil
}

// vocabulary holds the event types and ops of Zulip's API, so that the
// strings of an event cost no allocation in the common case.
var vocabulary = func() map[string]string {
	words := strings.Fields(`alert_words attachment custom_profile_fields default_stream_groups
		default_streams delete_message drafts has_zoom_token heartbeat invites_changed message
		muted_topics muted_users onboarding_steps presence reaction realm realm_bot realm_domains
		realm_emoji realm_export realm_filters realm_linkifiers realm_playgrounds realm_user
		realm_user_settings_defaults restart scheduled_messages stream submessage subscription
		typing update_display_settings update_global_notifications update_message
		update_message_flags user_group user_settings user_status user_topic web_reload_client
		add add_members add_subgroups change create deactivated delete peer_add peer_remove
		remove remove_members remove_subgroups start stop update update_dict`)
	m := make(map[string]string, len(words))
	for _, w := range words {
		m[w] = w
	}
	return m
}()

// intern returns the decoded string, shared with vocabulary when it is in it.
func (s str) intern() string {
	if !s.esc {
		if w, ok := vocabulary[string(s.raw)]; ok {
			return w
		}
	}
	return s.String()
}

// check enforces what every event needs to be published: an event id
// (unless backfilled) and, for a message event, the message id its dedup
// key is made of.
func (ev *event) check(typ string, needID bool) error {
	if needID && !ev.id.ok {
		return fmt.Errorf(`%w: %s event: "id" is missing or not a non-negative integer`, ErrInvalidEvent, typ)
	}
	if typ == "message" && !ev.msg.id.ok {
		return fmt.Errorf(`%w: message event: "message" has no non-negative integer "id"`, ErrInvalidEvent)
	}
	return nil
}

// checkToken accepts what Zulip uses as event types and ops, which the
// default names use unescaped: letters, digits, '_' and '-'.
func checkToken(t string) error {
	if len(t) == 0 {
		return errors.New("empty")
	}
	if len(t) > 100 {
		return fmt.Errorf("%d characters, the limit is 100", len(t))
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; !isTokenByte(c) {
			return fmt.Errorf("%q: character %q is not a letter, digit, '_' or '-'", t, c)
		}
	}
	return nil
}

// checkQueueID accepts the queue ids Zulip hands out ("1517975029:0", a
// UUID) and anything else that keeps dedup keys unambiguous.
func checkQueueID(q string) error {
	if q == "" {
		return fmt.Errorf("%w: empty", ErrInvalidQueueID)
	}
	if len(q) > 200 {
		return fmt.Errorf("%w: %d characters, the limit is 200", ErrInvalidQueueID, len(q))
	}
	// <site>/message/<id> is the dedup key of a message; a queue named
	// "message" would give its event <id> the same key.
	if q == "message" {
		return fmt.Errorf(`%w: "message" is reserved for message dedup keys`, ErrInvalidQueueID)
	}
	for i := 0; i < len(q); i++ {
		if c := q[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return fmt.Errorf("%w: %q: only printable ASCII without '/' or spaces", ErrInvalidQueueID, q)
		}
	}
	return nil
}

// Map turns one event from the queue queueID into a message. raw must be
// one JSON object as the server sent it; the Message's Payload is raw
// itself (or, in structured CloudEvents mode, an envelope that embeds it
// byte for byte), so raw must not be modified afterwards.
//
// Errors wrap ErrInvalidEvent, ErrInvalidName or ErrInvalidQueueID.
func (m *Mapper) Map(raw []byte, queueID string) (*Message, error) {
	return m.mapRaw(raw, nil, queueID)
}

// MapEvent is Map of ev.Raw, an event as the source read it: the values
// the source scanned without reading them (ev.Skipped) are stepped over,
// not scanned a second time. The result is Map's.
func (m *Mapper) MapEvent(ev source.Event, queueID string) (*Message, error) {
	return m.mapRaw(ev.Raw, ev.Skipped, queueID)
}

func (m *Mapper) mapRaw(raw []byte, jumps []source.Span, queueID string) (*Message, error) {
	if err := checkQueueID(queueID); err != nil {
		return nil, err
	}
	var ev event
	if err := parseEvent(raw, jumps, &ev); err != nil {
		return nil, err
	}
	return m.build(raw, &ev, queueID, false)
}

// MapBackfilled turns a message object from GET /messages, fetched after a
// queue was lost, into the message its live event would have been.
//
// The payload is a synthetic event of the live shape,
// {"type":"message","message":{...},"flags":[...]}: the message object
// byte for byte except its "flags" member, which moves to the top level as
// the server does for live events ([] if the object has none). It has no
// "id" (no queue delivered it) and so the message has no Zulip-Event-Id
// header, but it carries Zulip-Backfill: true. Subject, topic, key and
// dedup key (<site host>/message/<message id>) are those of the live
// event, so a message that was published live before the queue was lost is
// recognised as a duplicate.
func (m *Mapper) MapBackfilled(rawMessage []byte, queueID string) (*Message, error) {
	return m.mapBackfilled(rawMessage, nil, queueID)
}

// MapBackfilledMessage is MapBackfilled of msg.Raw, a message as the
// source read it: the values the source scanned without reading them
// (msg.Skipped) are stepped over, not scanned a second time. The result is
// MapBackfilled's.
func (m *Mapper) MapBackfilledMessage(msg source.Message, queueID string) (*Message, error) {
	return m.mapBackfilled(msg.Raw, msg.Skipped, queueID)
}

func (m *Mapper) mapBackfilled(rawMessage []byte, jumps []source.Span, queueID string) (*Message, error) {
	if err := checkQueueID(queueID); err != nil {
		return nil, err
	}
	var msg message
	if err := parseMessage(rawMessage, jumps, &msg); err != nil {
		return nil, err
	}
	// The object without the white space around it, and without "flags"
	// (whose cut lies inside it).
	lo, hi := trimmed(rawMessage)
	cut := msg.flagsCut
	if cut[1] == 0 {
		cut = [2]int{hi, hi}
	}
	flags := msg.flags
	if flags == nil {
		flags = []byte("[]")
	}
	payload := make([]byte, 0, len(backfillHead)+hi-lo-(cut[1]-cut[0])+len(backfillFlags)+len(flags)+1)
	payload = append(payload, backfillHead...)
	payload = append(payload, rawMessage[lo:cut[0]]...)
	payload = append(payload, rawMessage[cut[1]:hi]...)
	payload = append(payload, backfillFlags...)
	payload = append(payload, flags...)
	payload = append(payload, '}')
	// What parseEvent would read of payload, which is well formed: the
	// type, and the message as read above (build reads only its values,
	// not their positions); no id.
	ev := event{typ: str{raw: messageType, ok: true}, msg: msg}
	return m.build(payload, &ev, queueID, true)
}

// The parts of the event MapBackfilled makes of a message, around it and
// its flags.
const (
	backfillHead  = `{"type":"message","message":`
	backfillFlags = `,"flags":`
)

// messageType is the type of the events MapBackfilled makes. build only
// reads it.
var messageType = []byte("message")

// trimmed returns where b is without the JSON white space around it:
// b[lo:hi].
func trimmed(b []byte) (lo, hi int) {
	s := scanner{data: b}
	s.ws()
	lo, hi = s.pos, len(b)
	for hi > lo && (b[hi-1] == ' ' || b[hi-1] == '\t' || b[hi-1] == '\n' || b[hi-1] == '\r') {
		hi--
	}
	return lo, hi
}

// Control returns a control event of the bridge itself (docs/names.md):
// subject <prefix>.bridge.<kind>, Kafka topic <prefix>.bridge, no key,
// headers Zulip-Event-Type: bridge and Zulip-Event-Op: <kind>, payload as
// given (a JSON object). Templates do not apply: control events keep fixed
// names that consumers can rely on.
//
// queueID is the queue the control event is about (the pipeline passes
// the lost queue for "resync", so that a resync repeated after a crash,
// under whatever new queue, is the same event; and the registered queue
// for "state"): the dedup key <site host>/<queue id>/bridge.<kind> makes a
// control event that is published again after a crash a duplicate, and
// cannot equal any event's key (event ids are integers).
func (m *Mapper) Control(kind, queueID string, payload []byte) (*Message, error) {
	if err := checkQueueID(queueID); err != nil {
		return nil, err
	}
	return m.control(kind, queueID, m.host+"/"+queueID+"/bridge."+kind, payload)
}

// ControlWithID is Control for a control event that stands for one event
// or message the bridge could not map (kind "invalid"), carrying it in its
// payload. Its dedup key is the one that event or message would have had,
// so that it is published once, and is a duplicate of the event itself
// should a later configuration map it. id is either
//
//   - "<event id>": an event of queue queueID, key <site host>/<queue id>/<event id>;
//   - "message/<message id>": a backfilled message, key <site host>/message/<message id>.
func (m *Mapper) ControlWithID(kind, queueID, id string, payload []byte) (*Message, error) {
	if err := checkQueueID(queueID); err != nil {
		return nil, err
	}
	digits, isMessage := strings.CutPrefix(id, "message/")
	n, err := strconv.ParseUint(digits, 10, 63)
	if err != nil {
		return nil, fmt.Errorf(`control %s: id %q: want "<event id>" or "message/<message id>"`, kind, id)
	}
	// Formatted again so that "007" gives the key of event 7.
	key := m.host + "/" + queueID + "/" + strconv.FormatUint(n, 10)
	if isMessage {
		key = m.host + "/message/" + strconv.FormatUint(n, 10)
	}
	return m.control(kind, queueID, key, payload)
}

func (m *Mapper) control(kind, queueID, dedupKey string, payload []byte) (*Message, error) {
	if err := checkToken(kind); err != nil {
		return nil, fmt.Errorf("control kind: %v", err)
	}
	s := &scanner{data: payload}
	if s.peek() != '{' {
		return nil, fmt.Errorf("control %s: payload must be a JSON object", kind)
	}
	if err := s.skip(0); err != nil {
		return nil, fmt.Errorf("control %s: %w", kind, err)
	}
	if err := s.end(); err != nil {
		return nil, fmt.Errorf("control %s: %w", kind, err)
	}
	subject := m.prefix + ".bridge." + kind
	if err := checkName([]byte(subject), natsName); err != nil {
		return nil, err
	}
	topic := m.prefix + ".bridge"
	if err := checkName([]byte(topic), kafkaName); err != nil {
		return nil, err
	}
	return m.assemble(&parts{
		subject:  subject,
		topic:    topic,
		typ:      "bridge",
		op:       kind,
		eventID:  -1,
		queueID:  queueID,
		dedupKey: dedupKey,
		ceType:   "com.github.zulip-bridge." + kind,
		payload:  payload,
	}), nil
}

// parts are the pieces of a message before headers and payload are
// assembled for the configured CloudEvents mode.
type parts struct {
	subject, topic string
	key            []byte
	typ, op        string
	eventID        int64  // -1: none
	eventIDText    string // eventID in decimal
	queueID        string
	dedupKey       string
	streamID       string // "" when unknown, as are the next three
	stream         string
	hasStream      bool // the stream name is known (it may be "")
	topicName      string
	hasTopic       bool
	messageID      string
	backfill       bool
	newMessageID   int64
	timestamp      int64 // the new message's, Unix seconds; 0: none
	ceType         string
	ceTime         string
	payload        []byte
}

// build renders the names, key and header values of an event. All the
// strings are written into one buffer and converted once: a message costs
// a few allocations whatever its number of headers.
func (m *Mapper) build(raw []byte, ev *event, queueID string, backfill bool) (*Message, error) {
	typ, op, err := ev.typeAndOp()
	if err != nil {
		return nil, err
	}
	if err := ev.check(typ, !backfill); err != nil {
		return nil, err
	}
	n := classify(ev, typ)
	v := vars{prefix: m.prefix, typ: typ, op: op, site: m.siteToken, naming: &n}

	buf := make([]byte, 0, 256+len(n.stream.raw)*3+len(n.topic.raw)*4)
	type span struct{ a, b int }
	mark := func(a int) span { return span{a, len(buf)} }

	a := len(buf)
	if buf, err = m.subject.render(buf, &v); err != nil {
		return nil, err
	}
	subject := mark(a)
	a = len(buf)
	if buf, err = m.topic.render(buf, &v); err != nil {
		return nil, err
	}
	topic := mark(a)
	a = len(buf)
	buf = n.appendKey(buf)
	key := mark(a)

	a = len(buf)
	buf = append(buf, m.host...)
	if typ == "message" {
		buf = strconv.AppendInt(append(buf, "/message/"...), ev.msg.id.v, 10)
	} else {
		buf = strconv.AppendInt(append(append(append(buf, '/'), queueID...), '/'), ev.id.v, 10)
	}
	dedup := mark(a)

	a = len(buf)
	if !backfill {
		buf = strconv.AppendInt(buf, ev.id.v, 10)
	}
	eventID := mark(a)

	var streamID, stream, topicName, messageID, ceType, ceTime span
	if n.scope == scopeStream {
		a = len(buf)
		buf = strconv.AppendInt(buf, n.streamID, 10)
		streamID = mark(a)
		a = len(buf)
		buf = appendHeaderStr(buf, n.stream)
		stream = mark(a)
		a = len(buf)
		buf = appendHeaderStr(buf, n.topic)
		topicName = mark(a)
	}
	if n.messageID.ok {
		a = len(buf)
		buf = strconv.AppendInt(buf, n.messageID.v, 10)
		messageID = mark(a)
	}
	if m.cloudEvents != CloudEventsOff {
		a = len(buf)
		buf = append(append(buf, "org.zulip.event."...), typ...)
		if op != "" {
			buf = append(append(buf, '.'), op...)
		}
		ceType = mark(a)
		if n.time.ok && n.time.v < 253402300800 { // RFC 3339 ends at year 9999
			a = len(buf)
			buf = time.Unix(n.time.v, 0).UTC().AppendFormat(buf, time.RFC3339)
			ceTime = mark(a)
		}
	}

	// The strings share buf's memory instead of a copy of it: nothing
	// writes to buf after this point, and Key, the one part of it handed
	// out as []byte, is read-only to sinks (Message).
	s := unsafe.String(unsafe.SliceData(buf), len(buf))
	sub := func(x span) string { return s[x.a:x.b] }
	p := &parts{
		subject:     sub(subject),
		topic:       sub(topic),
		typ:         typ,
		eventID:     ev.id.v,
		eventIDText: sub(eventID),
		queueID:     queueID,
		dedupKey:    sub(dedup),
		streamID:    sub(streamID),
		stream:      sub(stream),
		hasStream:   n.scope == scopeStream && n.stream.ok,
		topicName:   sub(topicName),
		hasTopic:    n.scope == scopeStream && n.topic.ok,
		messageID:   sub(messageID),
		backfill:    backfill,
		ceType:      sub(ceType),
		ceTime:      sub(ceTime),
		payload:     raw,
	}
	if key.b > key.a {
		p.key = buf[key.a:key.b:key.b]
	}
	p.op = op
	if backfill {
		p.eventID = -1
	}
	if typ == "message" {
		p.newMessageID = ev.msg.id.v
		p.timestamp = ev.msg.timestamp.orZero()
	}
	return m.assemble(p), nil
}

// maxHeaders is the most headers a message has: 12 of docs/names.md and
// Zulip-Backfill, plus 6 CloudEvents attributes; plainHeaders is the most
// without CloudEvents attribute headers (modes off and structured).
const (
	maxHeaders   = 18
	plainHeaders = 12
)

// assemble lays out headers and payload for the CloudEvents mode and
// sink. One allocation holds the Message and its header array, sized for
// the mode.
func (m *Mapper) assemble(p *parts) *Message {
	var (
		msg *Message
		h   []Header
	)
	if m.cloudEvents == CloudEventsBinary {
		blk := new(struct {
			msg Message
			hdr [maxHeaders]Header
		})
		msg, h = &blk.msg, blk.hdr[:0]
	} else {
		blk := new(struct {
			msg Message
			hdr [plainHeaders]Header
		})
		msg, h = &blk.msg, blk.hdr[:0]
	}
	add := func(k, v string) { h = append(h, Header{Key: k, Value: v}) }

	add(HeaderEventType, p.typ)
	if p.op != "" {
		add(HeaderEventOp, p.op)
	}
	if p.eventID >= 0 {
		add(HeaderEventID, p.eventIDText)
	}
	add(HeaderQueueID, p.queueID)
	add(HeaderSite, m.host)
	add(HeaderDedupKey, p.dedupKey)
	if p.streamID != "" {
		add(HeaderStreamID, p.streamID)
	}
	if p.hasStream {
		add(HeaderStream, p.stream)
	}
	if p.hasTopic {
		add(HeaderTopic, p.topicName)
	}
	if p.messageID != "" {
		add(HeaderMessageID, p.messageID)
	}
	if p.backfill {
		add(HeaderBackfill, "true")
	}

	payload := p.payload
	kafka := m.sink == SinkKafka
	contentType := HeaderContentType
	if kafka && m.cloudEvents != CloudEventsOff {
		// The Kafka binding maps datacontenttype to the header
		// "content-type", and Kafka header names are case-sensitive.
		contentType = "content-type"
	}
	switch m.cloudEvents {
	case CloudEventsOff:
		add(contentType, contentTypeJSON)
	case CloudEventsBinary:
		add(contentType, contentTypeJSON)
		if kafka {
			add("ce_specversion", "1.0")
			add("ce_id", p.dedupKey)
			add("ce_source", m.source)
			add("ce_type", p.ceType)
			if p.ceTime != "" {
				add("ce_time", p.ceTime)
			}
		} else {
			// The NATS binding keeps Content-Type for telling structured
			// from binary mode and gives datacontenttype its own header.
			add("ce-specversion", "1.0")
			add("ce-id", percentEncode(p.dedupKey))
			add("ce-source", percentEncode(m.source))
			add("ce-type", p.ceType)
			if p.ceTime != "" {
				add("ce-time", p.ceTime)
			}
			add("ce-datacontenttype", contentTypeJSON)
		}
	case CloudEventsStructured:
		add(contentType, contentTypeCloudEvents)
		payload = envelope(p, m.source)
	}

	*msg = Message{
		Subject:  p.subject,
		Topic:    p.topic,
		Key:      p.key,
		Headers:  h[:len(h):len(h)],
		Payload:  payload,
		DedupKey: p.dedupKey,
		Event:    EventInfo{ID: p.eventID, Type: p.typ, Op: p.op, MessageID: p.newMessageID, Timestamp: p.timestamp},
	}
	return msg
}

// Content types.
const (
	contentTypeJSON        = "application/json"
	contentTypeCloudEvents = "application/cloudevents+json; charset=UTF-8"
)

func percentEncode(v string) string {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			return string(appendPercentEncoded(make([]byte, 0, len(v)+16), v))
		}
	}
	return v
}

// envelope wraps the payload in the CloudEvents JSON format, embedding it
// byte for byte as "data".
func envelope(p *parts, source string) []byte {
	b := make([]byte, 0, len(p.payload)+len(p.dedupKey)+len(source)+len(p.ceType)+160)
	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendJSONString(b, p.dedupKey)
	b = append(b, `,"source":`...)
	b = appendJSONString(b, source)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, p.ceType)
	if p.ceTime != "" {
		b = append(b, `,"time":`...)
		b = appendJSONString(b, p.ceTime)
	}
	b = append(b, `,"datacontenttype":"application/json","data":`...)
	b = append(b, p.payload...)
	return append(b, '}')
}
