package kafka_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/sink/sinktest"
)

const (
	// benchBatch is the bridge's default BRIDGE_PUBLISH_BATCH.
	benchBatch = 1000
	// benchBatches distinct batches are cycled through, so that the
	// records are not the same few cache-hot values every time.
	benchBatches = 16
)

// BenchmarkPublish compares the sink with a plain kafka-go Writer that has
// the sink's settings (acks from all in-sync replicas, Hash balancer, batch
// size, bytes and timeout, no retries), publishing the same records, in
// the same run, against a kfake that acknowledges produce requests without
// storing them, so that the client side is what is measured:
//
//   - raw hands each batch, already converted to kafka.Message, to
//     WriteMessages and waits for it to return;
//   - sink calls Publish with the same batch, conversion included;
//   - paired alternates one raw batch and one sink batch per iteration and
//     reports the ratio of their rates as sink/raw. Load from other
//     processes hits both halves alike, so this is the figure to quote
//     (scripts/benchratio.sh kafka prints it); raw and sink run one after the other and
//     their ratio swings with whatever else the machine is doing.
//
// Both sides share one cluster: they never write at the same time, and a
// blackholed cluster keeps no state that one side could leave the other.
func BenchmarkPublish(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(testPartitions, sinktest.Topics()...), kfake.BlackholeProduce())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var g sinktest.Generator
	batches := make([][]*mapping.Message, benchBatches)
	for i := range batches {
		batches[i] = g.Batch(benchBatch)
	}
	cfg := kafkasink.Config{Brokers: c.ListenAddrs()}

	b.Run("raw", func(b *testing.B) {
		raw := newRawWriter(b, c, batches)
		b.ReportAllocs()
		n := 0
		for ; b.Loop(); n++ {
			raw.publish(b, n)
		}
		b.ReportMetric(float64(n*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("sink", func(b *testing.B) {
		s := newBenchSink(b, cfg, batches)
		ctx := context.Background()
		b.ReportAllocs()
		n := 0
		for ; b.Loop(); n++ {
			if err := s.Publish(ctx, batches[n%len(batches)]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n*benchBatch)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("paired", func(b *testing.B) {
		raw := newRawWriter(b, c, batches)
		pair(b, newBenchSink(b, cfg, batches), batches, "raw", func(n int) { raw.publish(b, n) })
	})

	// paired-produce pairs the sink with the least kafka-go can do for the
	// same records: one Client.Produce per partition, all at once, records
	// assigned and converted beforehand. Its sink/produce is the sink's own
	// cost (conversion, read-back bookkeeping, floors).
	b.Run("paired-produce", func(b *testing.B) {
		raw := newRawProducer(b, c, batches)
		pair(b, newBenchSink(b, cfg, batches), batches, "produce", func(n int) { raw.publish(b, n) })
	})
}

// pair alternates one raw batch and one sink batch per iteration and
// reports their rates and the ratio sink/<name>.
func pair(b *testing.B, s *kafkasink.Sink, batches [][]*mapping.Message, name string, raw func(n int)) {
	ctx := context.Background()
	var rawTime, sinkTime time.Duration
	runRaw := func(n int) {
		start := time.Now()
		raw(n)
		rawTime += time.Since(start)
	}
	runSink := func(n int) {
		start := time.Now()
		if err := s.Publish(ctx, batches[n%len(batches)]); err != nil {
			b.Fatal(err)
		}
		sinkTime += time.Since(start)
	}
	n := 0
	for ; b.Loop(); n++ {
		// Alternate who goes first, so that neither always runs right
		// after the other, with the garbage and the broker work the other
		// left behind.
		if n%2 == 0 {
			runRaw(n)
			runSink(n)
		} else {
			runSink(n)
			runRaw(n)
		}
	}
	msgs := float64(n * benchBatch)
	b.ReportMetric(msgs/rawTime.Seconds(), name+"-msgs/s")
	b.ReportMetric(msgs/sinkTime.Seconds(), "sink-msgs/s")
	b.ReportMetric(rawTime.Seconds()/sinkTime.Seconds(), "sink/"+name)
}

// newBenchSink returns a sink with its connections open and metadata
// cached, as after the bridge's first batch.
func newBenchSink(b *testing.B, cfg kafkasink.Config, batches [][]*mapping.Message) *kafkasink.Sink {
	s := newSink(b, cfg)
	if err := s.Publish(context.Background(), batches[0]); err != nil {
		b.Fatal(err)
	}
	return s
}

// rawWriter is the baseline: a kafka-go Writer configured as the sink
// configures its own from the default Config, given records converted
// beforehand, so that the conversion is counted against the sink only.
type rawWriter struct {
	w       *kafka.Writer
	records [][]kafka.Message
}

func newRawWriter(b *testing.B, c *kfake.Cluster, batches [][]*mapping.Message) *rawWriter {
	w := &kafka.Writer{
		Addr: kafka.TCP(c.ListenAddrs()...),
		Transport: &kafka.Transport{
			Dial:        (&net.Dialer{Timeout: kafkasink.DefaultDialTimeout}).DialContext,
			DialTimeout: kafkasink.DefaultDialTimeout,
			ClientID:    kafkasink.DefaultClientID,
		},
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		MaxAttempts:  1,
		BatchSize:    kafkasink.DefaultBatchSize,
		BatchBytes:   kafkasink.DefaultBatchBytes,
		BatchTimeout: kafkasink.DefaultBatchTimeout,
		WriteTimeout: kafkasink.DefaultWriteTimeout,
		ReadTimeout:  kafkasink.DefaultWriteTimeout,
	}
	b.Cleanup(func() {
		if err := w.Close(); err != nil {
			b.Errorf("close raw writer: %v", err)
		}
	})
	now := time.Now()
	records := make([][]kafka.Message, len(batches))
	for i, batch := range batches {
		records[i] = make([]kafka.Message, len(batch))
		for j, m := range batch {
			headers := make([]kafka.Header, len(m.Headers))
			for k, h := range m.Headers {
				headers[k] = kafka.Header{Key: h.Key, Value: []byte(h.Value)}
			}
			records[i][j] = kafka.Message{Topic: m.Topic, Key: m.Key, Value: m.Payload, Headers: headers, Time: now}
		}
	}
	r := &rawWriter{w: w, records: records}
	r.publish(b, 0)
	return r
}

func (r *rawWriter) publish(b *testing.B, n int) {
	if err := r.w.WriteMessages(context.Background(), r.records[n%len(r.records)]...); err != nil {
		b.Fatal(err)
	}
}

// rawProducer sends each batch as one kafka-go Client.Produce per
// partition, all at once, with acks from all in-sync replicas: records
// assigned to partitions by the Hash balancer and converted beforehand, read
// the way kafka-go's Writer reads its own.
type rawProducer struct {
	client  *kafka.Client
	batches [][]rawRequest
	now     time.Time
}

type rawRequest struct {
	topic     string
	partition int
	records   []kafka.Message
}

func newRawProducer(b *testing.B, c *kfake.Cluster, batches [][]*mapping.Message) *rawProducer {
	transport := &kafka.Transport{
		Dial:        (&net.Dialer{Timeout: kafkasink.DefaultDialTimeout}).DialContext,
		DialTimeout: kafkasink.DefaultDialTimeout,
		ClientID:    kafkasink.DefaultClientID,
	}
	b.Cleanup(transport.CloseIdleConnections)
	r := &rawProducer{
		client: &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Transport: transport, Timeout: kafkasink.DefaultWriteTimeout},
		now:    time.Now(),
	}
	balancer := &kafka.Hash{}
	for _, batch := range batches {
		type tp struct {
			topic string
			p     int
		}
		index := make(map[tp]int)
		var reqs []rawRequest
		for _, m := range batch {
			key := tp{m.Topic, balancer.Balance(kafka.Message{Key: m.Key}, 0, 1, 2, 3)}
			i, ok := index[key]
			if !ok {
				i = len(reqs)
				index[key] = i
				reqs = append(reqs, rawRequest{topic: key.topic, partition: key.p})
			}
			headers := make([]kafka.Header, len(m.Headers))
			for k, h := range m.Headers {
				headers[k] = kafka.Header{Key: h.Key, Value: []byte(h.Value)}
			}
			reqs[i].records = append(reqs[i].records, kafka.Message{Key: m.Key, Value: m.Payload, Headers: headers, Time: r.now})
		}
		r.batches = append(r.batches, reqs)
	}
	r.publish(b, 0)
	return r
}

func (r *rawProducer) publish(b *testing.B, n int) {
	reqs := r.batches[n%len(r.batches)]
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() {
			res, err := r.client.Produce(context.Background(), &kafka.ProduceRequest{
				Topic: req.topic, Partition: req.partition, RequiredAcks: kafka.RequireAll,
				Records: &messageRecords{msgs: req.records},
			})
			if err == nil {
				err = res.Error
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// messageRecords reads messages as records, reusing one record, as
// kafka-go's Writer does.
type messageRecords struct {
	msgs       []kafka.Message
	next       int
	rec        kafka.Record
	key, value benchBytes
}

func (r *messageRecords) ReadRecord() (*kafka.Record, error) {
	if r.next >= len(r.msgs) {
		return nil, io.EOF
	}
	m := &r.msgs[r.next]
	r.next++
	r.rec = kafka.Record{Time: m.Time, Headers: m.Headers}
	if m.Key != nil {
		r.key.Reset(m.Key)
		r.rec.Key = &r.key
	}
	if m.Value != nil {
		r.value.Reset(m.Value)
		r.rec.Value = &r.value
	}
	return &r.rec, nil
}

type benchBytes struct{ bytes.Reader }

func (*benchBytes) Close() error { return nil }
