package kafkasink_test

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

// BenchmarkPublish publishes the same batches with a plain kafka-go Writer
// configured as the sink configures its own (raw), then through the sink,
// against one kfake that discards record bytes, so that the client side is
// what is measured. The sink sub-benchmark reports vs-raw: raw's time per
// batch over the sink's, the throughput ratio (target >= 0.9).
func BenchmarkPublish(b *testing.B) {
	const batchSize = 200
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, sinktest.Topics()...), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var g sinktest.Generator
	batches := make([][]*mapping.Message, 64)
	for i := range batches {
		batches[i] = g.Batch(batchSize)
	}
	cfg := kafkasink.Config{Brokers: c.ListenAddrs()}
	ctx := context.Background()

	var rawPerBatch time.Duration
	b.Run("raw", func(b *testing.B) {
		w := &kafka.Writer{
			Addr:         kafka.TCP(c.ListenAddrs()...),
			Transport:    &kafka.Transport{ClientID: kafkasink.DefaultClientID},
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			MaxAttempts:  1,
			BatchSize:    kafkasink.DefaultBatchSize,
			BatchBytes:   kafkasink.DefaultBatchBytes,
			BatchTimeout: kafkasink.DefaultBatchTimeout,
			WriteTimeout: kafkasink.DefaultWriteTimeout,
			ReadTimeout:  kafkasink.DefaultWriteTimeout,
		}
		defer w.Close()
		records := make([][]kafka.Message, len(batches))
		for i, batch := range batches {
			records[i] = make([]kafka.Message, len(batch))
			for j, m := range batch {
				headers := make([]kafka.Header, len(m.Headers))
				for k, h := range m.Headers {
					headers[k] = kafka.Header{Key: h.Key, Value: []byte(h.Value)}
				}
				records[i][j] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Payload, Headers: headers, Time: time.Now()}
			}
		}
		if err := w.WriteMessages(ctx, records[0]...); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		n := 0
		for ; b.Loop(); n++ {
			if err := w.WriteMessages(ctx, records[n%len(records)]...); err != nil {
				b.Fatal(err)
			}
		}
		rawPerBatch = b.Elapsed() / time.Duration(n)
		b.ReportMetric(float64(batchSize*n)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("sink", func(b *testing.B) {
		s, err := kafkasink.New(cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close(ctx)
		if err := s.Publish(ctx, batches[0]); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		n := 0
		for ; b.Loop(); n++ {
			if err := s.Publish(ctx, batches[n%len(batches)]); err != nil {
				b.Fatal(err)
			}
		}
		perBatch := b.Elapsed() / time.Duration(n)
		b.ReportMetric(float64(batchSize*n)/b.Elapsed().Seconds(), "msgs/s")
		if rawPerBatch > 0 {
			b.ReportMetric(float64(rawPerBatch)/float64(perBatch), "vs-raw")
		}
	})
}
