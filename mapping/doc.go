// Package mapping turns one Zulip event into one broker message: NATS
// subject, Kafka topic and key, headers, dedup key, with the event's JSON as
// the payload byte for byte (docs/names.md). It is pure: no I/O, no clock,
// no globals, and the same input always gives the same message, so an event
// published again after a crash is an exact duplicate.
//
// Guarantees: every name it returns is valid for its broker (NATS: printable
// ASCII tokens without wildcards, at most MaxSubjectLength bytes; Kafka:
// [A-Za-z0-9._-], at most 249); stream names and topics substituted into
// names go through EscapeToken, which is injective, so two different streams
// or topics never share a name; header values hold no control characters
// and only valid UTF-8; input it cannot map is rejected with an error
// wrapping ErrInvalidEvent, ErrInvalidName or ErrInvalidQueueID, never a
// panic. Events are read by a small validating JSON scanner that keeps only
// the members names are made of, about four times faster than decoding them
// with encoding/json.
//
// The naming rules, templates, CloudEvents modes and the benchmark figures
// are described in README.md beside this file.
package mapping
