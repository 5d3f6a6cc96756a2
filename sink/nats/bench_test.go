package natssink

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

// BenchmarkPublish compares the sink with plain nats.go JetStream
// asynchronous publishing of the same messages to the same server, in the
// same run: "raw" publishes each message with its headers and Nats-Msg-Id
// and waits for all acknowledgements; "sink" calls Publish. The sink's
// overhead is the ratio of their msgs/s (benchratio.sh prints it).
//
// Each side gets a server and stream of its own, so that neither runs
// against a store the other has already filled.
func BenchmarkPublish(b *testing.B) {
	const batchSize = 1000
	var g sinktest.Generator
	batch := g.Batch(batchSize)
	setup := func(b *testing.B) Config {
		ts := startServer(b)
		cfg := testConfig(ts, true)
		// Bounds the benchmark's disk use; the oldest messages make room.
		cfg.MaxBytes = 256 << 20
		return cfg
	}

	b.Run("raw", func(b *testing.B) {
		cfg := setup(b)
		// The sink creates the stream, as the bridge would.
		newSink(b, cfg)
		nc, err := nats.Connect(cfg.URL)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending))
		if err != nil {
			b.Fatal(err)
		}
		iter := 0
		for b.Loop() {
			relabel(batch, "raw", iter)
			iter++
			for _, m := range batch {
				h := make(nats.Header, len(m.Headers)+1)
				for _, kv := range m.Headers {
					h[kv.Key] = append(h[kv.Key], kv.Value)
				}
				h[jetstream.MsgIDHeader] = []string{m.DedupKey}
				if _, err := js.PublishMsgAsync(&nats.Msg{Subject: m.Subject, Header: h, Data: m.Payload}); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("acknowledgements did not arrive")
			}
		}
		b.ReportMetric(float64(iter*batchSize)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("sink", func(b *testing.B) {
		s := newSink(b, setup(b))
		ctx := context.Background()
		iter := 0
		for b.Loop() {
			relabel(batch, "sink", iter)
			iter++
			if err := s.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(iter*batchSize)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// relabel gives the batch fresh dedup keys so that the stream stores every
// message instead of dropping repeats as duplicates.
func relabel(batch []*mapping.Message, run string, iter int) {
	prefix := run + "/" + strconv.Itoa(iter) + "/"
	for i, m := range batch {
		m.DedupKey = prefix + strconv.Itoa(i)
	}
}
