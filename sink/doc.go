// Package sink defines what a broker sink is: publish a batch and return only
// when the broker confirmed all of it, or say exactly which messages it did
// not confirm; close with a deadline. Retry, tracing and metrics wrap a Sink
// from the outside. Implementations live in sink/nats and sink/kafka and all
// pass the conformance suite in sink/sinktest.
package sink
