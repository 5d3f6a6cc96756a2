// Command bench measures the whole product end to end: the built bridge
// binary, as a subprocess, between the Zulip simulator (source/zuliptest)
// and a broker in this process (an embedded nats-server with JetStream on
// file storage, or a one-broker kfake cluster), each figure beside a
// baseline measured in the same run:
//
//   - drain: the bridge is stopped (its queue kept), -events events queue
//     up, the bridge starts again; the time from process start until the
//     broker holds them all. The raw client then publishes the same
//     messages (read back from the broker: subjects or topics, keys,
//     headers, payloads) into a fresh broker of the same kind and
//     configuration: nats.go JetStream async publish with 4096 in flight,
//     or a kafka-go Writer (acks from all replicas, batches of 1000, a
//     1 ms batch timeout, keys hashed, 10,000 records per WriteMessages).
//     Bridge and raw alternate which goes first from run to run (raw
//     first publishes the previous run's messages: the same seed gives
//     the same traffic); the figure is the median ratio bridge/raw of
//     -runs runs. The bridge runs with BRIDGE_SPOOL=off, as in the
//     figures of README "Performance".
//   - drain with the spool: the same, with BRIDGE_SPOOL=on (issue 15),
//     against the raw cost of the same physical work in the same run on
//     the same messages: a fresh spool (the spool package, bbolt, as the
//     bridge uses it) and a fresh broker; the messages appended with
//     spool.Publish in chunks of 1000 (one fsynced transaction each,
//     then Checkpointed, as the loop does) while, at the same time (the
//     bridge overlaps the two halves too), the forwarding reads them back
//     with spool.Read, publishes each chunk with the raw client above
//     (with Kafka, one WriteMessages per chunk) and waits for the
//     broker's confirmation of all of it, then records it
//     with spool.Forward (one fsynced transaction), as pipeline/forward.go
//     does. Its time runs from the first append to the broker's last
//     confirmation; how long the appends alone took is reported too.
//     -spool off or on runs only one of the two drains (default both).
//     Latency, the big backlog and backfill run with BRIDGE_SPOOL=off.
//   - latency at -rate events/s for -duration: injection into the
//     simulator to receipt by a consumer (a JetStream ordered consumer; a
//     kafka-go Reader per partition), against the broker's own publish to
//     receipt of messages of the same sizes, on the same broker and
//     clock; p50/p99/p999 and what the bridge adds to each; the bridge's
//     VmRSS and VmHWM at the end. The first tenth (at most 1s) is not
//     counted.
//   - big backlog: -big events drained as above; rate, peak RSS (VmHWM),
//     whether the bridge lost its queue (registered a new one) and how
//     many events reached the broker, waiting at most -timeout.
//   - backfill: -events messages sent while the bridge is stopped, its
//     queue expired, the bridge started: the time until the broker holds
//     them all and the resync event, against the simulator serving the
//     same GET /messages pages (1000 per page) to a plain HTTP client just
//     before and just after the bridge; the CPU time per message of the
//     bridge, of this process meanwhile and of the walk.
//
// A bridge that loses its queue (a backlog whose response exceeds
// BRIDGE_ZULIP_MAX_RESPONSE_BYTES is handled as a lost queue) is a result,
// reported with how much reached the broker, not an error; -max-response
// raises the limit to measure the loop itself.
//
// -mix issue (the default) is the traffic issue 13 was measured with: 55 %
// stream messages of about 1 KB, 15 % direct messages, typing, reactions,
// edits; -mix default is zuliptest.DefaultMix, every kind of event with
// short messages. The average event size is measured on a sample and
// reported.
//
// It prints a table and one JSON line with every figure, and whether each
// target of issue 13 (and issue 15's, the drain ratio with the spool on)
// is met. It exits 1 only when a measurement could not
// be made, never for a missed target, 2 on bad flags.
//
// The bridge runs with BRIDGE_EVENT_TYPES=*, BRIDGE_LOG_LEVEL=warn, its
// own state directory and HTTP port, and no other BRIDGE_* or ZULIP_*
// variable of the caller's environment (GOGC, GOMEMLIMIT, GOMAXPROCS and
// GODEBUG are passed on), except those given with -set, e.g.
// -set BRIDGE_PUBLISH_BATCH=5000 (repeatable) to measure a setting.
// -cpuprofile DIR builds it with a file added by go build -overlay that
// profiles the process from its start until the bench has what it
// measures, one profile per measured process, beside the binary; for each
// drain the bench also profiles itself meanwhile (the simulator and the
// broker), into the same name with -bench:
//
//	go run ./cmd/bench -cpuprofile /tmp/prof -sinks nats -big 0
//	go tool pprof -top /tmp/prof/bridge /tmp/prof/01-nats-drain-run1.pprof
//	go tool pprof -top /tmp/prof/01-nats-drain-run1-bench.pprof
//
// The machine is measured as it is: the simulator, the brokers and the
// bench share its cores with the bridge, as they would share them with
// any load on a small host.
package main
