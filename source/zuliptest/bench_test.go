package zuliptest_test

import (
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
