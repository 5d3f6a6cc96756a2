// Package retry is the bridge's one way to retry: the backoff policies
// (Exponential with full jitter for requests, Jittered with a floor for
// reconnects), a wait on an injected clock that ends with its context
// (Sleep), and the loop around them (Do: attempts, waits, permanent errors,
// and hooks to log an outage's start and end once each), so that the
// Zulip client, CallOnEachEvent, the pipeline and the NATS sink retry
// alike and tests move time instead of sleeping.
package retry
