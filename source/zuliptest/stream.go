package zuliptest

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"sync"
)

// This file writes GET /events answers as a stream: the body is never held
// whole, whatever the backlog. It also holds the two hooks that act on a
// response mid-body: the CutResponses fault and PauseEvents.

// streamBufferSize is the buffer a GET /events body is written through; it
// goes to the connection, flushed, each time it fills. It bounds what one
// GET holds besides the queue's own (pre-encoded) events.
const streamBufferSize = 64 << 10

var streamBuffers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamBufferSize) }}

// errStreamCrashed is what a streamed write reports once the server has
// crashed (or is closing) since the response's events were taken.
var errStreamCrashed = errors.New("zuliptest: server crashed mid-response")

// eventsPrefix opens every successful GET /events body; the members are
// those (and in the order) of the object the other answers are built from.
const eventsPrefix = `{"result":"success","msg":"","events":[`

var comma = []byte{','}

// Pause holds a GET /events response mid-body: see PauseEvents.
type Pause struct {
	queueID string
	after   int

	reached chan struct{}
	release chan struct{}
	once    sync.Once
	written int64 // body bytes that reached the connection; set before reached closes
}

// PauseEvents arms a one-shot pause: the next GET /events response on the
// queue (any queue when queueID is "") that carries at least max(after, 1)
// events stops after writing the prefix and its first after events, all
// flushed to the connection, and waits there, holding no lock, until
// Release, the client leaving, a Crash (the connection drops) or Close.
// The rest of the body, and the recording of the delivery (Delivered),
// follow the release. Reached is closed when the response is held; a
// client can read those after events off the connection meanwhile, the
// proof that the body is streamed. Pauses are clock-free: they add no
// clock waiters.
func (s *Server) PauseEvents(queueID string, after int) *Pause {
	p := &Pause{queueID: queueID, after: max(after, 0), reached: make(chan struct{}), release: make(chan struct{})}
	s.mu.Lock()
	s.pauses = append(s.pauses, p)
	s.mu.Unlock()
	return p
}

// Reached is closed once a response is held by the pause.
func (p *Pause) Reached() <-chan struct{} { return p.reached }

// Written is how many body bytes had reached the connection when the
// response was held. It waits for Reached.
func (p *Pause) Written() int64 {
	<-p.reached
	return p.written
}

// Release lets the held response go on; before the pause is reached, it
// makes the pause a no-op. It may be called more than once.
func (p *Pause) Release() { p.once.Do(func() { close(p.release) }) }

// takePauseLocked consumes the first armed pause that applies to a
// response of n events on the queue.
func (s *Server) takePauseLocked(queueID string, n int) *Pause {
	for i, p := range s.pauses {
		if (p.queueID == "" || p.queueID == queueID) && n >= max(p.after, 1) {
			s.pauses = append(s.pauses[:i:i], s.pauses[i+1:]...)
			return p
		}
	}
	return nil
}

// cut is where a CutResponses fault drops the connection: after `events`
// events unless bytes (when positive) comes first.
type cut struct {
	events int
	bytes  int64
}

// takeCutLocked consumes one CutResponses for the request, if any is left.
func (s *Server) takeCutLocked(r *http.Request) *cut {
	f := &s.faults
	if !f.matches(r) || !consume(&f.CutResponses) {
		return nil
	}
	c := &cut{events: -1, bytes: int64(max(f.CutAfterBytes, 0))}
	if f.CutAfterEvents > 0 || c.bytes == 0 {
		c.events = max(f.CutAfterEvents, 0)
	}
	return c
}

// streamSink is what the buffer drains into: the response, flushed to the
// connection at once, so the client gets each buffer-full while the rest
// is written. It refuses to write once the server crashed.
type streamSink struct {
	c       *call
	rc      *http.ResponseController
	crashed <-chan struct{}
	written int64
	// last is set for the final drain of the buffer: net/http sends it
	// with the closing bytes when the handler returns, so a small answer
	// costs one write to the connection, as before.
	last bool
}

func (k *streamSink) Write(p []byte) (int, error) {
	select {
	case <-k.crashed:
		return 0, errStreamCrashed
	case <-k.c.s.closing:
		return 0, errStreamCrashed
	default:
	}
	n, err := k.c.w.Write(p)
	k.written += int64(n)
	if err != nil || k.last {
		return n, err
	}
	if err := k.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return n, err
	}
	return n, nil
}

// eventsWriter writes one streamed body, applying a byte limit (a
// truncated or cut body) exactly.
type eventsWriter struct {
	bw    *bufio.Writer
	body  int64 // body bytes accepted so far
	limit int64 // stop after this many body bytes; -1: no limit
	err   error
}

// write writes p, or the part of it below the limit; it reports whether
// the body goes on.
func (e *eventsWriter) write(p []byte) bool {
	if e.err != nil {
		return false
	}
	if e.limit >= 0 && e.body+int64(len(p)) >= e.limit {
		p = p[:e.limit-e.body]
		_, e.err = e.bw.Write(p)
		e.body += int64(len(p))
		if e.err == nil {
			e.err = errLimit
		}
		return false
	}
	_, e.err = e.bw.Write(p)
	e.body += int64(len(p))
	return e.err == nil
}

var errLimit = errors.New("zuliptest: body limit reached")

// flush sends what is buffered to the connection.
func (e *eventsWriter) flush() error {
	err := e.bw.Flush()
	if e.err == nil || e.err == errLimit {
		if err != nil {
			e.err = err
		}
	}
	return err
}

// writeEvents answers a GET /events with events, streamed: the prefix,
// each event's stored bytes, the closing members (queue_id for a GET that
// waited, as upstream's finish_handler adds it; immediate answers carry
// none), through a pooled 64 KiB buffer flushed to the connection as it
// fills. The exact body length is known beforehand (the events are
// pre-encoded), so it carries a Content-Length as before, and the body
// faults apply to the stream: TruncateJSON stops at half of it,
// MalformedJSON adds the comma, CutResponses drops the connection after N
// events or bytes, PauseEvents holds it. A Crash after the events were
// taken drops the connection at the next buffer flush. An event is
// recorded as delivered once its bytes reached the connection (a client
// reading as the body arrives may hand it on before the body breaks); a
// whole body's events are recorded just before its closing bytes.
func (c *call) writeEvents(hist *history, queueID string, withQueueID bool, events []queuedEvent, crashed <-chan struct{}) {
	s := c.s
	if len(events) > 0 && c.fault.hold > 0 && !s.sleep(c.r.Context(), c.fault.hold) {
		select {
		case <-s.closing:
			c.abort()
		default: // the client left
		}
		return
	}
	prefix := []byte(eventsPrefix)
	suffix := []byte("]")
	if withQueueID {
		suffix = append(suffix, `,"queue_id":`...)
		var err error
		if suffix, err = appendString(suffix, queueID); err != nil {
			panic("zuliptest: encode queue_id: " + err.Error())
		}
	}
	suffix = append(suffix, '}')
	total := int64(len(prefix) + len(suffix) + max(len(events)-1, 0))
	for _, e := range events {
		total += int64(len(e.raw))
	}

	var ct *cut
	var pause *Pause
	if len(events) > 0 {
		s.mu.Lock()
		if !c.fault.truncate && !c.fault.malformed {
			ct = s.takeCutLocked(c.r)
		}
		pause = s.takePauseLocked(queueID, len(events))
		s.mu.Unlock()
	}
	length, limit := total, int64(-1)
	switch {
	case c.fault.truncate:
		length, limit = total/2, total/2
	case c.fault.malformed:
		prefix = append([]byte{'{', ','}, prefix[1:]...)
		length++
	case ct != nil && ct.bytes > 0:
		limit = ct.bytes
	}
	if ct != nil {
		s.log.Debug("zuliptest fault: response cut", "queue_id", queueID, "after_events", ct.events, "after_bytes", ct.bytes)
	}

	for k, v := range c.header {
		c.w.Header()[k] = v
	}
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	c.w.WriteHeader(http.StatusOK)

	bw := streamBuffers.Get().(*bufio.Writer)
	sink := &streamSink{c: c, rc: http.NewResponseController(c.w), crashed: crashed}
	bw.Reset(sink)
	ew := &eventsWriter{bw: bw, limit: limit}
	defer func() {
		bw.Reset(nil)
		streamBuffers.Put(bw)
	}()

	// stop ends the body early: what is written is flushed; a cut or a
	// crash then drops the connection.
	// An event whose bytes reached the connection is delivered, whatever
	// happens to the rest of the body: a client that reads as it arrives
	// may hand it on (a body that never starts right, MalformedJSON, is
	// not read at all). recordUpTo records events[:k] once flushed.
	recorded := 0
	recordUpTo := func(k int) {
		if c.fault.malformed || k <= recorded {
			return
		}
		s.mu.Lock()
		hist.record(events[recorded:k], s.clock.Now())
		s.mu.Unlock()
		recorded = k
	}
	whole := 0 // events written whole into the buffer
	// ends[i] is where event i ends in the body: once the connection took
	// that many bytes (a buffer that filled up went out on its own), the
	// event is delivered, even if the client dies before the body ends.
	ends := make([]int64, 0, len(events))
	recordWritten := func() {
		k := recorded
		for k < len(ends) && ends[k] <= sink.written {
			k++
		}
		recordUpTo(k)
	}
	stop := func() {
		if ew.flush() == nil {
			recordUpTo(whole)
		} else {
			recordWritten()
		}
		if ct != nil || errors.Is(ew.err, errStreamCrashed) {
			c.abort()
		}
	}
	// hold is the pause and the cut after the first n events.
	hold := func(n int) bool {
		if pause != nil && n == pause.after {
			if ew.flush() != nil {
				stop()
				return false
			}
			recordUpTo(n)
			pause.written = sink.written
			close(pause.reached)
			select {
			case <-pause.release:
			case <-crashed:
				c.abort()
			case <-s.closing:
				c.abort()
			case <-c.r.Context().Done():
				return false
			}
		}
		if ct != nil && n == ct.events {
			stop()
			return false
		}
		return true
	}

	if !ew.write(prefix) || !hold(0) {
		stop()
		return
	}
	for i, e := range events {
		if i > 0 && !ew.write(comma) {
			stop()
			return
		}
		if !ew.write(e.raw) {
			stop()
			return
		}
		whole = i + 1
		ends = append(ends, ew.body)
		recordWritten()
		if !hold(i + 1) {
			stop()
			return
		}
	}
	if ct != nil {
		// Fewer events than the cut: it comes before the closing bracket.
		stop()
		return
	}
	if c.fault.truncate || c.fault.malformed {
		ew.write(suffix)
		stop()
		return
	}
	sink.last = true
	if ew.flush() != nil {
		stop()
		return
	}
	// The delivery is recorded before the closing bytes go out (net/http
	// sends them when the handler returns): a client that has read the
	// whole body finds its events in Delivered.
	recordUpTo(len(events))
	_, _ = c.w.Write(suffix)
}
