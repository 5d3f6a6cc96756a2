package zuliptest_test

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// BenchmarkEventRoundTrip measures one event through the simulator: inject
// it, then a GET /events that acknowledges the previous one and returns it.
// The simulator's cost bounds how fast any client test can go.
func BenchmarkEventRoundTrip(b *testing.B) {
	srv, _ := newSim(b, zuliptest.Config{})
	a := newAPI(b, srv)
	q := a.register(nil)
	last := int64(-1)
	b.ReportAllocs()
	for b.Loop() {
		inject(b, srv, presence)
		ev := a.getEvents(q, last, false).events(b)
		last = eventIDs(ev)[len(ev)-1]
	}
}

// BenchmarkFanOut measures SendMessage to a stream with 20 queues
// registered, each getting its own copy of the message event.
func BenchmarkFanOut(b *testing.B) {
	srv, _ := newSim(b, zuliptest.Config{})
	a := newAPI(b, srv)
	for range 20 {
		a.register(nil)
	}
	req := zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: "Denmark", Topic: "bench", Content: "hello"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.SendMessage(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetMessagesPage measures one GET /messages page as the bridge's
// backfill asks for it (anchor an id, num_before 0, num_after 1000,
// include_anchor false) against stores of 10k and 1M messages: a page
// costs O(log n + page), so the figures do not grow with the store. The
// stream variant narrows to one of the realm's four public streams.
func BenchmarkGetMessagesPage(b *testing.B) {
	for _, stored := range []int{10_000, 1_000_000} {
		srv, _ := newSim(b, zuliptest.Config{})
		streams := []string{"Denmark", "Verona", "Rome", "Scotland"}
		for i := range stored {
			req := zuliptest.SendRequest{Sender: "hamlet@zulip.example.com", To: streams[i%len(streams)], Topic: "bench",
				Content: "a message of about a hundred characters, which is what the page's cost is made of, more or less."}
			if _, err := srv.SendMessage(req); err != nil {
				b.Fatal(err)
			}
		}
		for _, narrow := range []string{"", `[["stream","Verona"]]`} {
			name := fmt.Sprintf("stored=%d", stored)
			if narrow != "" {
				name += "/narrow=stream"
			}
			b.Run(name, func(b *testing.B) {
				a := newAPI(b, srv)
				rng := rand.New(rand.NewPCG(1, 2))
				var buf bytes.Buffer
				b.ReportAllocs()
				for b.Loop() {
					p := url.Values{
						"anchor": {itoa(rng.Int64N(int64(stored - 5000)))}, "num_before": {"0"}, "num_after": {"1000"},
						"include_anchor": {"false"}, "apply_markdown": {"false"}, "client_gravatar": {"false"},
					}
					if narrow != "" {
						p.Set("narrow", narrow)
					}
					// The body is read, not decoded: the figure is the
					// simulator's (and HTTP's), not the client's.
					req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/messages?"+p.Encode(), nil)
					req.SetBasicAuth(a.email, a.key)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					buf.Reset()
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
					if err != nil || resp.StatusCode != http.StatusOK {
						b.Fatalf("%d %v %.200s", resp.StatusCode, err, buf.Bytes())
					}
					if n := bytes.Count(buf.Bytes(), []byte(`"sender_realm_str"`)); n != 1000 {
						b.Fatalf("page of %d messages", n)
					}
				}
			})
		}
	}
}

// BenchmarkGetEventsBacklog measures one GET /events answering a backlog
// of 100k events of about 800 bytes (an 80 MB body), read by the client
// into io.Discard. B/op is what the simulator allocates for the response.
func BenchmarkGetEventsBacklog(b *testing.B) {
	const backlog = 100_000
	srv, _ := newSim(b, zuliptest.Config{})
	a := newAPI(b, srv)
	q := a.register(nil)
	ev := `{"type":"presence","email":"hamlet@zulip.example.com","server_timestamp":1700000000,"presence":{"website":{"client":"website","status":"active","timestamp":1700000000,"pushable":false}},"padding":"` +
		strings.Repeat("x", 600) + `"}`
	for range backlog {
		inject(b, srv, ev)
	}
	u := srv.URL + "/api/v1/events?queue_id=" + q + "&last_event_id=-1&dont_block=true"
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.SetBasicAuth(a.email, a.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("%d after %d bytes: %v", resp.StatusCode, n, err)
		}
		b.SetBytes(n)
	}
}
