// Package natskv keeps the bridge's checkpoint in a NATS JetStream
// key-value bucket, for deployments whose state directory is not durable.
//
// Writes use optimistic concurrency: each Save names the revision this
// store last read or wrote, so a second bridge writing the same key makes
// the next Save fail with checkpoint.ErrConflict instead of both bridges
// overwriting each other's position. Save returns nil once the JetStream
// server acknowledged the write (stored, and replicated to a quorum for a
// replicated bucket).
package natskv
