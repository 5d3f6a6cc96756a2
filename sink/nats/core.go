package nats

import (
	"context"
	"fmt"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// Core publishes with core NATS: Publish writes the batch and returns nil
// once a flush round trip shows the server received all of it. That is the
// only confirmation core NATS has. The server keeps nothing: a subscriber
// that is not connected at that moment never sees the message, so delivery
// to consumers is at most once. A batch that failed part way is reported
// unconfirmed as a whole, and sending it again may deliver its first
// messages twice to subscribers that were connected.
type Core struct {
	*conn
}

var (
	_ sink.Sink         = (*Core)(nil)
	_ sink.ReadyChecker = (*Core)(nil)
)

// Publish writes every message and flushes. Any error leaves the whole
// batch unconfirmed: core NATS cannot tell which messages got through.
func (s *Core) Publish(ctx context.Context, msgs []*mapping.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.checkPublish(ctx); err != nil {
		return err
	}
	reconnects := s.nc.Stats().Reconnects
	// PublishMsg has written a message's headers out when it returns, so
	// one msgBuf serves the whole batch.
	b := getMsgBuf()
	for _, m := range msgs {
		err := b.fill(m, "")
		if err == nil {
			err = s.nc.PublishMsg(&b.msg)
		}
		if err != nil {
			return fmt.Errorf("nats sink: publish to %s: %w", m.Subject, sendErr(err))
		}
	}
	putMsgBuf(b)
	fctx, cancel := ensureDeadline(ctx)
	defer cancel()
	if err := s.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("nats sink: flush: %w", err)
	}
	// A reconnect between the writes and the flush means the first part of
	// the batch may have died with the old connection.
	if s.nc.Stats().Reconnects != reconnects {
		return fmt.Errorf("nats sink: publish: %w: the connection dropped during the batch", ErrNotConnected)
	}
	return nil
}

// Close flushes what is buffered, within ctx, and closes the connection.
func (s *Core) Close(ctx context.Context) error {
	return s.close(ctx, nil)
}
