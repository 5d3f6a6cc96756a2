// Package pipeline runs the bridge's loop of docs/delivery.md for one Zulip
// event queue: poll a batch, map it, publish it, wait until the broker
// confirmed all of it, write the checkpoint, and only then let the next poll
// acknowledge the batch to Zulip.
//
// What it guarantees, given a sink.Recoverer sink (JetStream, Kafka): every
// event the queue delivered is stored exactly once, across crashes at any
// point, because on start it reads back what was published after the last
// checkpoint and skips it. When the queue is lost it registers a new one,
// backfills the missed messages from GET /messages with the same dedup keys,
// and publishes one resync control event saying what could not be recovered.
// A broker outage never acknowledges anything: publishing is retried with
// backoff, with at most one batch in memory.
package pipeline
