// Package testutil holds what the end-to-end tests of several packages
// share: a NATS server with JetStream that a test can stop and start again
// on the same port with its data, a reader of a stream as a downstream
// consumer sees it, and a buffer for logs written from several goroutines.
// It is imported by tests only.
package testutil
