package mapping

import "errors"

// Errors a caller acts on. Map, MapBackfilled and Control are deterministic:
// an input they reject is rejected again on every retry, so the bridge must
// count and skip such an event rather than wait for it to succeed.
var (
	// ErrInvalidEvent: the input is not an event the mapper can name: not a
	// JSON object, no string "type", no non-negative integer "id", a type
	// or op that cannot be a name token, or a duplicated member.
	ErrInvalidEvent = errors.New("invalid zulip event")
	// ErrInvalidName: a subject or topic rendered from a template is not
	// valid for its broker, e.g. a Kafka topic over 249 characters because
	// a long Zulip topic was substituted into it.
	ErrInvalidName = errors.New("invalid broker name")
	// ErrInvalidQueueID: the queue id passed in cannot be part of a dedup
	// key. It comes from the register response, not from the event, so
	// every event of that queue will fail the same way.
	ErrInvalidQueueID = errors.New("invalid zulip queue id")
)
