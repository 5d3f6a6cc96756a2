// Package checkpoint records how far the bridge has durably published, which
// is what makes acknowledging a batch to Zulip safe (docs/delivery.md): the
// bridge saves a Checkpoint after the broker confirmed a batch and only then
// sends the batch's highest event id as last_event_id.
//
// A Store's Save returns nil only once the checkpoint would survive a crash of
// the process, and Load never turns unreadable data into "nothing saved": it
// returns an error wrapping ErrCorrupt or ErrUnsupportedVersion that names the
// file or key, so the bridge stops instead of silently starting over. Three
// stores exist: a file in the state directory (FileStore, the default, in this
// package), a NATS JetStream key-value bucket (checkpoint/natskv) and a Kafka
// compacted topic (checkpoint/kafkastore). All pass the conformance suite in
// checkpoint/checkpointtest.
package checkpoint
