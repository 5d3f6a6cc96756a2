// Package testutil holds what the tests of several packages share: a NATS
// server with JetStream that a test can stop and start again on the same
// port with its data, a reader of a stream as a downstream consumer sees
// it, a buffer for logs written from several goroutines, and a private CA
// with server and client certificates for TLS tests. It is imported by
// tests only.
package testutil
