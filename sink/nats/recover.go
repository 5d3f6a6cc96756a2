package nats

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// position is what Position returns, as JSON: the stream it is about and a
// stream sequence in it.
type position struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
}

// progressEvery is how often a long read-back logs its progress.
const progressEvery = 5 * time.Second

// Position returns the stream sequence of the last message this sink saw
// acknowledged or, before its first acknowledgement, the stream's last
// sequence. Messages a later Publish confirms are stored after it.
func (s *JetStream) Position(ctx context.Context) (json.RawMessage, error) {
	seq := s.lastSeq.Load()
	if seq == 0 {
		info, err := s.stream.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("nats sink: position: stream %s: %w", s.streamName, err)
		}
		seq = info.State.LastSeq
	}
	return json.Marshal(position{Stream: s.streamName, Seq: seq})
}

// PublishedSince returns the Nats-Msg-Id of every message stored on
// <prefix>.> after pos. It reads headers only, through a temporary
// consumer, so memory grows with the number of keys, not with payloads. A
// position for another stream, or beyond the stream's end (the stream was
// recreated), reads back the whole stream, which is the safe direction.
func (s *JetStream) PublishedSince(ctx context.Context, raw json.RawMessage) (map[string]struct{}, error) {
	var from uint64
	if len(bytes.TrimSpace(raw)) > 0 && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		var p position
		if err := json.Unmarshal(raw, &p); err != nil || p.Stream == "" {
			return nil, fmt.Errorf("%w: want {\"stream\":...,\"seq\":...}", ErrBadPosition)
		}
		if p.Stream == s.streamName {
			from = p.Seq
		} else {
			s.log.Warn("checkpoint position is for another stream; reading back the whole stream",
				"position_stream", p.Stream, "stream", s.streamName)
		}
	}
	info, err := s.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("nats sink: read back: stream %s: %w", s.streamName, err)
	}
	state := info.State
	if from > state.LastSeq {
		s.log.Warn("stream ends before the checkpoint position (recreated or purged?); reading back the whole stream",
			"stream", s.streamName, "position", from, "last_seq", state.LastSeq)
		from = 0
	}
	keys := map[string]struct{}{}
	if state.Msgs == 0 || from >= state.LastSeq {
		return keys, nil
	}
	cons, err := s.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Description:       "zulip-bridge read-back",
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       max(from+1, state.FirstSeq),
		FilterSubject:     s.prefix + ".>",
		AckPolicy:         jetstream.AckNonePolicy,
		HeadersOnly:       true,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("nats sink: read back: create consumer on %s: %w", s.streamName, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// InactiveThreshold removes it anyway if this fails.
		_ = s.stream.DeleteConsumer(dctx, cons.CachedInfo().Name)
	}()
	pending := cons.CachedInfo().NumPending
	if pending == 0 {
		return keys, nil
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("nats sink: read back: %w", err)
	}
	defer it.Stop()
	start, lastLog := time.Now(), time.Now()
	var read uint64
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("nats sink: read back from %s after %d of %d message(s): %w", s.streamName, read, pending, err)
		}
		read++
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != "" {
			keys[id] = struct{}{}
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("nats sink: read back: %w", err)
		}
		if meta.NumPending == 0 || meta.Sequence.Stream >= state.LastSeq {
			break
		}
		if time.Since(lastLog) >= progressEvery {
			lastLog = time.Now()
			s.log.Info("reading back published messages", "stream", s.streamName, "read", read, "remaining", meta.NumPending)
		}
	}
	if d := time.Since(start); d >= progressEvery {
		s.log.Info("read back published messages", "stream", s.streamName, "read", read, "keys", len(keys), "took", d.Round(time.Millisecond))
	}
	return keys, nil
}
