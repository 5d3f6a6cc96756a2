package nats

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/zulip-bridge/zulip-bridge/mapping"
)

// specMessages are events as the mapping renders them (docs/names.md).
func specMessages() []*mapping.Message {
	common := func(typ, op, id, dedup string) []mapping.Header {
		h := []mapping.Header{{Key: mapping.HeaderEventType, Value: typ}}
		if op != "" {
			h = append(h, mapping.Header{Key: mapping.HeaderEventOp, Value: op})
		}
		return append(h,
			mapping.Header{Key: mapping.HeaderEventID, Value: id},
			mapping.Header{Key: mapping.HeaderQueueID, Value: "1700000000:7"},
			mapping.Header{Key: mapping.HeaderSite, Value: "chat.example.com"},
			mapping.Header{Key: mapping.HeaderDedupKey, Value: dedup},
		)
	}
	stream := append(common("message", "", "41", "chat.example.com/message/1001"),
		mapping.Header{Key: mapping.HeaderStreamID, Value: "12"},
		mapping.Header{Key: mapping.HeaderStream, Value: "Dänemark"},
		mapping.Header{Key: mapping.HeaderTopic, Value: "lunch plans"},
		mapping.Header{Key: mapping.HeaderMessageID, Value: "1001"},
		mapping.Header{Key: mapping.HeaderContentType, Value: "application/json"},
	)
	user := append(common("realm_user", "update", "42", "chat.example.com/1700000000:7/42"),
		mapping.Header{Key: mapping.HeaderContentType, Value: "application/json"},
	)
	return []*mapping.Message{
		{
			Subject:  "zulip.message.stream.12",
			Headers:  stream,
			Payload:  []byte(`{"type":"message","message":{"id":1001,"content":"caf\u00e9 \u2615"},"flags":[],"id":41}`),
			DedupKey: "chat.example.com/message/1001",
		},
		{
			Subject:  "zulip.realm_user.update",
			Headers:  user,
			Payload:  []byte("{\"type\": \"realm_user\", \"op\": \"update\",\n \"person\": {\"user_id\": 9}, \"id\": 42}"),
			DedupKey: "chat.example.com/1700000000:7/42",
		},
	}
}

// checkReceived compares what a plain nats.go consumer got with the spec
// message, header by header, using nats.go's own accessors.
func checkReceived(t *testing.T, want *mapping.Message, subject string, h nats.Header, data []byte, jetStream bool) {
	t.Helper()
	if subject != want.Subject {
		t.Errorf("subject %q, want %q", subject, want.Subject)
	}
	for _, kv := range want.Headers {
		if got := h.Get(kv.Key); got != kv.Value {
			t.Errorf("%s: header %s = %q, want %q", want.Subject, kv.Key, got, kv.Value)
		}
	}
	msgID := h.Get(jetstream.MsgIDHeader)
	if jetStream && msgID != want.DedupKey {
		t.Errorf("%s: Nats-Msg-Id = %q, want the dedup key %q", want.Subject, msgID, want.DedupKey)
	}
	if !jetStream && msgID != "" {
		t.Errorf("%s: core NATS message carries Nats-Msg-Id %q", want.Subject, msgID)
	}
	if extra := len(h) - len(want.Headers); jetStream && extra != 1 || !jetStream && extra != 0 {
		t.Errorf("%s: %d headers %v, want the %d of the message plus Nats-Msg-Id in JetStream", want.Subject, len(h), h, len(want.Headers))
	}
	if !bytes.Equal(data, want.Payload) {
		t.Errorf("%s: payload %q, want %q byte for byte", want.Subject, data, want.Payload)
	}
}

func TestPlainJetStreamConsumerReadsSpecMessages(t *testing.T) {
	ts := startServer(t)
	s := newSink(t, testConfig(ts, true))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := specMessages()
	if err := s.Publish(ctx, want); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	js, err := jetstream.New(ts.connect(t))
	if err != nil {
		t.Fatal(err)
	}
	cons, err := js.CreateConsumer(ctx, "ZULIP", jetstream.ConsumerConfig{
		Durable:        "downstream",
		FilterSubjects: []string{"zulip.message.stream.*", "zulip.realm_user.>"},
		AckPolicy:      jetstream.AckExplicitPolicy,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	batch, err := cons.Fetch(len(want), jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	i := 0
	for msg := range batch.Messages() {
		if i >= len(want) {
			t.Fatalf("more messages than published: %s", msg.Subject())
		}
		checkReceived(t, want[i], msg.Subject(), msg.Headers(), msg.Data(), true)
		if err := msg.Ack(); err != nil {
			t.Errorf("ack: %v", err)
		}
		i++
	}
	if batch.Error() != nil || i != len(want) {
		t.Fatalf("consumer got %d of %d messages: %v", i, len(want), batch.Error())
	}
}

func TestPlainCoreSubscriberReadsSpecMessages(t *testing.T) {
	ts := startServer(t)
	nc := ts.connect(t)
	sub, err := nc.SubscribeSync("zulip.>")
	if err != nil {
		t.Fatal(err)
	}
	waitConnected(t, nc)
	s := openSink(t, testConfig(ts, false))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	want := specMessages()
	if err := s.Publish(ctx, want); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for _, w := range want {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			t.Fatalf("next message: %v", err)
		}
		checkReceived(t, w, msg.Subject, msg.Header, msg.Data, false)
	}
}
