// Package nats publishes the bridge's messages to NATS. Its name is its
// folder's; importers that also use nats.go name it natssink.
//
// JetStream mode (the default) publishes asynchronously with a bounded
// window and returns from Publish only when the stream acknowledged every
// message; Nats-Msg-Id carries the dedup key, so a retried message is
// stored once within the stream's duplicate window, and PublishedSince
// reads back what was stored after a checkpoint for restarts that outlast
// it. A failed batch reports exactly what to send again, per subject in
// order.
//
// Core mode publishes and flushes. Core NATS stores nothing and has no
// acknowledgement from consumers: a message is lost for every subscriber
// that is not connected when it is sent, and a retried batch may reach a
// connected subscriber twice. It is at-most-once; use JetStream when the
// events matter.
//
// The connection reconnects forever with capped exponential backoff and
// never replays buffered writes after a reconnect; Ready reports its state.
// Passwords, tokens and URL userinfo never appear in errors or logs.
package nats
