// Package kafkastore keeps the bridge's checkpoint in a Kafka topic with
// cleanup.policy=compact, for deployments that have Kafka and no durable
// disk. The checkpoint is a record keyed by the checkpoint key, always in
// partition 0; Load reads that partition to its end and takes the key's
// latest record, so compaction never loses it.
//
// Save produces with acks=all and returns nil once every in-sync replica
// has the record. Kafka offers no compare-and-set, so unlike the nats-kv
// store this one cannot detect a second bridge on the same key: give each
// bridge its own BRIDGE_CHECKPOINT_NAME (docs/operations.md: one bridge owns a
// queue). Open refuses a topic whose cleanup policy could delete the
// checkpoint (delete, or compact,delete).
package kafkastore
