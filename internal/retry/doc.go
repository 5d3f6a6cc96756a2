// Package retry is the bridge's one backoff and one wait: the exponential
// policy that the Zulip client, the pipeline and the NATS reconnects share,
// and a wait on an injected clock that ends with its context, so that tests
// move time instead of sleeping.
package retry
