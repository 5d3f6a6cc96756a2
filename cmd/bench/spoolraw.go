package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// This file is the baseline of the drain with BRIDGE_SPOOL=on: the raw
// work a spool adds, done with the storage engine the bridge uses (the
// spool package itself), plus the raw client's publish, overlapped as the
// bridge overlaps them:
//
//	append: spool.Publish of rawSpoolChunk messages (one fsynced bbolt
//	        transaction each), then Checkpointed, as the loop does once
//	        its checkpoint is written
//	forward, at the same time: spool.Read of up to rawSpoolChunk entries,
//	        the raw client publishes them and waits for the broker's
//	        confirmation of all of them, spool.Forward (one fsynced
//	        transaction that records the mark and drops what is
//	        forwarded and checkpointed), as pipeline/forward.go does
//
// The time runs from the first append until the broker confirmed the last
// message, as the bridge's runs until the broker holds the last one.

const (
	// rawSpoolChunk is BRIDGE_PUBLISH_BATCH's default: the most events
	// in one chunk the loop appends and the forwarder reads.
	rawSpoolChunk = 1000
	// rawSpoolChunkBytes is the pipeline's bound on a chunk's bytes
	// (pipeline/drain.go chunkBytes), which the forwarder passes to Read.
	rawSpoolChunkBytes = 4 << 20
)

// rawForwarder is the raw client on a fresh broker of a lane's kind,
// publishing what a spool holds, one chunk at a time.
type rawForwarder interface {
	// publish sends msgs and returns once the broker confirmed every one.
	publish(ctx context.Context, msgs []*mapping.Message) error
	// verify fails unless the broker holds want messages.
	verify(ctx context.Context, want int) error
	close()
}

// rawSpoolRun appends stored to a fresh spool and forwards it from there
// with the raw client into a fresh broker, both at once, and records in r
// how long it took until the broker confirmed everything, how long the
// appends alone took, and the CPU time per message this process spent.
func (b *bench) rawSpoolRun(ctx context.Context, l *lane, stored backlog, r *drainRun) error {
	dir, err := tempDir(l.dir, "raw-spool-")
	if err != nil {
		return err
	}
	msgs := stored.messages()
	fwd, err := l.broker.rawForwarder(ctx, stored, filepath.Join(dir, "broker"))
	if err != nil {
		return fmt.Errorf("%s: raw: %w", l.sink, err)
	}
	defer fwd.close()
	sp, err := spool.Open(filepath.Join(dir, "spool"), spool.Options{})
	if err != nil {
		return fmt.Errorf("%s: raw: %w", l.sink, err)
	}
	defer sp.Close(context.Background())
	took, appended, cpu, err := spoolAndForward(ctx, sp, fwd, msgs)
	if err != nil {
		return fmt.Errorf("%s: raw: %w", l.sink, err)
	}
	if err := fwd.verify(ctx, len(msgs)); err != nil {
		return fmt.Errorf("%s: raw: %w", l.sink, err)
	}
	if st := sp.Stats(); st.Pending != 0 || st.Forwarded != uint64(len(msgs)) {
		return fmt.Errorf("%s: raw: the spool has %d entries pending, %d forwarded, want 0 and %d", l.sink, st.Pending, st.Forwarded, len(msgs))
	}
	r.RawSeconds, r.RawAppendSeconds, r.RawCPUMicros = took.Seconds(), appended.Seconds(), micros(cpu, len(msgs))
	return nil
}

// spoolAndForward appends msgs to sp in chunks while it forwards them
// from sp with fwd; it returns the time until fwd's last confirmation,
// the time the appends took and the CPU time this process used.
func spoolAndForward(ctx context.Context, sp *spool.Spool, fwd rawForwarder, msgs []*mapping.Message) (took, appended, cpu time.Duration, _ error) {
	if len(msgs) == 0 {
		return 0, 0, 0, errors.New("nothing to spool")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cpuStart, began := selfCPU(), time.Now()
	appendErr := make(chan error, 1)
	go func() {
		for i := 0; i < len(msgs); i += rawSpoolChunk {
			if err := sp.Publish(ctx, msgs[i:min(i+rawSpoolChunk, len(msgs))]); err != nil {
				cancel()
				appendErr <- fmt.Errorf("spool append: %w", err)
				return
			}
			pos, err := sp.Position(ctx)
			if err != nil {
				cancel()
				appendErr <- err
				return
			}
			sp.Checkpointed(pos)
		}
		appended = time.Since(began)
		appendErr <- nil
	}()
	fail := func(err error) (time.Duration, time.Duration, time.Duration, error) {
		cancel()
		if aerr := <-appendErr; aerr != nil {
			return 0, 0, 0, aerr
		}
		return 0, 0, 0, err
	}
	var seq uint64
	batch := make([]*mapping.Message, 0, rawSpoolChunk)
	for seq < uint64(len(msgs)) {
		es, err := sp.Read(ctx, seq, rawSpoolChunk, rawSpoolChunkBytes)
		if err != nil {
			return fail(fmt.Errorf("spool read after %d: %w", seq, err))
		}
		batch = batch[:0]
		for _, e := range es {
			batch = append(batch, e.Msg)
		}
		if err := fwd.publish(ctx, batch); err != nil {
			return fail(fmt.Errorf("publish entries %d..%d: %w", es[0].Seq, es[len(es)-1].Seq, err))
		}
		last := es[len(es)-1].Seq
		if last == uint64(len(msgs)) {
			took = time.Since(began)
		}
		if err := sp.Forward(last, nil); err != nil {
			return fail(err)
		}
		seq = last
	}
	if err := <-appendErr; err != nil {
		return 0, 0, 0, err
	}
	return took, appended, selfCPU() - cpuStart, nil
}

// messages turns what a stream holds back into the messages the bridge
// published: Nats-Msg-Id is the dedup key, the other headers in key
// order.
func (b natsBacklog) messages() []*mapping.Message {
	out := make([]*mapping.Message, len(b))
	for i, m := range b {
		keys := make([]string, 0, len(m.Header))
		for k := range m.Header {
			if k != jetstream.MsgIDHeader {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		var hs []mapping.Header
		for _, k := range keys {
			for _, v := range m.Header[k] {
				hs = append(hs, mapping.Header{Key: k, Value: v})
			}
		}
		out[i] = &mapping.Message{Subject: m.Subject, Headers: hs, Payload: m.Data, DedupKey: m.Header.Get(jetstream.MsgIDHeader)}
	}
	return out
}

// messages turns what the topics hold back into the messages the bridge
// published: the dedup key is the Zulip-Dedup-Key header.
func (b *kafkaBacklog) messages() []*mapping.Message {
	out := make([]*mapping.Message, len(b.msgs))
	for i, m := range b.msgs {
		msg := &mapping.Message{Topic: m.Topic, Key: m.Key, Payload: m.Value}
		for _, h := range m.Headers {
			msg.Headers = append(msg.Headers, mapping.Header{Key: h.Key, Value: string(h.Value)})
			if h.Key == mapping.HeaderDedupKey {
				msg.DedupKey = string(h.Value)
			}
		}
		out[i] = msg
	}
	return out
}

// natsForwarder publishes into a second nats-server with the bridge's
// stream configuration, as raw does: nats.go's JetStream async publish
// with a window of rawWindow, Nats-Msg-Id set to the dedup key.
type natsForwarder struct {
	fresh  *natsBroker
	js     jetstream.JetStream
	stream string
	failed atomic.Int64
}

func (n *natsBroker) rawForwarder(ctx context.Context, _ backlog, dir string) (rawForwarder, error) {
	cfg, err := n.streamConfig(ctx)
	if err != nil {
		return nil, err
	}
	fresh, err := startNATS(dir)
	if err != nil {
		return nil, err
	}
	if _, err := fresh.js.CreateStream(ctx, cfg); err != nil {
		fresh.close()
		return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
	}
	f := &natsForwarder{fresh: fresh, stream: cfg.Name}
	f.js, err = jetstream.New(fresh.nc,
		jetstream.WithPublishAsyncMaxPending(rawWindow),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { f.failed.Add(1) }))
	if err != nil {
		fresh.close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return f, nil
}

func (f *natsForwarder) publish(ctx context.Context, msgs []*mapping.Message) error {
	for _, m := range msgs {
		h := make(nats.Header, len(m.Headers)+1)
		for _, kv := range m.Headers {
			h[kv.Key] = append(h[kv.Key], kv.Value)
		}
		h[jetstream.MsgIDHeader] = []string{m.DedupKey}
		if _, err := f.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Payload}, jetstream.WithStallWait(time.Minute)); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	select {
	case <-f.js.PublishAsyncComplete():
	case <-ctx.Done():
		return fmt.Errorf("wait for acknowledgements: %w", ctx.Err())
	}
	if n := f.failed.Load(); n > 0 {
		return fmt.Errorf("%d publishes failed", n)
	}
	return nil
}

func (f *natsForwarder) verify(ctx context.Context, want int) error {
	if got, err := streamMsgs(ctx, f.js, f.stream); err != nil || got != int64(want) {
		return fmt.Errorf("stream holds %d of %d messages (%v)", got, want, err)
	}
	return nil
}

func (f *natsForwarder) close() { f.fresh.close() }

// kafkaForwarder writes into a second kfake cluster with the same topics
// and partitions, with the raw kafka-go Writer of raw, one synchronous
// WriteMessages per chunk.
type kafkaForwarder struct {
	fresh *kafkaBroker
	w     *kafka.Writer
	recs  []kafka.Message
}

func (k *kafkaBroker) rawForwarder(ctx context.Context, b backlog, _ string) (rawForwarder, error) {
	fresh, err := startKafka()
	if err != nil {
		return nil, err
	}
	if err := fresh.createTopics(ctx, b.(*kafkaBacklog).partitions); err != nil {
		fresh.close()
		return nil, err
	}
	return &kafkaForwarder{fresh: fresh, w: newRawWriter(fresh.c.ListenAddrs(), 1000, time.Millisecond)}, nil
}

func (f *kafkaForwarder) publish(ctx context.Context, msgs []*mapping.Message) error {
	f.recs = f.recs[:0]
	for _, m := range msgs {
		hs := make([]kafka.Header, len(m.Headers))
		for i, h := range m.Headers {
			hs[i] = kafka.Header{Key: h.Key, Value: []byte(h.Value)}
		}
		f.recs = append(f.recs, kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Payload, Headers: hs})
	}
	if err := f.w.WriteMessages(ctx, f.recs...); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (f *kafkaForwarder) verify(ctx context.Context, want int) error {
	if got, err := f.fresh.count(ctx); err != nil || got != int64(want) {
		return fmt.Errorf("topics hold %d of %d records (%v)", got, want, err)
	}
	return nil
}

func (f *kafkaForwarder) close() {
	closeWriter(f.w)
	f.fresh.close()
}
