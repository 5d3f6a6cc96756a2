package sinktest

import (
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// Harness gives the suite one running broker. Run asks for a new Harness for
// every subtest, so a harness may assume it is alone with its broker.
type Harness interface {
	// NewSink returns a sink connected to the harness's broker. The suite
	// closes every sink it creates.
	NewSink(t testing.TB) sink.Sink

	// Stored returns what the broker holds on the suite's subjects (Prefix +
	// ".>") or topics (Topics), oldest first within every ordering scope
	// (NATS subject, Kafka partition). Each message carries the Subject, or
	// the Topic and Key, under which the broker holds it, its Headers (extra
	// broker headers such as Nats-Msg-Id are fine), its Payload, and its
	// DedupKey as the sink carried it (Nats-Msg-Id, or the Zulip-Dedup-Key
	// header).
	//
	// Stored must reflect every message whose Publish returned nil before
	// the call. For a broker that stores nothing (core NATS), the harness
	// keeps a subscription open from its start and returns what it received.
	// The suite never calls Stored while the broker is stopped.
	Stored(t testing.TB) []*mapping.Message
}

// Restarter is implemented by harnesses that can stop and restart their
// broker. The subtests for an unreachable broker and a restart in the middle
// of a batch run only for them.
type Restarter interface {
	// StopBroker stops the broker; sinks connected to it stay open.
	StopBroker(t testing.TB)
	// StartBroker starts it again on the same address with the data it
	// held, and returns once the broker serves clients (and, for a broker
	// that stores nothing, once the harness's own subscription is back).
	StartBroker(t testing.TB)
}

// Counter is implemented by harnesses that can count what the broker
// holds on the suite's subjects or topics more cheaply than Stored reads it
// (stream or partition metadata). The subtests that act in the middle of a
// batch poll it to strike while the batch is still in flight.
type Counter interface {
	Count(t testing.TB) int
}

// Suite describes the implementation under test.
type Suite struct {
	// New returns a harness with a running broker for one subtest. It
	// registers its own cleanup with t.
	New func(t *testing.T) Harness

	// Dedups says the broker stores a message once however often it is
	// published with the same dedup key (JetStream's Nats-Msg-Id within the
	// duplicate window). The suite then requires exactly-once storage after
	// retries and runs the duplicate-publish subtest; without it, retries may
	// store duplicates and the suite requires at-least-once.
	Dedups bool

	// AtMostOnce says a confirmation only means the broker accepted the
	// message, not that it keeps it: core NATS stores nothing, so what it
	// accepted just before a stop may never reach a subscriber. The suite
	// then does not require confirmed messages to survive a broker stop.
	AtMostOnce bool
}
