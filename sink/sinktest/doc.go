// Package sinktest is the conformance suite every sink.Sink runs.
//
// A broker package provides a Harness that starts its broker in the test
// process and reads back what the broker stored; Run then checks the sink
// contract against it: Publish returns nil only for confirmed messages, a
// *sink.PublishError names exactly the messages to send again and keeps
// per-key order, cancellation and an unreachable broker give an error rather
// than a hang, Close flushes, a message of about 1 MB goes through, and a
// broker restart in the middle of a batch loses nothing. Optional
// interfaces widen the suite: Restarter (stop and start the broker) and
// Counter (a cheap count, to act while a batch is in flight); sinks that
// implement sink.Recoverer or sink.ReadyChecker are checked for those too.
//
// The suite builds its own messages (Generator) with the subjects, topics,
// keys and headers of docs/names.md, so it depends on no mapping code.
package sinktest
