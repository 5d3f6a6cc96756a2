// Package mapping turns one Zulip event into one broker message: NATS
// subject, Kafka topic and key, headers, dedup key, with the event's JSON as
// the payload byte for byte. It is pure: no I/O, no clock, no globals. Every
// name it renders is valid for its broker, and values substituted into names
// are escaped injectively, so two different streams or topics never share a
// name.
package mapping
