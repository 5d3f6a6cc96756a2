// Package zuliptest is a Zulip-compatible server for tests, used like
// net/http/httptest.Server: it serves Zulip's real-time events API and the
// calls around it on 127.0.0.1, behaving as Zulip's server does wherever a
// client depends on it, and gives tests a Go API to drive, break and
// inspect it. cmd/zulipsim serves the same server as a program.
//
// # Use
//
//	fc := clockwork.NewFakeClock()
//	srv := zuliptest.NewServer(zuliptest.Config{Clock: fc})
//	defer srv.Close()
//
// Point a client at srv.URL with zuliptest.DefaultBot's Email and APIKey
// (HTTP Basic). Then srv.SendMessage and srv.InjectEvent produce traffic,
// fc.BlockUntilContext(ctx, n) waits until n long-polls wait, fc.Advance
// runs heartbeats and expiry, and srv.Delivered, srv.Acked and srv.History
// tell what the server handed out and what the client acknowledged.
//
// # Endpoints (under /api/v1)
//
//   - POST /register: event_types, narrow (a list of [operator, operand]
//     pairs, a single pair, or {operator, operand} objects; operators
//     stream/channel (names case-insensitive), topic, exact-topic,
//     sender, is:private/is:dm/is:starred/is:mentioned/is:unread),
//     all_public_streams, fetch_event_types, queue_lifespan_secs (0 or
//     absent: Config.QueueTimeout; capped at Config.MaxQueueLifespan),
//     apply_markdown, client_gravatar, include_subscribers,
//     client_capabilities. Answers a UUID queue_id, last_event_id -1,
//     zulip_version, zulip_feature_level, zulip_merge_base and the initial
//     state of message (max_message_id), realm_emoji, subscription,
//     stream, realm_user and realm (with
//     event_queue_longpoll_timeout_seconds).
//   - GET /events: as upstream's fetch_events. last_event_id acknowledges
//     and prunes; the same last_event_id gets the same events again; an id
//     behind what was pruned ("An event newer than N has already been
//     pruned!") or not in the queue ("Event N was not in this queue") is a
//     400; a GET blocks until an event exists and, after
//     Config.HeartbeatInterval, gets a heartbeat event that takes an id; a
//     newer GET ends the waiting one, which returns
//     {"result":"success","msg":"","events":[],"queue_id":...};
//     dont_block=true answers at once. The body is streamed: written
//     through a 64 KiB buffer flushed to the connection as it fills, from
//     the events' bytes encoded once when they were queued, so a GET
//     holds no more than that buffer whatever the backlog (a million
//     events is an 800 MB body) and the client reads the first events
//     while the rest is written; it still carries a Content-Length. A
//     queue expires when no GET has waited on it for its lifespan (a GET
//     answered at once does not count, as upstream), then every call on
//     it gets
//     {"result":"error","msg":"Bad event queue ID: Q","queue_id":"Q","code":"BAD_EVENT_QUEUE_ID"}.
//   - DELETE /events: queue_id in the query, a urlencoded or a multipart
//     body.
//   - GET /messages: anchor (id, newest, oldest, first_unread), num_before,
//     num_after, include_anchor, narrow, apply_markdown, client_gravatar;
//     found_anchor, found_oldest, found_newest and anchor as upstream.
//     A page is found by binary search on the id-ordered store, walked
//     from the anchor until num_before and num_after matches: O(log n +
//     page) whatever the store's size; a stream, sender or direct-message
//     narrow walks that index only.
//   - POST /messages: type stream/channel or private/direct; to as a
//     stream name or id, JSON, a JSON list of emails or ids, or
//     comma-separated emails; topic or the legacy subject. Message ids
//     increase; each message is fanned out as a message event to every
//     queue that may see it (stream subscribers, direct message
//     participants, all_public_streams and narrowed queues for public
//     streams) and whose filters accept it.
//   - GET /server_settings, without authentication.
//
// Parameters come from the query string or a urlencoded or multipart body;
// booleans are "true"/"false", lists and objects JSON. Every other call
// needs HTTP Basic credentials of a configured bot, otherwise 401
// UNAUTHORIZED with upstream's message and WWW-Authenticate: Basic
// realm="zulip". Authenticated answers carry X-RateLimit-Limit,
// -Remaining and -Reset; past Config.RateLimit requests per
// Config.RateWindow the answer is 429 RATE_LIMIT_HIT with "retry-after"
// (seconds, a float) and a Retry-After header.
//
// # Configuration
//
// Config's zero value works: Bots (DefaultBot), Clock (real), HeartbeatInterval
// (50s), QueueTimeout (10m), MaxQueueLifespan (7 days), RateLimit (0,
// unlimited) and RateWindow (60s), LongpollTimeout (90s), ZulipVersion
// ("10.0"), FeatureLevel (300), MergeBase, Realm (DefaultRealm: users,
// streams with Zulip's development ids, one private stream, custom emoji)
// and Logger (discard). Config.Validate explains a bad value.
//
// # Faults
//
// SetFaults applies to later requests, optionally only those of one Method
// and Path: Status (500 with a JSON body, 502/503/504 with a proxy's HTML
// page) for the next StatusCount requests or all of them, Latency before
// handling, ResetConnections (the TCP connection is closed), TruncateJSON
// and MalformedJSON bodies, RateLimitBurst forced 429s with RetryAfter,
// EventIDGap (ids skip values), Hold (a GET /events answer is held
// back), and CutResponses (a GET /events answer's connection drops
// mid-body, after CutAfterEvents events or CutAfterBytes bytes: the
// client has that much of a body whose Content-Length promised more).
// Durations run on Config.Clock. The body faults act on the stream:
// TruncateJSON ends a complete response at half the body, whatever its
// size. Crash drops every queue as a server crash does, cutting the
// GET /events answers still being streamed; ExpireQueue collects one
// queue now.
//
// PauseEvents holds the next GET /events answer (on one queue or any)
// after its first N events, flushed to the connection, until Release:
// what a test needs to act while a streamed response is half consumed
// (kill the client, Crash, read what arrived). Pause.Reached says when it
// is held; it is a channel, not a clock waiter.
//
// # Inspection
//
// Queues lists live queues. History, Delivered and Acked keep working after
// a queue is gone: Delivered lists every event the queue handed out in an
// intact response, in id order, with the exact bytes the client received
// (a faulted, cut or crashed response does not count). A delivery is
// recorded just before the body's closing bytes are sent, so a client
// that has read a whole body finds its events there. Messages is the
// message store.
//
// # Traffic
//
// Generator produces a realistic mix (DefaultMix) built from the 71
// example events of Zulip's OpenAPI description (testdata/zulip, Apache-2.0)
// at GeneratorConfig.Rate events per second on the server clock, or one
// at a time with Step, with stream ids and names, user ids and message ids
// consistent with the realm and the message store; the same Seed gives the
// same traffic.
//
// # Files
//
// As kfake is laid out by API, the simulator is laid out by endpoint:
// events.go (POST /register, GET and DELETE /events), messages.go (the
// message store and GET /messages), send.go (POST /messages: recipients,
// fan-out), server_settings.go (GET /server_settings), stream.go (the
// streamed GET /events body, CutResponses and PauseEvents); actions.go holds
// what a test does to the server (ExpireQueue, Crash, InjectEvent) and
// inspect.go what it observes (Queues, History, Delivered, Acked).
//
// # Clock waiters
//
// With a fake clock, each waiting GET /events holds exactly one timer (its
// heartbeat), each request delayed by Latency or Hold one, and a running
// Generator one ticker: BlockUntilContext counts these.
package zuliptest
