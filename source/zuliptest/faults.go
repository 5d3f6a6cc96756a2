package zuliptest

import (
	"fmt"
	"net/http"
	"time"
)

// Faults are the failure knobs of a Server. They apply to requests that
// arrive after SetFaults; counts are consumed one per matching request and
// Faults() reports what is left. The zero value means no faults.
type Faults struct {
	// Method and Path restrict the faults to matching requests: Method
	// such as "GET", Path the exact URL path such as "/api/v1/events".
	// Empty matches every request, server_settings included.
	Method string
	Path   string

	// Status, when non-zero, answers matching requests with this HTTP
	// status instead of handling them: 500 with Zulip's JSON error body,
	// anything else (502, 503, 504) with the HTML page a proxy in front of
	// Zulip serves. StatusCount limits it to the next N matching
	// requests; 0 means every matching request.
	Status      int
	StatusCount int

	// Latency delays every matching request by this long on the server
	// clock before it is handled, so with a fake clock a test decides when
	// the request proceeds.
	Latency time.Duration

	// ResetConnections closes the connection of the next N matching
	// requests without writing a response.
	ResetConnections int
	// TruncateJSON cuts the body of the next N matching responses in half:
	// the HTTP response is complete, the JSON in it is not.
	TruncateJSON int
	// MalformedJSON makes the body of the next N matching responses
	// invalid JSON (an extra comma after the opening brace).
	MalformedJSON int

	// RateLimitBurst answers the next N matching authenticated requests
	// with 429 RATE_LIMIT_HIT whatever the rate limit says, with
	// retry-after RetryAfter (default 1s).
	RateLimitBurst int
	RetryAfter     time.Duration

	// EventIDGap makes every event id assigned while it is set skip this
	// many ids first: ids stay strictly increasing, with gaps, as Zulip
	// allows.
	EventIDGap int

	// Hold delays the response of every matching GET /events that has
	// events to return by this long on the server clock: a long-poll held
	// by a slow proxy. The events are those the queue had when the server
	// answered.
	Hold time.Duration

	// CutResponses drops the connection of the next N matching
	// GET /events responses that carry events, mid-body: the status, the
	// headers (with the Content-Length of the whole body) and the body up
	// to the cut reach the client, then the connection closes, so the
	// client reads an unexpected EOF. The cut comes right after the
	// CutAfterEvents-th event (0: right after `"events":[`), or after
	// CutAfterBytes bytes of body when that is positive and comes first
	// (with CutAfterEvents 0, CutAfterBytes alone decides). A response
	// shorter than the cut is cut before its closing bracket. The events
	// of a cut response that reached the client whole count as
	// delivered, the others not. A response already truncated
	// or malformed by this request's faults is not cut.
	CutResponses   int
	CutAfterEvents int
	CutAfterBytes  int
}

// faultState is the live copy of Faults, counts decremented as consumed.
type faultState struct {
	Faults
}

// decision is what the faults do to one request.
type decision struct {
	latency   time.Duration
	reset     bool
	status    int
	truncate  bool
	malformed bool
	hold      time.Duration
}

// SetFaults replaces the fault knobs; SetFaults(Faults{}) turns them off.
func (s *Server) SetFaults(f Faults) {
	if f.RetryAfter <= 0 {
		f.RetryAfter = time.Second
	}
	s.mu.Lock()
	s.faults = faultState{f}
	s.mu.Unlock()
	s.log.Info("zuliptest faults set", "faults", fmt.Sprintf("%+v", f))
}

// Faults returns the current knobs, counts reduced by what was consumed.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.Faults
}

func (f *faultState) matches(r *http.Request) bool {
	return (f.Method == "" || f.Method == r.Method) && (f.Path == "" || f.Path == r.URL.Path)
}

// consume takes one from *n if it is positive.
func consume(n *int) bool {
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (s *Server) decideFault(r *http.Request) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.faults
	if !f.matches(r) {
		return decision{}
	}
	d := decision{latency: f.Latency, hold: f.Hold}
	switch {
	case consume(&f.ResetConnections):
		d.reset = true
	case f.Status != 0 && f.StatusCount == 0:
		d.status = f.Status
	case f.Status != 0 && consume(&f.StatusCount):
		d.status = f.Status
		if f.StatusCount == 0 {
			f.Status = 0
		}
	case consume(&f.TruncateJSON):
		d.truncate = true
	case consume(&f.MalformedJSON):
		d.malformed = true
	}
	return d
}

// takeBurst consumes one forced 429 for the request, if any is left.
func (s *Server) takeBurst(r *http.Request) (time.Duration, bool) {
	f := &s.faults
	if f.matches(r) && consume(&f.RateLimitBurst) {
		return f.RetryAfter, true
	}
	return 0, false
}

// eventIDGap is the gap to leave before the next event id.
func (s *Server) eventIDGap() int64 {
	return int64(max(s.faults.EventIDGap, 0))
}

// applyPreFaults runs latency, connection resets and status faults; it
// reports whether the request should go on.
func (c *call) applyPreFaults() bool {
	d := c.fault
	if d.latency > 0 && !c.s.sleep(c.r.Context(), d.latency) {
		select {
		case <-c.s.closing:
			c.abort()
		default:
		}
		return false
	}
	if d.reset {
		c.s.log.Debug("zuliptest fault: connection reset", "path", c.r.URL.Path)
		c.resetConnection()
		return false
	}
	if d.status != 0 {
		c.s.log.Debug("zuliptest fault: status", "status", d.status, "path", c.r.URL.Path)
		if d.status == http.StatusInternalServerError {
			c.respond(d.status, object{{"result", "error"}, {"msg", "Internal server error"}, {"code", CodeBadRequest}})
			return false
		}
		text := fmt.Sprintf("%d %s", d.status, http.StatusText(d.status))
		body := "<html>\r\n<head><title>" + text + "</title></head>\r\n<body>\r\n<center><h1>" + text +
			"</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
		c.w.Header().Set("Content-Type", "text/html")
		c.w.WriteHeader(d.status)
		_, _ = c.w.Write([]byte(body))
		return false
	}
	return true
}

// resetConnection closes the TCP connection under the request, so the
// client sees a reset or an unexpected EOF instead of a response.
func (c *call) resetConnection() {
	hj, ok := c.w.(http.Hijacker)
	if !ok {
		c.abort()
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		c.abort()
	}
	if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
		// Linger 0 makes close send RST rather than FIN: a reset, not a
		// clean end of stream.
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// mangle applies the body faults; it reports whether the body is intact.
func (d decision) mangle(raw []byte) ([]byte, bool) {
	switch {
	case d.truncate:
		return raw[:len(raw)/2], false
	case d.malformed:
		bad := make([]byte, 0, len(raw)+1)
		bad = append(bad, '{', ',')
		bad = append(bad, raw[1:]...)
		return bad, false
	}
	return raw, true
}
