// Package zuliptest is a Zulip-compatible server for tests, used like
// net/http/httptest.Server: it serves the real-time events API
// (register, GET and DELETE /events), GET and POST /messages and
// server_settings on 127.0.0.1 with the behaviour of Zulip's server that
// clients depend on, and gives tests a Go API to drive and inspect it.
//
//	srv := zuliptest.NewServer(zuliptest.Config{Clock: clockwork.NewFakeClock()})
//	defer srv.Close()
//	client := newClient(srv.URL, zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey)
//
// # What it guarantees
//
// Event queues behave as upstream's (zerver/tornado/event_queue.py):
// event ids per queue start at 0 and strictly increase; last_event_id
// acknowledges and prunes; the same last_event_id returns the same events;
// an id behind what was pruned or ahead of what exists is a 400; a GET
// blocks until an event exists, and after HeartbeatInterval the server adds
// a heartbeat event, which takes an id; a newer GET ends the one waiting,
// which returns {"events":[],"queue_id":...}; a queue expires when no GET
// has waited for its lifespan (a GET answered at once does not count);
// then every call on it gets BAD_EVENT_QUEUE_ID with queue_id, as upstream.
//
// Every event the server hands out in an intact response is recorded with
// its exact bytes (Delivered, History), and so is each queue's
// acknowledgement (Acked), even after the queue expired or was lost in a
// Crash: a test compares what the server delivered with what reached a
// broker.
//
// Time is Config.Clock: heartbeats, expiry, rate-limit windows, injected
// latency and the Generator all run on it, so a test with a fake clock
// passes ten minutes in a millisecond. While a GET /events waits, its
// heartbeat is exactly one timer on the clock, so fc.BlockUntilContext(ctx,
// n) tells a test that n long-polls are waiting.
package zuliptest
