package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	natssink "github.com/zulip-bridge/zulip-bridge/sink/nats"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// waitLimit bounds every wait of these tests in real time; nothing comes
// close to it.
const waitLimit = 30 * time.Second

// published is one message as the broker stores it.
type published struct {
	subject   string // NATS
	seq       uint64 // JetStream
	topic     string // Kafka
	partition int
	offset    int64
	key       string
	headers   map[string]string
	payload   []byte
}

func (p published) dedupKey() string { return p.headers[mapping.HeaderDedupKey] }

// mixedRun is what one end-to-end run of the real pipeline left in the
// broker: the simulator's mixed traffic on one queue, that queue lost
// (expired), a new one, more traffic, and the control events of it all.
type mixedRun struct {
	msgs       []published
	host       string // the site host of dedup keys
	oldQueue   string
	newQueue   string
	invalidKey string  // dedup key of the event published as bridge.invalid
	backfilled []int64 // ids of the messages sent while the queue was lost
}

// registerGate holds POST /register back while a test sends messages.
type registerGate struct {
	mu   sync.Mutex
	gate chan struct{} // while non-nil, registrations wait for it to close
	held chan struct{} // receives when a registration is held
}

// hold makes the next registrations wait until the returned release.
func (g *registerGate) hold() (release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch := make(chan struct{})
	g.gate = ch
	return func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.gate = nil
		close(ch)
	}
}

func (g *registerGate) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/register") {
			g.mu.Lock()
			gate := g.gate
			g.mu.Unlock()
			if gate != nil {
				select {
				case g.held <- struct{}{}:
				default:
				}
				select {
				case <-gate:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				}
			}
		}
		return next.RoundTrip(req)
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// bridgeWorld is one simulator on a fake clock (no heartbeats, no expiry
// but the test's) and one state directory.
type bridgeWorld struct {
	t        *testing.T
	ctx      context.Context
	simClock *clockwork.FakeClock
	sim      *zuliptest.Server
	logs     *testutil.SyncBuffer
}

func newBridgeWorld(t *testing.T) *bridgeWorld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	t.Cleanup(cancel)
	w := &bridgeWorld{t: t, ctx: ctx, logs: &testutil.SyncBuffer{}}
	w.simClock = clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	w.sim = zuliptest.NewServer(zuliptest.Config{Clock: w.simClock})
	t.Cleanup(w.sim.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", w.logs.Tail(100))
		}
	})
	return w
}

// runMixed runs the bridge (pipeline.New, as cmd/bridge wires it) from
// the simulator into the sink newSink makes, through a queue loss, and
// returns once everything it published is confirmed, with what the
// broker holds (read by readAll).
func (w *bridgeWorld) runMixed(newSink func(prefix string, log *slog.Logger) sink.Sink, readAll func() []published) *mixedRun {
	t := w.t
	t.Helper()
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := &registerGate{held: make(chan struct{}, 1)}
	client, err := source.NewClient(source.Config{
		Site: w.sim.URL, Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey, EventTypes: []string{"*"},
	}, source.WithLogger(log.With("component", "zulip")), source.WithBackoff(func(int) time.Duration { return time.Millisecond }),
		source.WithTransportWrapper(reg.wrap))
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := mapping.New(mapping.Config{}, client.Site())
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(mapper.Prefix(), log)
	store, err := checkpoint.OpenFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	maxBytes := 0
	if l, ok := s.(sink.Limiter); ok {
		maxBytes = l.MaxMessageBytes()
	}
	p, err := pipeline.New(pipeline.Config{PublishInitialState: true}, pipeline.Deps{
		Site: client.Site(), Client: client, Mapper: mapper, Sink: s, Store: store, Logger: log,
		Backoff: func(int) time.Duration { return 5 * time.Millisecond }, MaxMessageBytes: maxBytes,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("bridge Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Fatalf("bridge did not stop within %s", waitLimit)
		}
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = s.Close(cctx)
		_ = store.Close()
	}
	t.Cleanup(stop)

	queueID := func(not string) string {
		var id string
		testutil.WaitFor(t, waitLimit, "a registered queue other than "+not, func() bool {
			st := p.Status().Snapshot()
			id = st.QueueID
			return st.Registered && id != "" && id != not
		})
		return id
	}
	waitAcked := func(q string) {
		testutil.WaitFor(t, waitLimit, "queue "+q+" acknowledged to its last event", func() bool {
			h, ok := w.sim.History(q)
			return ok && h.Acked >= h.Info.LastEventID
		})
	}

	run := &mixedRun{host: mapper.Site()}
	run.oldQueue = queueID("")
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: 17})
	if err != nil {
		t.Fatal(err)
	}
	step := func(n int) {
		for range n {
			if _, err := gen.Step(); err != nil {
				t.Fatal(err)
			}
		}
	}
	step(90)
	// One event the bridge cannot map: published as bridge.invalid.
	ids := w.inject(`{"type":"not a type!","detail":1}`)
	run.invalidKey = fmt.Sprintf("%s/%s/%d", run.host, run.oldQueue, ids[run.oldQueue])
	dm, err := w.sim.SendMessage(zuliptest.SendRequest{Type: "private", To: zuliptest.DefaultBot.Email, Content: "a direct message"})
	if err != nil {
		t.Fatal(err)
	}
	// The one typed kind the generator's mix makes rarely.
	w.inject(fmt.Sprintf(`{"type":"submessage","msg_type":"widget","content":"{\"type\":\"vote\",\"key\":\"58,1\",\"vote\":1}","message_id":%d,"sender_id":10,"submessage_id":1}`, dm))
	step(30)
	waitAcked(run.oldQueue)

	// The queue expires under the running bridge (its long-poll waiting),
	// and messages are sent while it registers a new one (held back): a
	// new queue, those messages backfilled, a bridge.resync and a second
	// bridge.state.
	release := reg.hold()
	if err := w.simClock.BlockUntilContext(w.ctx, 1); err != nil {
		t.Fatalf("no long-poll waiting: %v", err)
	}
	if !w.sim.ExpireQueue(run.oldQueue) {
		t.Fatalf("queue %s did not exist", run.oldQueue)
	}
	select {
	case <-reg.held:
	case <-time.After(waitLimit):
		t.Fatalf("no registration within %s", waitLimit)
	}
	for i := range 4 {
		id, err := w.sim.SendMessage(zuliptest.SendRequest{To: "Denmark", Topic: "while the queue was lost", Content: fmt.Sprint("missed ", i)})
		if err != nil {
			t.Fatal(err)
		}
		run.backfilled = append(run.backfilled, id)
	}
	release()
	run.newQueue = queueID(run.oldQueue)
	step(60)
	waitAcked(run.newQueue)
	stop()
	run.msgs = readAll()
	return run
}

func (w *bridgeWorld) inject(raw string) map[string]int64 {
	w.t.Helper()
	ids, err := w.sim.InjectEvent(json.RawMessage(raw))
	if err != nil {
		w.t.Fatal(err)
	}
	return ids
}

// natsBroker is an embedded nats-server with JetStream.
type natsBroker struct {
	*testutil.NATS
	t *testing.T
}

func newNATSBroker(t *testing.T) *natsBroker {
	t.Helper()
	return &natsBroker{NATS: testutil.StartNATS(t), t: t}
}

func (b *natsBroker) sink(prefix string, log *slog.Logger) sink.Sink {
	b.t.Helper()
	cfg := natssink.Config{SubjectPrefix: prefix}
	cfg.URL = b.URL()
	cfg.Stream = "ZULIP"
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := natssink.New(ctx, cfg, natssink.WithLogger(log.With("component", "nats")))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

func (b *natsBroker) readAll() []published {
	var out []published
	for _, m := range testutil.ReadStream(b.t, b.URL(), "ZULIP") {
		h := map[string]string{}
		for k, v := range m.Headers {
			h[k] = v[0]
		}
		out = append(out, published{subject: m.Subject, seq: m.Seq, headers: h, payload: m.Data})
	}
	return out
}

// kafkaBroker is a kfake cluster.
type kafkaBroker struct {
	t *testing.T
	c *kfake.Cluster
}

func newKafkaBroker(t *testing.T) *kafkaBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &kafkaBroker{t: t, c: c}
}

func (k *kafkaBroker) brokers() []string { return k.c.ListenAddrs() }

func (k *kafkaBroker) sink(_ string, log *slog.Logger) sink.Sink {
	k.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := kafkasink.New(ctx, kafkasink.Config{
		Brokers: k.brokers(), CreateTopics: true, Partitions: 3,
		WriteTimeout: 5 * time.Second, DialTimeout: 2 * time.Second,
	}, kafkasink.WithLogger(log.With("component", "kafka")))
	if err != nil {
		k.t.Fatal(err)
	}
	return s
}

// readAll reads every record of the zulip.* topics, partition by
// partition in offset order.
func (k *kafkaBroker) readAll() []published {
	t := k.t
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", k.brokers()[0])
	if err != nil {
		t.Fatal(err)
	}
	parts, err := conn.ReadPartitions()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].ID < parts[j].ID
	})
	var out []published
	for _, p := range parts {
		if !strings.HasPrefix(p.Topic, "zulip.") {
			continue
		}
		leader, err := kafka.DialLeader(ctx, "tcp", k.brokers()[0], p.Topic, p.ID)
		if err != nil {
			t.Fatal(err)
		}
		first, last, err := leader.ReadOffsets()
		leader.Close()
		if err != nil {
			t.Fatal(err)
		}
		if last <= first {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.brokers(), Topic: p.Topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
		if err := r.SetOffset(first); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", p.Topic, p.ID, err)
			}
			h := map[string]string{}
			for _, hd := range m.Headers {
				h[hd.Key] = string(hd.Value)
			}
			out = append(out, published{topic: m.Topic, partition: m.Partition, offset: m.Offset, key: string(m.Key), headers: h, payload: m.Value})
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return out
}

// topics are the distinct Kafka topics of msgs.
func topics(msgs []published) []string {
	set := map[string]bool{}
	for _, m := range msgs {
		set[m.topic] = true
	}
	var out []string
	for tp := range set {
		out = append(out, tp)
	}
	sort.Strings(out)
	return out
}
