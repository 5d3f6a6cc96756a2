package nats

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

const benchBatch = 1000

// BenchmarkPublish compares the sink with plain nats.go JetStream
// asynchronous publishing of the same messages, in the same run:
//
//   - raw publishes each message with its headers and Nats-Msg-Id and
//     waits for all acknowledgements;
//   - sink calls Publish with the same batch;
//   - paired alternates one raw batch and one sink batch per iteration,
//     each against a server of its own, and reports the ratio of their
//     rates as sink/raw. Load from other processes hits both halves alike,
//     so this is the figure to quote (scripts/benchratio.sh nats prints it).
//
// Each side gets a server and stream of its own, so that neither runs
// against a store the other has already filled.
func BenchmarkPublish(b *testing.B) {
	var g sinktest.Generator
	batch := g.Batch(benchBatch)

	b.Run("raw", func(b *testing.B) {
		raw := newRawPublisher(b, benchConfig(b))
		iter := 0
		for b.Loop() {
			relabel(batch, "raw", iter)
			iter++
			raw.publish(b, batch)
		}
		b.ReportMetric(float64(iter*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("sink", func(b *testing.B) {
		s := newSink(b, benchConfig(b))
		ctx := context.Background()
		iter := 0
		for b.Loop() {
			relabel(batch, "sink", iter)
			iter++
			if err := s.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(iter*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("paired", func(b *testing.B) {
		raw := newRawPublisher(b, benchConfig(b))
		s := newSink(b, benchConfig(b))
		ctx := context.Background()
		var rawTime, sinkTime time.Duration
		runRaw := func(iter int) {
			relabel(batch, "raw", iter)
			start := time.Now()
			raw.publish(b, batch)
			rawTime += time.Since(start)
		}
		runSink := func(iter int) {
			relabel(batch, "sink", iter)
			start := time.Now()
			if err := s.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
			sinkTime += time.Since(start)
		}
		iter := 0
		for b.Loop() {
			// Alternate who goes first, so neither always meets a
			// server still busy with the other's batch.
			if iter%2 == 0 {
				runRaw(iter)
				runSink(iter)
			} else {
				runSink(iter)
				runRaw(iter)
			}
			iter++
		}
		msgs := float64(iter * benchBatch)
		b.ReportMetric(msgs/rawTime.Seconds(), "raw-msgs/s")
		b.ReportMetric(msgs/sinkTime.Seconds(), "sink-msgs/s")
		b.ReportMetric(rawTime.Seconds()/sinkTime.Seconds(), "sink/raw")
	})
}

// benchConfig starts a server for one side of the benchmark.
func benchConfig(b *testing.B) Config {
	cfg := testConfig(startServer(b), true)
	// Bounds the benchmark's disk use; the oldest messages make room.
	cfg.MaxBytes = 256 << 20
	return cfg
}

// rawPublisher is the baseline: nats.go's JetStream API used directly.
type rawPublisher struct {
	js jetstream.JetStream
}

func newRawPublisher(b *testing.B, cfg Config) *rawPublisher {
	// The sink creates the stream, as the bridge would.
	newSink(b, cfg)
	nc, err := nats.Connect(cfg.URL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending))
	if err != nil {
		b.Fatal(err)
	}
	return &rawPublisher{js: js}
}

func (r *rawPublisher) publish(b *testing.B, batch []*mapping.Message) {
	for _, m := range batch {
		h := make(nats.Header, len(m.Headers)+1)
		for _, kv := range m.Headers {
			h[kv.Key] = append(h[kv.Key], kv.Value)
		}
		h[jetstream.MsgIDHeader] = []string{m.DedupKey}
		if _, err := r.js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Payload}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-r.js.PublishAsyncComplete():
	case <-time.After(time.Minute):
		b.Fatal("acknowledgements did not arrive")
	}
}

// relabel gives the batch fresh dedup keys so that the stream stores every
// message instead of dropping repeats as duplicates.
func relabel(batch []*mapping.Message, run string, iter int) {
	prefix := run + "/" + strconv.Itoa(iter) + "/"
	for i, m := range batch {
		m.DedupKey = prefix + strconv.Itoa(i)
	}
}
