package consumer_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/consumer"
)

// A message event as the bridge publishes it (the payload is Zulip's event).
const examplePayload = `{"type":"message","id":1,"flags":[],"message":{"id":31,"type":"stream","stream_id":12,"display_recipient":"design team","subject":"lunch","sender_id":10,"sender_email":"hamlet@chat.example.com","sender_full_name":"King Hamlet","content":"Pizza?","timestamp":1594825416,"recipient_id":23}}`

var exampleHeaders = map[string]string{
	consumer.HeaderEventType: "message",
	consumer.HeaderEventID:   "1",
	consumer.HeaderQueueID:   "1517975029:0",
	consumer.HeaderSite:      "chat.example.com",
	consumer.HeaderDedupKey:  "chat.example.com/message/31",
	consumer.HeaderStreamID:  "12",
	consumer.HeaderStream:    "design team",
	consumer.HeaderTopic:     "lunch",
	consumer.HeaderMessageID: "31",
	"Content-Type":           "application/json",
}

func ExampleDecode() {
	ev, err := consumer.Decode([]byte(examplePayload))
	if err != nil {
		log.Fatal(err)
	}
	switch e := ev.(type) {
	case *consumer.MessageEvent:
		fmt.Printf("%s > %s: %s\n", e.Message.StreamName(), e.Message.Topic(), e.Message.Content)
	case *consumer.Generic:
		fmt.Println("some other event:", e.EventType(), string(e.Raw()))
	}
	// Output: design team > lunch: Pizza?
}

func ExampleParseHeaders() {
	h := map[string][]string{}
	for k, v := range exampleHeaders {
		h[k] = []string{v}
	}
	meta := consumer.ParseHeaders(h)
	fmt.Println(meta.EventType, meta.DedupKey, meta.StreamID, meta.StreamName, meta.TopicName)
	// Output: message chat.example.com/message/31 12 design team lunch
}

func ExampleWindow() {
	ctx := context.Background()
	w := consumer.NewWindow(2) // remembers the last two keys
	for _, key := range []string{"a/message/1", "a/message/2", "a/message/1", "a/message/3", "a/message/1"} {
		if seen, _ := w.Seen(ctx, key); seen {
			fmt.Println("duplicate", key)
			continue
		}
		fmt.Println("handle", key)
		_ = w.Mark(ctx, key)
	}
	// Output:
	// handle a/message/1
	// handle a/message/2
	// duplicate a/message/1
	// handle a/message/3
	// handle a/message/1
}

// A durable consumer of the stream messages of JetStream's stream ZULIP,
// with the bridge's control events. Here an embedded nats-server stands in
// for the bridge's, and the message is published as the bridge would.
func ExampleConsumeJetStream() {
	url, stop := exampleNATS()
	defer stop()

	nc, err := nats.Connect(url)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	examplePublishNATS(ctx, js)

	handler := func(ctx context.Context, d *consumer.Delivery) error {
		if m, ok := d.Event.(*consumer.MessageEvent); ok {
			fmt.Printf("%s #%d in %s > %s: %s\n", d.Meta.Subject, m.Message.ID, d.Meta.StreamName, d.Meta.TopicName, m.Message.Content)
		}
		cancel()   // one is enough for the example
		return nil // acknowledged
	}
	err = consumer.ConsumeJetStream(ctx, js, consumer.JetStreamConfig{
		Durable:        "my-service",
		FilterSubjects: []string{"zulip.message.>", "zulip.bridge.>"},
	}, handler, consumer.Options{
		OnResync: func(ctx context.Context, r *consumer.Resync, _ consumer.Metadata) error {
			fmt.Println("resync: lost for good:", r.Unrecoverable)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output: zulip.message.stream.12 #31 in design team > lunch: Pizza?
}

// A member of the consumer group my-service reading zulip.message. Here
// franz-go's kfake stands in for the brokers.
func ExampleConsumeKafka() {
	brokers, stop := exampleKafka()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	examplePublishKafka(ctx, brokers)

	handler := func(ctx context.Context, d *consumer.Delivery) error {
		if m, ok := d.Event.(*consumer.MessageEvent); ok {
			fmt.Printf("%s key %s: %s\n", d.Meta.KafkaTopic, d.Meta.Key, m.Message.Content)
		}
		cancel()
		return nil // the offset is committed
	}
	err := consumer.ConsumeKafka(ctx, kafka.ReaderConfig{
		Brokers:     brokers,
		GroupID:     "my-service",
		GroupTopics: []string{"zulip.message"},
		MaxWait:     100 * time.Millisecond,
	}, handler, consumer.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	// Output: zulip.message key stream:12:lunch: Pizza?
}

// exampleNATS starts a nats-server with JetStream on a free loopback port
// and the stream the bridge creates.
func exampleNATS() (url string, stop func()) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: exampleTempDir(), NoSigs: true})
	if err != nil {
		log.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		log.Fatal("nats-server not ready")
	}
	return srv.ClientURL(), srv.Shutdown
}

func examplePublishNATS(ctx context.Context, js jetstream.JetStream) {
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZULIP", Subjects: []string{"zulip.>"}}); err != nil {
		log.Fatal(err)
	}
	m := nats.NewMsg("zulip.message.stream.12")
	for k, v := range exampleHeaders {
		m.Header.Set(k, v)
	}
	m.Data = []byte(examplePayload)
	if _, err := js.PublishMsg(ctx, m); err != nil {
		log.Fatal(err)
	}
}

func exampleKafka() (brokers []string, stop func()) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "zulip.message"))
	if err != nil {
		log.Fatal(err)
	}
	return c.ListenAddrs(), c.Close
}

func examplePublishKafka(ctx context.Context, brokers []string) {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...)}
	defer w.Close()
	r := kafka.Message{Topic: "zulip.message", Key: []byte("stream:12:lunch"), Value: []byte(examplePayload)}
	for k, v := range exampleHeaders {
		r.Headers = append(r.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	if err := w.WriteMessages(ctx, r); err != nil {
		log.Fatal(err)
	}
}

// exampleTempDir is a directory for the example server's store, removed
// with the test binary's temporary files by TestMain.
func exampleTempDir() string {
	dir, err := os.MkdirTemp("", "consumer-example-*")
	if err != nil {
		log.Fatal(err)
	}
	exampleDirs = append(exampleDirs, dir)
	return dir
}

var exampleDirs []string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range exampleDirs {
		_ = os.RemoveAll(d)
	}
	os.Exit(code)
}
