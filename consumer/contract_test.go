package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/consumer"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// TestJetStreamHandlerContract: a payload that is no event is skipped
// (acknowledged, the handler never sees it); a handler that acknowledges and
// then fails does not get the message again; an event of a typed kind with a
// member of the wrong JSON type comes as a *Generic with a *TypeError; and
// what follows is handled, in order.
func TestJetStreamHandlerContract(t *testing.T) {
	n := testutil.StartNATS(t)
	nc, err := nats.Connect(n.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "ZULIP", Subjects: []string{"zulip.>"}}); err != nil {
		t.Fatal(err)
	}
	for i, payload := range []string{
		`nope`,
		`{"type":"presence","id":2,"user_id":10}`,
		`{"type":"reaction","op":"add","id":3,"message_id":"not a number"}`,
		`{"type":"heartbeat","id":4}`,
	} {
		m := nats.NewMsg("zulip.x")
		m.Header.Set(consumer.HeaderDedupKey, "site/q/"+string(rune('1'+i)))
		m.Data = []byte(payload)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu   sync.Mutex
		seen []string
	)
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	h := func(ctx context.Context, d *consumer.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, d.Meta.DedupKey+" "+d.Event.EventType())
		switch d.Event.EventType() {
		case "presence":
			if err := d.Ack(ctx); err != nil {
				t.Errorf("Ack: %v", err)
			}
			return errors.New("fails after its own Ack")
		case "reaction":
			var te *consumer.TypeError
			if _, ok := d.Event.(*consumer.Generic); !ok || !errors.As(d.DecodeErr, &te) {
				t.Errorf("reaction with a bad member: %T, %v", d.Event, d.DecodeErr)
			}
		case "heartbeat":
			stop()
		}
		return nil
	}
	opts := consumer.Options{Logger: slog.New(slog.DiscardHandler), Backoff: func(int) time.Duration { return time.Millisecond }}
	if err := consumer.ConsumeJetStream(cctx, js, consumer.JetStreamConfig{Durable: "contract"}, h, opts); err != nil {
		t.Fatal(err)
	}
	want := []string{"site/q/2 presence", "site/q/3 reaction", "site/q/4 heartbeat"}
	if len(seen) != len(want) {
		t.Fatalf("handler saw %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Errorf("handler saw %v, want %v", seen, want)
		}
	}
	c, err := js.Consumer(ctx, "ZULIP", "contract")
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 || info.NumRedelivered != 0 || info.AckFloor.Stream != 4 {
		t.Errorf("consumer %+v: want everything acknowledged once", info)
	}
}

func TestDefaultBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{5, 800 * time.Millisecond, 1600 * time.Millisecond},
		{20, 15 * time.Second, 30 * time.Second},
		{1000, 15 * time.Second, 30 * time.Second},
	} {
		for range 20 {
			if d := consumer.DefaultBackoff(tc.attempt); d < tc.min || d > tc.max {
				t.Errorf("DefaultBackoff(%d) = %v, want in [%v, %v]", tc.attempt, d, tc.min, tc.max)
			}
		}
	}
}

func TestJetStreamConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  consumer.JetStreamConfig
		want []string // substrings of the error; none: valid
	}{
		{consumer.JetStreamConfig{Durable: "svc"}, nil},
		{consumer.JetStreamConfig{Durable: "svc", MaxDeliver: -1, FilterSubjects: []string{"zulip.message.>", "zulip.bridge.>"}}, nil},
		{consumer.JetStreamConfig{}, []string{"Durable is required"}},
		{consumer.JetStreamConfig{AckWait: -1, MaxAckPending: -2, MaxDeliver: -3, FilterSubjects: []string{"a b"}},
			[]string{"Durable", "AckWait", "MaxAckPending", "MaxDeliver", `"a b"`}},
	} {
		err := tc.cfg.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%+v: %v", tc.cfg, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%+v: valid, want %v", tc.cfg, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: %v, want it to mention %s", tc.cfg, err, w)
			}
		}
	}
}

// TestKafkaHandlerContract is TestJetStreamHandlerContract's Kafka half: a
// record that is no event is skipped and committed; a handler that commits
// and then fails does not get the record again; a handler that fails is
// handed the record again before the next one.
func TestKafkaHandlerContract(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "zulip.x"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...)}
	var records []kafka.Message
	for i, payload := range []string{
		`nope`,
		`{"type":"presence","id":2,"user_id":10}`,
		`{"type":"typing","op":"start","id":3,"sender":{"user_id":10,"email":"a@b"}}`,
		`{"type":"heartbeat","id":4}`,
	} {
		records = append(records, kafka.Message{Topic: "zulip.x", Value: []byte(payload),
			Headers: []kafka.Header{{Key: consumer.HeaderDedupKey, Value: []byte("site/q/" + string(rune('1'+i)))}}})
	}
	if err := w.WriteMessages(ctx, records...); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()

	var seen []string
	typingFailed := false
	cctx, stop := context.WithCancel(ctx)
	defer stop()
	h := func(ctx context.Context, d *consumer.Delivery) error {
		seen = append(seen, fmt.Sprintf("%s %s #%d", d.Meta.DedupKey, d.Event.EventType(), d.Meta.Attempt))
		switch d.Event.EventType() {
		case "presence":
			if err := d.Ack(ctx); err != nil {
				t.Errorf("Ack: %v", err)
			}
			return errors.New("fails after its own Ack")
		case "typing":
			if !typingFailed {
				typingFailed = true
				return errors.New("fails once")
			}
		case "heartbeat":
			stop()
		}
		return nil
	}
	opts := consumer.Options{Logger: slog.New(slog.DiscardHandler), Backoff: func(int) time.Duration { return time.Millisecond }}
	rc := kafka.ReaderConfig{Brokers: c.ListenAddrs(), GroupID: "contract", GroupTopics: []string{"zulip.x"}, MaxWait: 50 * time.Millisecond}
	if err := consumer.ConsumeKafka(cctx, rc, h, opts); err != nil {
		t.Fatal(err)
	}
	want := []string{"site/q/2 presence #1", "site/q/3 typing #1", "site/q/3 typing #2", "site/q/4 heartbeat #1"}
	if strings.Join(seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("handler saw\n%s\nwant\n%s", strings.Join(seen, "\n"), strings.Join(want, "\n"))
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}).OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: "contract", Topics: map[string][]int{"zulip.x": {0}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Topics["zulip.x"]; len(got) != 1 || got[0].CommittedOffset != 4 {
		t.Errorf("committed %+v, want offset 4 (everything)", got)
	}
}
