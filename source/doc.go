// Package source is the half of the bridge that talks to Zulip: a client for
// the real-time events API (register, get events, delete queue, get
// messages, server settings) and a Queue that owns one event queue.
//
// What it guarantees:
//   - Acknowledgement is explicit. Zulip's only acknowledgement is the
//     last_event_id of the next GET; a Queue sends the id its caller passed to
//     Ack and nothing beyond it, so an event the caller has not finished with
//     is never acknowledged and comes again.
//   - Events are handed out in order with their id and the exact bytes the
//     server sent; heartbeats are handed out flagged so that they are
//     acknowledged like any event.
//   - Transient failures (5xx, resets, timeouts, truncated or malformed JSON,
//     rate limits) are retried with full-jitter exponential backoff that
//     honours Retry-After; fatal ones (bad credentials, deactivated account or
//     realm) are returned with a message that names site and email and never
//     the API key.
//   - A lost queue (expired, crashed server, unusable) is re-registered with
//     retries that never give up silently; the new queue's ids start over and
//     the loss is reported with the highest message id handled, so that the
//     caller can backfill with GetMessages.
//   - Memory is bounded: one batch in flight, response bodies capped at
//     Config.MaxResponseBytes.
//
// Tests run against the Zulip-compatible simulator in source/zuliptest.
package source
