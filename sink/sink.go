package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// Sink publishes batches of messages to a broker.
//
// Publish returns nil only when the broker has confirmed every message of the
// batch. When it cannot, it returns an error; if that error is (or wraps) a
// *PublishError, the messages it does not list are confirmed and only the
// listed ones need publishing again; any other error means none of the batch
// may be taken as confirmed. Publish honours ctx: cancelling it returns
// promptly with an error, never a false success.
//
// Close flushes whatever is in flight and releases the connection; it gives
// up when ctx is done. A Sink is used by one goroutine at a time.
type Sink interface {
	Publish(ctx context.Context, msgs []*mapping.Message) error
	Close(ctx context.Context) error
}

// PublishError reports which messages of a batch the broker did not confirm.
//
// Failed holds indexes into the batch, ascending. An implementation includes
// every later message that shares an ordering scope (NATS subject, Kafka
// partition) with a failed one, so that publishing exactly the Failed
// messages again, in order, keeps per-key order.
type PublishError struct {
	Failed []int
	Err    error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("%d message(s) not confirmed: %v", len(e.Failed), e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// Unconfirmed returns the messages of batch that err says were not
// confirmed: the listed ones for a *PublishError, the whole batch for any
// other error, none for nil.
func Unconfirmed(batch []*mapping.Message, err error) []*mapping.Message {
	if err == nil {
		return nil
	}
	var pe *PublishError
	if !errors.As(err, &pe) {
		return batch
	}
	out := make([]*mapping.Message, 0, len(pe.Failed))
	for _, i := range pe.Failed {
		if i >= 0 && i < len(batch) {
			out = append(out, batch[i])
		}
	}
	return out
}

// Recoverer is implemented by sinks that can say what they published after a
// checkpoint, which is how the bridge gets exactly-once delivery without
// broker transactions (docs/delivery.md).
type Recoverer interface {
	// Position returns an opaque position to store in the checkpoint. Every
	// message that a Publish confirms after Position returns is stored after
	// that position; a position from earlier is still correct, it only makes
	// the next read-back longer.
	Position(ctx context.Context) (json.RawMessage, error)
	// PublishedSince returns the dedup keys of the messages stored after pos.
	// A nil or empty pos means "nothing is known": the sink reads back
	// everything it can attribute to this bridge.
	PublishedSince(ctx context.Context, pos json.RawMessage) (map[string]struct{}, error)
}

// ReadyChecker is implemented by sinks that can report whether they can
// publish right now; readiness probes use it.
type ReadyChecker interface {
	Ready(ctx context.Context) error
}

// Limiter is implemented by sinks that know the largest message their
// broker accepts (NATS max_payload, the Kafka batch limit), so that the
// caller can set aside a message that could never be published instead of
// retrying it forever.
type Limiter interface {
	// MaxMessageBytes is the largest Size a message may have; it leaves
	// room for what the sink and its wrappers add (Nats-Msg-Id, trace
	// headers).
	MaxMessageBytes() int
}

// Size is what a message weighs against a broker's limit: its payload and
// its headers, each header with its framing ("Key: Value\r\n").
func Size(m *mapping.Message) int {
	n := len(m.Payload) + len(m.Key)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value) + 4
	}
	return n
}
