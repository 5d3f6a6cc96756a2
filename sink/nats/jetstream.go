package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// ackTimeout only reclaims the bookkeeping of an acknowledgement that never
// comes; Publish itself waits as long as its context allows.
const ackTimeout = time.Minute

// JetStream publishes into a JetStream stream and returns from Publish only
// once the stream acknowledged every message (or failed). Each message
// carries Nats-Msg-Id = its dedup key, so the stream drops what a retry
// sends twice within its duplicate window; PublishedSince covers restarts
// that outlast the window.
type JetStream struct {
	*conn
	js         jetstream.JetStream
	stream     jetstream.Stream
	streamName string
	prefix     string
	maxPending int

	// lastSeq is the highest stream sequence acknowledged to this sink.
	lastSeq atomic.Uint64
}

var (
	_ sink.Sink         = (*JetStream)(nil)
	_ sink.Recoverer    = (*JetStream)(nil)
	_ sink.ReadyChecker = (*JetStream)(nil)
)

func newJetStream(ctx context.Context, c *conn, cfg Config, prefix string) (*JetStream, error) {
	js, err := jetstream.New(c.nc,
		// Publish keeps its own window of cfg.MaxPending; the library's
		// limit only has to leave room for acknowledgements still owed to
		// an earlier, cancelled Publish, so that it never stalls.
		jetstream.WithPublishAsyncMaxPending(2*cfg.MaxPending),
		jetstream.WithPublishAsyncTimeout(ackTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("nats sink: jetstream: %w", err)
	}
	st, err := ensureStream(ctx, js, cfg, prefix, c.log)
	if err != nil {
		return nil, err
	}
	return &JetStream{
		conn:       c,
		js:         js,
		stream:     st,
		streamName: cfg.Stream,
		prefix:     prefix,
		maxPending: cfg.MaxPending,
	}, nil
}

// ensureStream looks the stream up and creates it if allowed. An existing
// stream is not changed: limits and replicas are its owner's decision.
func ensureStream(ctx context.Context, js jetstream.JetStream, cfg Config, prefix string, log *slog.Logger) (jetstream.Stream, error) {
	subject := prefix + ".>"
	st, err := js.Stream(ctx, cfg.Stream)
	switch {
	case err == nil:
		if subjects := st.CachedInfo().Config.Subjects; !slices.Contains(subjects, subject) && !slices.Contains(subjects, ">") {
			log.Warn("stream does not list the bridge's subjects; publishing fails unless another subject covers them",
				"stream", cfg.Stream, "subjects", subjects, "want", subject)
		}
		return st, nil
	case !errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("nats sink: look up stream %s: %w", cfg.Stream, err)
	case !*cfg.CreateStream:
		return nil, fmt.Errorf("nats sink: stream %s does not exist and BRIDGE_NATS_CREATE_STREAM is false: %w", cfg.Stream, err)
	}
	maxBytes := cfg.MaxBytes
	if maxBytes == 0 {
		maxBytes = -1
	}
	st, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "Zulip events published by zulip-bridge",
		Subjects:    []string{subject},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  cfg.DuplicateWindow,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    maxBytes,
		Replicas:    cfg.Replicas,
		AllowDirect: true,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another bridge or an operator created it in the meantime.
		st, err = js.Stream(ctx, cfg.Stream)
	}
	if err != nil {
		return nil, fmt.Errorf("nats sink: create stream %s on %s: %w", cfg.Stream, subject, err)
	}
	log.Info("created stream", "stream", cfg.Stream, "subject", subject,
		"duplicate_window", cfg.DuplicateWindow, "max_age", cfg.MaxAge, "max_bytes", cfg.MaxBytes, "replicas", cfg.Replicas)
	return st, nil
}

// Publish sends the batch asynchronously, at most MaxPending messages
// ahead of the acknowledgements, and returns nil once the stream
// acknowledged all of it. Otherwise it returns a *sink.PublishError listing
// every message not acknowledged, plus every later message of a subject
// that has one, so that sending the list again keeps each subject in
// order.
//
// Publish stops sending at the first failure, when ctx is done, or when the
// connection has dropped since the batch started: a message sent on a new
// connection could otherwise be stored before an earlier one lost with the
// old connection.
func (s *JetStream) Publish(ctx context.Context, msgs []*mapping.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := s.checkPublish(ctx); err != nil {
		return err
	}
	reconnects := s.nc.Stats().Reconnects
	futures := make([]jetstream.PubAckFuture, len(msgs))
	errs := make([]error, len(msgs))
	var (
		sent, awaited int
		failed        bool
		stopErr       error
		highest       uint64
	)
	bufs := make([]*msgBuf, len(msgs))
	await := func() {
		seq, err := waitAck(ctx, futures[awaited])
		if err != nil {
			errs[awaited] = err
			failed = true
		} else {
			// Acknowledged: nats.go is done with the message.
			putMsgBuf(bufs[awaited])
			bufs[awaited] = nil
		}
		highest = max(highest, seq)
		awaited++
	}
	for sent < len(msgs) {
		for sent-awaited >= s.maxPending && !failed {
			await()
		}
		if failed {
			break
		}
		if err := ctx.Err(); err != nil {
			stopErr = err
			break
		}
		if s.nc.Stats().Reconnects != reconnects {
			stopErr = fmt.Errorf("%w: the connection dropped during the batch", ErrNotConnected)
			break
		}
		m := msgs[sent]
		b := getMsgBuf()
		err := b.fill(m, m.DedupKey)
		if err == nil {
			bufs[sent] = b
			futures[sent], err = s.js.PublishMsgAsync(&b.msg)
		}
		if err != nil {
			errs[sent] = sendErr(err)
			break
		}
		sent++
	}
	for awaited < sent {
		await()
	}
	// Acknowledged messages are stored whatever happened to the others.
	if highest > s.lastSeq.Load() {
		s.lastSeq.Store(highest)
	}
	if err := unconfirmed(msgs, errs, sent, stopErr); err != nil {
		err.Err = fmt.Errorf("nats sink: publish to stream %s: %w", s.streamName, err.Err)
		return err
	}
	return nil
}

// waitAck waits for one acknowledgement and returns its stream sequence.
func waitAck(ctx context.Context, f jetstream.PubAckFuture) (uint64, error) {
	select {
	case ack := <-f.Ok():
		return ack.Sequence, nil
	case err := <-f.Err():
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// unconfirmed turns per-message outcomes into the batch's error: nil when
// every message was sent and none failed. Messages from index sent on were
// never sent; stopErr says why, when no message error does.
func unconfirmed(msgs []*mapping.Message, errs []error, sent int, stopErr error) *sink.PublishError {
	var (
		failed   []int
		cause    error
		poisoned = map[string]bool{}
	)
	for i, m := range msgs {
		err := errs[i]
		if err == nil && i >= sent {
			err = stopErr
		}
		if err == nil && i < sent && !poisoned[m.Subject] {
			continue
		}
		poisoned[m.Subject] = true
		failed = append(failed, i)
		if cause == nil {
			cause = err
		}
	}
	if len(failed) == 0 {
		return nil
	}
	if cause == nil {
		cause = errors.New("not sent")
	}
	return &sink.PublishError{Failed: failed, Err: cause}
}

// Close waits, within ctx, for acknowledgements still owed to a cancelled
// Publish, flushes, and closes the connection. It closes the connection
// even when ctx ends first.
func (s *JetStream) Close(ctx context.Context) error {
	return s.close(ctx, func(ctx context.Context) error {
		select {
		case <-s.js.PublishAsyncComplete():
			return nil
		case <-ctx.Done():
			return fmt.Errorf("%d acknowledgement(s) still pending: %w", s.js.PublishAsyncPending(), ctx.Err())
		}
	})
}
