package zuliptest_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// bigEvent is an event of about 1 KiB; n of its kind make an n KiB body.
var bigEvent = `{"type":"presence","user_id":10,"email":"hamlet@zulip.example.com","presence":{"website":{"client":"website","status":"active","timestamp":1594825445,"pushable":false}},"note":"` +
	strings.Repeat("<x&y>", 180) + `"}`

// openEvents starts a GET /events on a connection of its own (no retries,
// no reuse) and returns the response with its body unread.
func openEvents(t *testing.T, a *api, queueID string, lastEventID int64) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, a.srv.URL+"/api/v1/events?queue_id="+queueID+"&last_event_id="+itoa(lastEventID)+"&dont_block=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(a.email, a.key)
	return (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
}

// readPrefixAndEvents decodes the body's opening members and then n
// events, as a streaming client does, and returns the decoder.
func readPrefixAndEvents(t *testing.T, r io.Reader, n int) (*json.Decoder, []json.RawMessage) {
	t.Helper()
	dec := json.NewDecoder(r)
	for _, want := range []any{json.Delim('{'), "result", "success", "msg", "", "events", json.Delim('[')} {
		tok, err := dec.Token()
		if err != nil || tok != want {
			t.Fatalf("body token %v (%v), want %v", tok, err, want)
		}
	}
	var events []json.RawMessage
	for range n {
		var ev json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("decode event %d: %v", len(events), err)
		}
		events = append(events, ev)
	}
	return dec, events
}

// TestEventsBodyIsStreamed holds a 5 MiB response after its first event
// (PauseEvents) and reads that event off the connection while the server
// has not written the rest: the body goes out as it is written, it is not
// built whole first. After the release the body is whole and exact.
func TestEventsBodyIsStreamed(t *testing.T) {
	const n = 5 << 10
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range n {
		inject(t, srv, bigEvent)
	}
	pause := srv.PauseEvents(q, 1)
	resp, err := openEvents(t, a, q, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	await(t, pause.Reached(), "the pause")
	length, _ := strconv.ParseInt(resp.Header.Get("Content-Length"), 10, 64)
	if length < 5<<20 || pause.Written() >= length/4 {
		t.Fatalf("held after %d of %d bytes", pause.Written(), length)
	}
	var got bytes.Buffer
	dec, first := readPrefixAndEvents(t, io.TeeReader(resp.Body, &got), 1)
	if !strings.Contains(string(first[0]), `"id":0`) {
		t.Fatalf("first event %s", first[0])
	}
	if d := srv.Delivered(q); len(d) != 1 {
		t.Fatalf("%d events recorded as delivered with one sent, want 1", len(d))
	}
	pause.Release()
	var rest []json.RawMessage
	for dec.More() {
		var ev json.RawMessage
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		rest = append(rest, ev)
	}
	if _, err := io.Copy(&got, resp.Body); err != nil {
		t.Fatal(err)
	}
	if int64(got.Len()) != length || !json.Valid(got.Bytes()) || len(rest) != n-1 {
		t.Fatalf("body of %d bytes (Content-Length %d), %d events after the first", got.Len(), length, len(rest))
	}
	if !bytes.HasPrefix(got.Bytes(), []byte(`{"result":"success","msg":"","events":[{`)) || !bytes.HasSuffix(got.Bytes(), []byte(`}]}`)) {
		t.Fatalf("body %.60s ... %s", got.Bytes(), got.Bytes()[got.Len()-60:])
	}
	d := srv.Delivered(q)
	if len(d) != n || !bytes.Equal(d[n-1].Raw, rest[n-2]) {
		t.Fatalf("delivered %d events", len(d))
	}
}

// TestEventsBodyMemory checks that a GET /events answering a 5 MiB backlog
// allocates far less than the body: the body is never held whole.
func TestEventsBodyMemory(t *testing.T) {
	const n = 5 << 10
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range n {
		inject(t, srv, bigEvent)
	}
	get := func() int64 {
		resp, err := openEvents(t, a, q, -1)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	get() // warm the buffer pool and the history
	// Recorded before the body's last bytes left: no wait needed.
	if d := srv.Delivered(q); len(d) != n {
		t.Fatalf("%d events delivered after a whole body, want %d", len(d), n)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	size := get()
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if size < 5<<20 || alloc > uint64(size)/8 {
		t.Fatalf("a %d-byte response allocated %d bytes", size, alloc)
	}
	t.Logf("a %d-byte response allocated %d bytes (client included)", size, alloc)
}

func TestCutResponses(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range 5 {
		inject(t, srv, presence)
	}
	whole := a.getEvents(q, -1, true).raw
	events := whole[len(`{"result":"success","msg":"","events":[`):]
	prefix := len(whole) - len(events)
	evLen := (len(events) - len("]}") - 4) / 5 // ids 0..4 are one digit: the five events have one length
	for _, tt := range []struct {
		name   string
		faults zuliptest.Faults
		want   int // body bytes before the drop
		sent   int // events whole in them: delivered
	}{
		{"after the prefix", zuliptest.Faults{CutResponses: 1}, prefix, 0},
		{"after two events", zuliptest.Faults{CutResponses: 1, CutAfterEvents: 2}, prefix + 2*evLen + 1, 2},
		{"after 100 bytes", zuliptest.Faults{CutResponses: 1, CutAfterBytes: 100}, 100, 0},
		{"events first", zuliptest.Faults{CutResponses: 1, CutAfterEvents: 1, CutAfterBytes: 10000}, prefix + evLen, 1},
		{"bytes first", zuliptest.Faults{CutResponses: 1, CutAfterEvents: 4, CutAfterBytes: prefix + 3}, prefix + 3, 0},
		{"past the end", zuliptest.Faults{CutResponses: 1, CutAfterEvents: 9}, len(whole) - len("]}"), 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.faults.Path = "/api/v1/events"
			srv.SetFaults(tt.faults)
			// An empty answer is not cut, and does not consume the fault.
			q2 := a.register(url.Values{"event_types": {`["stream"]`}})
			if r := a.getEvents(q2, -1, true); r.status != http.StatusOK || len(r.events(t)) != 0 {
				t.Fatalf("empty answer: %s", r.raw)
			}
			var before []int
			for _, d := range srv.Delivered(q) {
				before = append(before, d.Deliveries)
			}
			resp, err := openEvents(t, a, q, -1)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !errors.Is(err, io.ErrUnexpectedEOF) || resp.Header.Get("Content-Length") != strconv.Itoa(len(whole)) {
				t.Fatalf("read %d bytes, %v (Content-Length %s), want an unexpected EOF", len(body), err, resp.Header.Get("Content-Length"))
			}
			if len(body) != tt.want || !bytes.HasPrefix(whole, body) {
				t.Fatalf("cut body %q, want the first %d bytes of %q", body, tt.want, whole)
			}
			if f := srv.Faults(); f.CutResponses != 0 {
				t.Fatalf("faults left: %+v", f)
			}
			// The events that reached the client whole are delivered, the
			// others not.
			for i, d := range srv.Delivered(q) {
				if want := before[i] + min(max(tt.sent-i, 0), 1); d.Deliveries != want {
					t.Fatalf("event %d delivered %d times after the cut, want %d", d.ID, d.Deliveries, want)
				}
			}
			if r := a.getEvents(q, -1, true); !bytes.Equal(r.raw, whole) {
				t.Fatalf("after the cut: %s", r.raw)
			}
			srv.SetFaults(zuliptest.Faults{})
		})
	}
}

// TestCrashMidStream crashes the server while a response is held after
// its first events: the client has those and then loses the connection,
// and nothing counts as delivered.
func TestCrashMidStream(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range 300 {
		inject(t, srv, bigEvent)
	}
	pause := srv.PauseEvents("", 100)
	resp, err := openEvents(t, a, q, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	await(t, pause.Reached(), "the pause")
	br := bufio.NewReader(resp.Body)
	_, got := readPrefixAndEvents(t, br, 100)
	srv.Crash()
	if _, err := io.Copy(io.Discard, br); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after the crash: %v, want an unexpected EOF", err)
	}
	h, _ := srv.History(q)
	if h.Ended != zuliptest.EndCrashed || len(h.Delivered) != 100 || len(got) != 100 {
		t.Fatalf("history %+v after %d events read", h.Info, len(got))
	}
	pause.Release()
}

// TestBodyFaultsStreamed applies TruncateJSON and MalformedJSON to a body of
// many buffers: the truncated body is exactly the first half of the
// intact one.
func TestBodyFaultsStreamed(t *testing.T) {
	srv, _ := newSim(t, zuliptest.Config{})
	a := newAPI(t, srv)
	q := a.register(nil)
	for range 1000 {
		inject(t, srv, bigEvent)
	}
	srv.SetFaults(zuliptest.Faults{TruncateJSON: 1, MalformedJSON: 1})
	truncated := a.getEvents(q, -1, true)
	malformed := a.getEvents(q, -1, true)
	whole := a.getEvents(q, -1, true)
	if len(whole.events(t)) != 1000 || len(whole.raw) < 1<<20 {
		t.Fatalf("whole body of %d bytes", len(whole.raw))
	}
	if !bytes.Equal(truncated.raw, whole.raw[:len(whole.raw)/2]) {
		t.Fatalf("truncated body of %d bytes, want the first %d of the whole", len(truncated.raw), len(whole.raw)/2)
	}
	if !bytes.Equal(malformed.raw, append([]byte("{,"), whole.raw[1:]...)) {
		t.Fatalf("malformed body %.40s", malformed.raw)
	}
	// The truncated body's whole events reached the client: delivered;
	// nothing of the malformed one is readable.
	if d := srv.Delivered(q); len(d) != 1000 || d[0].Deliveries != 2 || d[999].Deliveries != 1 {
		t.Fatalf("delivered %d, first %d times, last %d", len(d), d[0].Deliveries, d[999].Deliveries)
	}
}
