// Package spool is the bridge's durable local log between Zulip and the
// broker (docs/delivery.md, "The spool").
//
// With a spool, the pipeline acknowledges an event to Zulip once the event
// is durable in the spool, not once the broker confirmed it; a forwarder
// publishes what the spool holds to the broker in order and records how
// far it got. So a broker outage longer than a Zulip queue's lifespan loses
// nothing: the bridge keeps polling, and the queue lives.
//
// A Spool is two things to the pipeline:
//
//   - a sink.Sink and sink.Recoverer for the Zulip half: Publish appends a
//     batch in one transaction, durable (fsync) when Publish returns;
//     Position is the last sequence number appended, and PublishedSince
//     returns the dedup keys appended after one, which is how a restart
//     skips events it spooled but did not checkpoint, exactly as it skips
//     what a broker stored;
//   - a log for the forwarder: Read returns the entries after a sequence
//     number, waiting for some, and Forwarded records durably, in the same
//     transaction that drops what is no longer needed, the last entry the
//     broker confirmed and the broker position taken after it.
//
// An entry is dropped once it is both forwarded and covered by a Zulip
// checkpoint (Checkpointed), never before: a restart reads back the entries
// appended after the checkpoint, so they must still be there.
//
// The storage engine is bbolt (etcd's B+tree): one file, one writer, a
// transaction per batch, fsync on commit, and a file lock that keeps a
// second process out.
package spool
