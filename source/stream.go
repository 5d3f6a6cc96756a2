package source

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"
)

// This file decodes a GET /events response as it arrives. The body is
// never held whole: events are cut out of a sliding buffer one by one, so
// that memory is bounded by what the caller keeps, not by the backlog. The
// scan is the only pass over the bytes in the source: it checks that the
// body is JSON (as json.Valid would), frames each event and reads, on the
// way, the three members the queue needs (id, type and message.id); the
// mapping package reads the members it needs with its own scanner and
// steps over the values this scan listed in Event.Skipped (a message's
// content, say) instead of scanning them again.

const (
	// streamBufSize is the read buffer of a response; it grows only to hold
	// one event larger than it, and shrinks back after.
	streamBufSize = 64 << 10
	// maxDepth is encoding/json's nesting limit.
	maxDepth = 10000
	// spanBlock is how many Spans each block of eventStream.spans holds.
	spanBlock = 1024
	// maxToken bounds a member name or a type the scanner reads out of an
	// event it does not keep (one over the event limit).
	maxToken = 4096
)

// errUnexpectedEnd is encoding/json's wording for a truncated document.
var errUnexpectedEnd = errors.New("unexpected end of JSON input")

// readError is a failure of the response body itself (a dropped
// connection, a timeout), as opposed to bytes that are not a valid
// response.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// eventStream reads the events of one GET /events response.
type eventStream struct {
	r   io.Reader
	buf []byte
	// i is the next byte to scan, w the end of the data in buf.
	i, w int
	// base is the offset in the body of buf[0].
	base int64
	// evStart is where the event being scanned starts in buf, -1 when it is
	// not kept (none, or one over maxEvent); tokStart likewise for a member
	// name or value the scanner reads. A refill keeps buf from the lower.
	evStart, tokStart int
	tokLost           bool  // the token at tokStart was too long to keep
	evOffset          int64 // body offset of the event being scanned
	rerr              error // what r returned last, once it failed or ended

	maxEvent int
	prev     int64 // id of the last event, first the last_event_id asked with
	index    int   // events read
	state    streamState
	result   string
	gotRes   bool
	err      error // sticky: the first failure
	types    map[string]string
	arena    []byte // where kept events are copied, in blocks
	spans    []Span // where the Skipped of kept events are listed, in blocks
	// evSpans is where the event being scanned starts in spans.
	evSpans int

	// list is the member holding the array: "events" for GET /events,
	// "messages" for GET /messages, whose elements are messages (id and
	// flags read, see message).
	list string
	// foundNewest is the found_newest member of a messages response;
	// flags the flags of the message read last.
	foundNewest bool
	flags       []string
}

type streamState uint8

const (
	beforeEvents streamState = iota // the members before "events"
	firstEvent                      // after "events":[
	inEvents                        // after an event
	done                            // the body ended, well formed
)

func newEventStream(r io.Reader, after int64, maxEvent int) *eventStream {
	return &eventStream{
		r: r, buf: *bufPool.Get().(*[]byte), evStart: -1, tokStart: -1,
		maxEvent: maxEvent, prev: after, types: make(map[string]string), list: "events",
	}
}

// bufPool holds read buffers of streamBufSize. A long-poll at a steady
// rate reads one small response after another: a new buffer each would
// be most of what the bridge allocates, and its garbage collections
// would lengthen the tail of its latency.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, streamBufSize)
	return &b
}}

// release gives the read buffer back once the stream has ended: nothing
// the stream returned points into it (events are copied out, see keep).
func (s *eventStream) release() {
	if len(s.buf) == streamBufSize {
		b := s.buf
		bufPool.Put(&b)
	}
	s.buf = nil
}

// next returns the next event, or io.EOF after the last one once the whole
// body was read and found well formed. Any other error is sticky: a
// *readError when the body failed, otherwise a description of what is
// wrong with the bytes.
func (s *eventStream) next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	ev, err := s.advance()
	if err != nil {
		s.err = err
		s.release()
	}
	return ev, err
}

func (s *eventStream) advance() (Event, error) {
	for {
		switch s.state {
		case done:
			return Event{}, io.EOF
		case beforeEvents:
			if err := s.members(); err != nil {
				return Event{}, err
			}
		case firstEvent, inEvents:
			c, err := s.nonSpace()
			if err != nil {
				return Event{}, err
			}
			if c == ']' {
				s.i++
				s.state = done
				if err := s.members(); err != nil {
					return Event{}, err
				}
				continue
			}
			if s.state == inEvents {
				if c != ',' {
					return Event{}, s.syntax(c, "after an event")
				}
				s.i++
				if c, err = s.nonSpace(); err != nil {
					return Event{}, err
				}
			}
			if c != '{' {
				if err := s.skip(2); err != nil {
					return Event{}, err
				}
				if s.list == "messages" {
					return Event{}, fmt.Errorf("message %d is not an object", s.index)
				}
				return Event{}, fmt.Errorf("event %d is not an object", s.index)
			}
			s.state = inEvents
			if s.list == "messages" {
				return s.message()
			}
			return s.event()
		}
	}
}

// members reads members of the response object: before "events" (state
// beforeEvents, up to the events array) or after it (state done, up to
// the end of the body).
func (s *eventStream) members() error {
	// needComma is false only right after the opening brace.
	needComma := s.state == done
	if !needComma {
		c, err := s.nonSpace()
		if err != nil {
			return err
		}
		if c != '{' {
			return s.syntax(c, "looking for the response object")
		}
		s.i++
	}
	for {
		c, err := s.nonSpace()
		if err != nil {
			return err
		}
		if c == '}' {
			s.i++
			return s.end()
		}
		if needComma {
			if c != ',' {
				return s.syntax(c, "after a member of the response")
			}
			s.i++
			if c, err = s.nonSpace(); err != nil {
				return err
			}
		}
		needComma = true
		name, err := s.memberName(c)
		if err != nil {
			return err
		}
		c, err = s.nonSpace()
		if err != nil {
			return err
		}
		switch {
		case name == s.list:
			if s.state == done {
				return fmt.Errorf("two %s members", s.list)
			}
			if c != '[' {
				if c == 'n' {
					return fmt.Errorf("no %s field", s.list)
				}
				return s.syntax(c, "in the "+s.list+" member, which must be an array")
			}
			s.i++
			s.state = firstEvent
			if s.gotRes && s.result != "success" {
				return fmt.Errorf("result %q, want success", s.result)
			}
			return nil
		case name == "found_newest" && s.list == "messages":
			switch c {
			case 't':
				err = s.literal("true")
			case 'f':
				err = s.literal("false")
			default:
				return s.syntax(c, "in the found_newest member, which must be true or false")
			}
			if err != nil {
				return err
			}
			s.foundNewest = c == 't'
		case name == "result":
			if c != '"' {
				return s.syntax(c, "in the result member, which must be a string")
			}
			v, err := s.stringValue()
			if err != nil {
				return err
			}
			s.result, s.gotRes = v, true
		default:
			if err := s.skip(1); err != nil {
				return err
			}
		}
	}
}

// stringValue reads the string at s.i; "" if it was too long to keep (see
// str).
func (s *eventStream) stringValue() (string, error) {
	s.tokStart, s.tokLost = s.i, false
	esc, err := s.str()
	if err != nil || s.tokLost {
		s.tokStart = -1
		return "", err
	}
	v := s.text(s.buf[s.tokStart:s.i], esc)
	s.tokStart = -1
	return v, nil
}

// end checks that nothing but white space follows the response object,
// and that it said success.
func (s *eventStream) end() error {
	for {
		for s.i < s.w {
			if c := s.buf[s.i]; !isSpace(c) {
				return s.syntax(c, "after the response object")
			}
			s.i++
		}
		if err := s.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
	}
	switch {
	case s.state != done:
		return fmt.Errorf("no %s field", s.list)
	case s.result != "success":
		return fmt.Errorf("result %q, want success", s.result)
	}
	return nil
}

// event scans the event object at s.i.
func (s *eventStream) event() (Event, error) {
	index := s.index
	s.index++
	s.evStart, s.evOffset = s.i, s.base+int64(s.i)
	s.evSpans = len(s.spans)
	defer func() { s.evStart = -1 }()
	var (
		id, msgID      int64
		hasID, hasType bool
		msgIDOK        bool
		typ            string
		idErr          error
	)
	err := s.object("an event", func(name string, c byte) (err error) {
		switch {
		case name == "id":
			id, idErr, err = s.idValue(c, 2)
			hasID = idErr == nil && err == nil
			return err
		case name == "type" && c == '"':
			typ, err = s.stringValue()
			hasType = true
			return err
		case name == "message" && c == '{':
			msgID, msgIDOK, err = s.messageID()
			return err
		}
		switch name {
		case "type":
			hasType, typ = false, ""
		case "message":
			msgIDOK = false
		}
		return s.skipValue(2)
	})
	if err != nil {
		return Event{}, err
	}
	size := int(s.base + int64(s.i) - s.evOffset)
	switch {
	case idErr != nil:
		return Event{}, fmt.Errorf("event %d: id: %v", index, idErr)
	case !hasID:
		return Event{}, fmt.Errorf("event %d has no id", index)
	case !hasType || typ == "":
		return Event{}, fmt.Errorf("event %d (id %d) has no type", index, id)
	case id <= s.prev:
		return Event{}, fmt.Errorf("event %d has id %d, not above %d", index, id, s.prev)
	}
	ev := Event{ID: id, Type: typ, Heartbeat: typ == "heartbeat", Size: size}
	if typ == "message" {
		if !msgIDOK || msgID <= 0 {
			return Event{}, fmt.Errorf("message event %d has no message.id", id)
		}
		ev.MessageID = msgID
	}
	s.cutOut(&ev)
	s.prev = id
	return ev, nil
}

// object scans the object at s.i, calling member for each member with its
// name (as memberName reads it) and the first byte of its value, which
// member must scan past. what names the object in syntax errors.
func (s *eventStream) object(what string, member func(name string, c byte) error) error {
	s.i++
	for first := true; ; first = false {
		c, err := s.nonSpace()
		if err != nil {
			return err
		}
		if c == '}' {
			s.i++
			return nil
		}
		if !first {
			if c != ',' {
				return s.syntax(c, "after a member of "+what)
			}
			s.i++
			if c, err = s.nonSpace(); err != nil {
				return err
			}
		}
		name, err := s.memberName(c)
		if err != nil {
			return err
		}
		if c, err = s.nonSpace(); err != nil {
			return err
		}
		if err := member(name, c); err != nil {
			return err
		}
	}
}

// cutOut keeps the bytes of the element scanned (from s.evStart to s.i)
// as ev.Raw, or marks ev Oversized when they were not kept or are over
// the limit.
func (s *eventStream) cutOut(ev *Event) {
	if s.evStart >= 0 && ev.Size <= s.maxEvent {
		ev.Raw = s.keep(s.buf[s.evStart:s.i])
		if n := len(s.spans); n > s.evSpans {
			ev.Skipped = s.spans[s.evSpans:n:n]
		}
	} else {
		ev.Oversized = true
	}
	s.evSpans = len(s.spans)
}

// skipValue is skip for a value of the event being scanned that nothing
// reads: when the event is kept and the value long enough, its span is
// listed in the event's Skipped.
func (s *eventStream) skipValue(depth int) error {
	start := s.offset()
	if err := s.skip(depth); err != nil {
		return err
	}
	end := s.offset()
	if s.evStart < 0 || end-start < SkipMin || end-s.evOffset > math.MaxInt32 {
		return nil
	}
	if len(s.spans) == cap(s.spans) {
		// A new block, twice the last up to spanBlock (a response of one
		// event needs a few); the events already cut out keep the old
		// one. What the event being scanned listed moves along.
		size := min(max(2*cap(s.spans), 16), spanBlock)
		block := make([]Span, len(s.spans)-s.evSpans, max(size, 2*(len(s.spans)-s.evSpans)))
		copy(block, s.spans[s.evSpans:])
		s.spans, s.evSpans = block, 0
	}
	s.spans = append(s.spans, Span{Start: int32(start - s.evOffset), End: int32(end - s.evOffset)})
	return nil
}

// message scans the message object at s.i, an element of a GET /messages
// response: its id (above the previous one, the first above the anchor)
// and its flags (into s.flags) are read on the way.
func (s *eventStream) message() (Event, error) {
	index := s.index
	s.index++
	s.evStart, s.evOffset = s.i, s.base+int64(s.i)
	s.evSpans = len(s.spans)
	defer func() { s.evStart = -1 }()
	var (
		id              int64
		hasID           bool
		idErr, flagsErr error
	)
	s.flags = nil
	err := s.object("a message", func(name string, c byte) (err error) {
		switch {
		case name == "id":
			id, idErr, err = s.idValue(c, 2)
			hasID = idErr == nil && err == nil
			return err
		case name == "flags" && c == '[':
			if s.flags, err = s.strings(); err != nil {
				return fmt.Errorf("message %d: flags: %w", index, err)
			}
			flagsErr = nil
			return nil
		}
		if name == "flags" {
			s.flags, flagsErr = nil, nil
			if c != 'n' {
				flagsErr = errors.New("not a list of strings")
			}
		}
		return s.skipValue(2)
	})
	if err != nil {
		return Event{}, err
	}
	switch {
	case idErr != nil:
		return Event{}, fmt.Errorf("message %d: id: %v", index, idErr)
	case flagsErr != nil:
		return Event{}, fmt.Errorf("message %d: flags: %v", index, flagsErr)
	case !hasID || id <= s.prev:
		return Event{}, fmt.Errorf("message %d: id missing or not above %d", index, s.prev)
	}
	ev := Event{ID: id, Type: "message", MessageID: id, Size: int(s.base + int64(s.i) - s.evOffset)}
	s.cutOut(&ev)
	s.prev = id
	return ev, nil
}

// strings reads the array of strings at s.i (a message's flags). Repeated
// values share one string (text).
func (s *eventStream) strings() ([]string, error) {
	s.i++
	var out []string
	for first := true; ; first = false {
		c, err := s.nonSpace()
		if err != nil {
			return nil, err
		}
		if c == ']' {
			s.i++
			return out, nil
		}
		if !first {
			if c != ',' {
				return nil, s.syntax(c, "after an element of a list of strings")
			}
			s.i++
			if c, err = s.nonSpace(); err != nil {
				return nil, err
			}
		}
		if c != '"' {
			return nil, s.syntax(c, "in a list of strings")
		}
		v, err := s.stringValue()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
}

// messageID scans the message object of an event and returns its id.
func (s *eventStream) messageID() (id int64, ok bool, err error) {
	err = s.object("a message", func(name string, c byte) error {
		if name != "id" {
			return s.skipValue(3)
		}
		n, bad, err := s.idValue(c, 3)
		id, ok = n, bad == nil && err == nil
		return err
	})
	if err != nil {
		return 0, false, err
	}
	return id, ok, nil
}

// idValue reads the value of an id member, whose first byte is c, nested
// at depth: the id, or in bad why it is not one (a number that is not an
// int64, or not a number at all); err is a failure of the body.
func (s *eventStream) idValue(c byte, depth int) (id int64, bad, err error) {
	if c != '-' && !isDigit(c) {
		return 0, errors.New("not an integer"), s.skip(depth)
	}
	n, err := s.integer()
	switch {
	case err == nil:
		return n, nil, nil
	case errors.Is(err, strconv.ErrRange) || errors.Is(err, strconv.ErrSyntax):
		return 0, err, nil
	}
	return 0, nil, err
}

// keep copies an event out of the read buffer, into blocks sized to what
// is buffered, so that small events do not cost an allocation each.
func (s *eventStream) keep(b []byte) []byte {
	if len(b) > cap(s.arena)-len(s.arena) {
		// Sized to what is buffered from the event on: the events that
		// follow share the block.
		n := max(len(b), min(s.w-s.evStart, 1<<20))
		s.arena = make([]byte, 0, n)
	}
	start := len(s.arena)
	s.arena = append(s.arena, b...)
	return s.arena[start:len(s.arena):len(s.arena)]
}

// text returns the value of a string token (quotes included).
func (s *eventStream) text(tok []byte, escaped bool) string {
	if escaped || !utf8.Valid(tok) {
		// As encoding/json reads it: escapes decoded, invalid UTF-8
		// replaced.
		var v string
		if json.Unmarshal(tok, &v) != nil {
			return ""
		}
		return v
	}
	tok = tok[1 : len(tok)-1]
	if v, ok := s.types[string(tok)]; ok {
		return v
	}
	v := string(tok)
	if len(s.types) < 256 {
		s.types[v] = v
	}
	return v
}

// memberName reads a member name and its colon, with c the byte at s.i.
func (s *eventStream) memberName(c byte) (string, error) {
	if c != '"' {
		return "", s.syntax(c, "looking for a member name")
	}
	s.tokStart, s.tokLost = s.i, false
	esc, err := s.str()
	if err != nil {
		s.tokStart = -1
		return "", err
	}
	var tok []byte
	if !s.tokLost {
		tok = s.buf[s.tokStart:s.i]
	}
	s.tokStart = -1
	var name string
	switch {
	case s.tokLost:
		// Too long to be a name the scanner looks for.
	case esc:
		name = s.text(tok, true)
	case len(tok) == 4 && string(tok) == `"id"`:
		name = "id"
	case len(tok) == 6 && string(tok) == `"type"`:
		name = "type"
	case len(tok) == 8 && string(tok) == `"result"`:
		name = "result"
	case len(tok) == 8 && string(tok) == `"events"`:
		name = "events"
	case len(tok) == 9 && string(tok) == `"message"`:
		name = "message"
	case len(tok) == 7 && string(tok) == `"flags"`:
		name = "flags"
	case len(tok) == 10 && string(tok) == `"messages"`:
		name = "messages"
	case len(tok) == 14 && string(tok) == `"found_newest"`:
		name = "found_newest"
	}
	c, err = s.nonSpace()
	if err != nil {
		return "", err
	}
	if c != ':' {
		return "", s.syntax(c, "after a member name")
	}
	s.i++
	return name, nil
}

// integer reads a number and parses it as an int64; a number that is not
// one returns an error matching strconv.ErrSyntax or ErrRange.
func (s *eventStream) integer() (int64, error) {
	s.tokStart = s.i
	defer func() { s.tokStart = -1 }()
	if err := s.number(); err != nil {
		return 0, err
	}
	return strconv.ParseInt(string(s.buf[s.tokStart:s.i]), 10, 64)
}

// skip scans over one value, nested at depth.
func (s *eventStream) skip(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("exceeded max depth at byte %d", s.offset())
	}
	c, err := s.nonSpace()
	if err != nil {
		return err
	}
	switch c {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		return s.container(depth, c)
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	if c == '-' || isDigit(c) {
		return s.number()
	}
	return s.syntax(c, "looking for a value")
}

// container scans an object or array opened by c at s.i.
func (s *eventStream) container(depth int, open byte) error {
	s.i++
	closer := byte(']')
	if open == '{' {
		closer = '}'
	}
	for first := true; ; first = false {
		c, err := s.nonSpace()
		if err != nil {
			return err
		}
		if c == closer && first {
			s.i++
			return nil
		}
		if !first {
			if c == closer {
				s.i++
				return nil
			}
			if c != ',' {
				return s.syntax(c, "after a value")
			}
			s.i++
			if c, err = s.nonSpace(); err != nil {
				return err
			}
		}
		if open == '{' {
			if c != '"' {
				return s.syntax(c, "looking for a member name")
			}
			if _, err := s.str(); err != nil {
				return err
			}
			if c, err = s.nonSpace(); err != nil {
				return err
			}
			if c != ':' {
				return s.syntax(c, "after a member name")
			}
			s.i++
		}
		if err := s.skip(depth + 1); err != nil {
			return err
		}
	}
}

// strSafe marks the bytes a string holds as they are: not a quote, a
// backslash or a control character.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// special8 reports whether one of the eight bytes of x is a quote, a
// backslash or a control character (the bit tricks of "Bit Twiddling
// Hacks": haszero and hasless).
func special8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) bool { return (v-ones)&^v&highs != 0 }
	return zero(x^(ones*'"')) || zero(x^(ones*'\\')) || (x-ones*0x20)&^x&highs != 0
}

// str scans the string whose opening quote is at s.i and says whether it
// holds escapes.
func (s *eventStream) str() (escaped bool, err error) {
	s.i++
	for {
		buf, i := s.buf[:s.w], s.i
		// Eight bytes at a time while none of them is special, then
		// byte by byte up to the one that is.
		for i+8 <= len(buf) && !special8(binary.LittleEndian.Uint64(buf[i:])) {
			i += 8
		}
		for i < len(buf) && strSafe[buf[i]] {
			i++
		}
		s.i = i
		if i < len(buf) {
			switch c := buf[i]; c {
			case '"':
				s.i++
				return escaped, nil
			case '\\':
				escaped = true
				if err := s.need(2); err != nil {
					return escaped, err
				}
				switch s.buf[s.i+1] {
				case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
					s.i += 2
				case 'u':
					if err := s.need(6); err != nil {
						return escaped, err
					}
					for _, h := range s.buf[s.i+2 : s.i+6] {
						if !isHex(h) {
							return escaped, s.syntax(h, "in a \\u escape")
						}
					}
					s.i += 6
				default:
					return escaped, s.syntax(s.buf[s.i+1], "in a string escape")
				}
			default:
				return escaped, s.syntax(c, "in a string (control character)")
			}
			continue
		}
		if s.tokStart >= 0 && s.evStart < 0 && s.i-s.tokStart > maxToken {
			// In an event over the size limit nothing else is kept:
			// neither is a string this long (no name or type the scanner
			// reads is).
			s.tokStart, s.tokLost = -1, true
		}
		if err := s.more(); err != nil {
			return escaped, err
		}
	}
}

// number scans a JSON number.
func (s *eventStream) number() error {
	// The grammar: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
	if s.peekIs('-') {
		s.i++
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '0':
		s.i++
	case isDigit(c):
		if err := s.digits(); err != nil {
			return err
		}
	default:
		return s.syntax(c, "in a number")
	}
	if s.peekIs('.') {
		s.i++
		if err := s.digits(); err != nil {
			return err
		}
	}
	if s.peekIs('e') || s.peekIs('E') {
		s.i++
		if s.peekIs('+') || s.peekIs('-') {
			s.i++
		}
		if err := s.digits(); err != nil {
			return err
		}
	}
	// A number must be followed by something (it never ends the body).
	_, err = s.peek()
	return err
}

// digits scans one or more digits.
func (s *eventStream) digits() error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if !isDigit(c) {
		return s.syntax(c, "in a number")
	}
	for {
		for s.i < s.w && isDigit(s.buf[s.i]) {
			s.i++
		}
		if s.i < s.w {
			return nil
		}
		if s.tokStart >= 0 && s.i-s.tokStart > maxToken {
			return fmt.Errorf("number of more than %d digits at byte %d", maxToken, s.offset())
		}
		if err := s.more(); err != nil {
			return err
		}
	}
}

// peekIs reports whether the next byte is c; at the end of the body it is
// not (the caller's next peek reports the end).
func (s *eventStream) peekIs(c byte) bool {
	b, err := s.peek()
	return err == nil && b == c
}

func (s *eventStream) literal(word string) error {
	if err := s.need(len(word)); err != nil {
		return err
	}
	if string(s.buf[s.i:s.i+len(word)]) != word {
		return s.syntax(s.buf[s.i], "in a literal")
	}
	s.i += len(word)
	return nil
}

// nonSpace skips white space and returns the next byte, not consumed.
func (s *eventStream) nonSpace() (byte, error) {
	for {
		for s.i < s.w {
			if c := s.buf[s.i]; !isSpace(c) {
				return c, nil
			}
			s.i++
		}
		if err := s.more(); err != nil {
			return 0, err
		}
	}
}

func (s *eventStream) peek() (byte, error) {
	if s.i >= s.w {
		if err := s.more(); err != nil {
			return 0, err
		}
	}
	return s.buf[s.i], nil
}

// need makes n bytes from s.i available.
func (s *eventStream) need(n int) error {
	for s.w-s.i < n {
		if err := s.more(); err != nil {
			return err
		}
	}
	return nil
}

// more reads more of the body; the end of the body here is the end of a
// truncated document.
func (s *eventStream) more() error {
	err := s.fill()
	if errors.Is(err, io.EOF) {
		return errUnexpectedEnd
	}
	return err
}

// fill reads more of the body into buf, first dropping what no one needs
// any more: everything before the event being scanned (or, for an event
// over the limit, before the token being read, else before s.i).
func (s *eventStream) fill() error {
	if s.rerr != nil {
		return s.rerr
	}
	if s.evStart >= 0 && s.w-s.evStart > s.maxEvent {
		s.evStart = -1 // over the limit: scanned, not kept
	}
	k := s.i
	if s.evStart >= 0 {
		k = min(k, s.evStart)
	}
	if s.tokStart >= 0 {
		k = min(k, s.tokStart)
	}
	live := s.w - k
	switch {
	case len(s.buf) > 4*streamBufSize && live < streamBufSize:
		nb := make([]byte, streamBufSize)
		copy(nb, s.buf[k:s.w])
		s.buf = nb
	case k > 0:
		copy(s.buf, s.buf[k:s.w])
	case live == len(s.buf):
		nb := make([]byte, 2*len(s.buf))
		copy(nb, s.buf)
		s.buf = nb
	}
	s.shift(k)
	for {
		n, err := s.r.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			if !errors.Is(err, io.EOF) {
				err = &readError{err}
			}
			s.rerr = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (s *eventStream) shift(k int) {
	if k == 0 {
		return
	}
	s.i -= k
	s.w -= k
	s.base += int64(k)
	if s.evStart >= 0 {
		s.evStart -= k
	}
	if s.tokStart >= 0 {
		s.tokStart -= k
	}
}

func (s *eventStream) offset() int64 { return s.base + int64(s.i) }

func (s *eventStream) syntax(c byte, where string) error {
	return fmt.Errorf("invalid character %q %s at byte %d", c, where, s.offset())
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// parseEvents decodes a whole GET /events response: the stream's rules
// (see eventStream), every event kept whatever its size.
func parseEvents(body []byte, after int64) ([]Event, error) {
	s := newEventStream(bytes.NewReader(body), after, len(body))
	var out []Event
	for {
		ev, err := s.next()
		if errors.Is(err, io.EOF) {
			if out == nil {
				out = []Event{}
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
}
