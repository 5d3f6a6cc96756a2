// Package kafka is the Kafka sink, on segmentio/kafka-go (importers that
// also use kafka-go name it kafkasink): it publishes
// each message as a record of its topic, with the message key, the headers
// of docs/names.md and the event's JSON as value, and confirms a batch only
// once all in-sync replicas have it (acks=all).
//
// Order: records with one key go to one partition (hash of the key). A
// batch goes out with every partition in flight at once and no wait for
// more records, each partition's records in produce requests of at most
// BRIDGE_KAFKA_BATCH_SIZE records and BRIDGE_KAFKA_BATCH_BYTES bytes, one
// after the other; a partition stops at its first failed request. A
// *sink.PublishError then lists that request's records and every later one
// of the same partition, so that resending the list keeps each key in
// order; the other partitions are confirmed.
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
