// Package kafka is the Kafka sink, on segmentio/kafka-go (importers that
// also use kafka-go name it kafkasink): it publishes
// each message as a record of its topic, with the message key, the headers
// of docs/names.md and the event's JSON as value, and confirms a batch only
// once all in-sync replicas have it (acks=all).
//
// Order: records with one key go to one partition (hash of the key) and a
// batch is sent in rounds of at most one produce request per partition,
// stopping at the first round that fails; a *sink.PublishError then lists
// that round's failed partitions and every later round, so that resending
// the list keeps each key in order.
//
// Exactly-once without transactions (docs/delivery.md): kafka-go has neither
// idempotent producer nor transactions, so the sink never retries a write
// itself, and reads back instead. Position records, per partition of every
// owned topic (BRIDGE_KAFKA_TOPIC_PREFIX), an offset at or before anything
// confirmed later; it comes from the offsets in produce answers and from end
// offsets read earlier, so it costs no round trip. After a crash,
// PublishedSince reads every owned partition from there (from the start for
// topics and partitions the position does not name) to its end and returns
// the Zulip-Dedup-Key values found, so the bridge skips what is already
// stored. Within a process, after any failed write, the next Publish reads
// back the partitions concerned the same way and skips what the failed write
// stored anyway. Read-backs keep only keys in memory, stop with their
// context, and log progress when long.
//
// The guarantee holds while one bridge alone writes the owned topics, and
// only for records that retention has not deleted yet.
package kafka
