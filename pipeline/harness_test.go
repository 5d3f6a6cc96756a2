package pipeline_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nats-io/nats.go"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/sink"
	natssink "github.com/zulip-bridge/zulip-bridge/sink/nats"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// waitLimit bounds every wait of a test in real time; nothing should come
// close to it.
const waitLimit = 30 * time.Second

// streamName is the JetStream stream the tests publish into.
const streamName = "ZULIP"

// world is one Zulip simulator, one NATS server with JetStream that can be
// stopped and started again on the same port with its data, and one state
// directory for the file checkpoint: what successive bridges share.
type world struct {
	t        *testing.T
	ctx      context.Context
	simClock *clockwork.FakeClock
	sim      *zuliptest.Server
	host     string // the site host the mapper puts in dedup keys
	nats     *broker
	stateDir string
	logs     *testutil.SyncBuffer
	// initialMaxMessageID is the highest message id before any bridge ran:
	// messages up to it are not the bridge's to deliver.
	initialMaxMessageID int64
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	t.Cleanup(cancel)
	w := &world{t: t, ctx: ctx, stateDir: t.TempDir(), logs: &testutil.SyncBuffer{}}
	// The simulator runs on a fake clock that only the tests move, so that
	// heartbeats and queue expiry happen exactly when a test says.
	w.simClock = clockwork.NewFakeClockAt(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	w.sim = zuliptest.NewServer(zuliptest.Config{Clock: w.simClock})
	t.Cleanup(w.sim.Close)
	site, err := source.ParseSite(w.sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := mapping.New(mapping.Config{}, site)
	if err != nil {
		t.Fatal(err)
	}
	w.host = m.Site()
	for _, msg := range w.sim.Messages() {
		w.initialMaxMessageID = max(w.initialMaxMessageID, msg.ID)
	}
	w.nats = newBroker(t)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge logs:\n%s", w.logs.Tail(200))
		}
	})
	return w
}

// options shape one bridge.
type options struct {
	cfg     pipeline.Config
	mapping mapping.Config
	// clock is the pipeline's clock (publish backoff, shutdown timeout,
	// progress); nil means the real one.
	clock clockwork.Clock
	// publish wraps the sink's Publish; nil passes through.
	publish publishHook
	// transport sees every Zulip request; nil passes through.
	transport *gate
	// eventTypes to register for; nil means all.
	eventTypes []string
	// maxBytes is Deps.MaxMessageBytes; 0 means the sink's own limit.
	maxBytes int
	// site is ZULIP_SITE; empty means the simulator's URL as it gives it.
	site string
	// maxResponse is BRIDGE_ZULIP_MAX_RESPONSE_BYTES; 0 means the default.
	maxResponse int64
	// spool puts a spool (in the world's state directory) between Zulip
	// and the broker; spoolMax is its size limit (0: the default).
	spool    bool
	spoolMax int64
	// forwarded is Deps.Forwarded.
	forwarded json.RawMessage
}

type publishHook func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error

// bridge is one pipeline running against the world, as one bridge process
// would: its own client, sink connection and checkpoint store.
type bridge struct {
	t      *testing.T
	p      *pipeline.Pipeline
	obs    *counters
	sink   sink.Sink
	store  *checkpoint.FileStore
	spool  *spool.Spool // nil without one
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	once   sync.Once
}

// start builds a bridge and runs it in the background.
func (w *world) start(o options) *bridge {
	w.t.Helper()
	b := w.build(o)
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() {
		defer close(b.done)
		b.err = b.p.Run(ctx)
	}()
	return b
}

func (w *world) build(o options) *bridge {
	w.t.Helper()
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	types := o.eventTypes
	if types == nil {
		types = []string{"*"}
	}
	copts := []source.Option{
		source.WithLogger(log.With("component", "zulip")),
		// Zulip retries are not what these tests are about: retry at once.
		source.WithBackoff(func(int) time.Duration { return time.Millisecond }),
	}
	if o.transport != nil {
		copts = append(copts, source.WithTransportWrapper(o.transport.wrap))
	}
	client, err := source.NewClient(source.Config{
		Site: cmp.Or(o.site, w.sim.URL), Email: zuliptest.DefaultBot.Email, APIKey: zuliptest.DefaultBot.APIKey, EventTypes: types,
		MaxResponseBytes: o.maxResponse,
	}, copts...)
	if err != nil {
		w.t.Fatal(err)
	}
	mapper, err := mapping.New(o.mapping, client.Site())
	if err != nil {
		w.t.Fatal(err)
	}
	s := w.nats.sink(mapper.Prefix(), log)
	store, err := checkpoint.OpenFile(w.stateDir)
	if err != nil {
		_ = s.Close(context.Background())
		w.t.Fatal(err)
	}
	b := &bridge{t: w.t, obs: &counters{}, sink: s, store: store, done: make(chan struct{})}
	var ps sink.Sink = s
	if o.publish != nil {
		ps = &hookSink{Sink: s, rec: s.(sink.Recoverer), hook: o.publish}
	}
	if o.spool {
		if b.spool, err = spool.Open(w.stateDir, spool.Options{MaxBytes: o.spoolMax, Site: client.Site().String()}); err != nil {
			w.t.Fatal(err)
		}
	}
	b.p, err = pipeline.New(o.cfg, pipeline.Deps{
		Site: client.Site(), Client: client, Mapper: mapper, Sink: ps, Store: store, Spool: b.spool, Forwarded: o.forwarded,
		Logger: log, Clock: o.clock, Observer: b.obs.observer(),
		// Publish retries every 5ms: a broker outage in these tests lasts
		// a few hundred milliseconds.
		Backoff:         func(int) time.Duration { return 5 * time.Millisecond },
		MaxMessageBytes: cmp.Or(o.maxBytes, s.(sink.Limiter).MaxMessageBytes()),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = b.stop() })
	return b
}

// stop cancels Run (the graceful stop of docs/operations.md), waits for it and
// releases what the bridge held. It returns Run's error.
func (b *bridge) stop() error {
	b.t.Helper()
	if b.cancel != nil {
		b.cancel()
	}
	return b.wait()
}

// wait waits until Run returns by itself and releases what the bridge held.
func (b *bridge) wait() error {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(waitLimit):
		b.t.Fatalf("Run did not return within %s", waitLimit)
	}
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.sink.Close(ctx); err != nil && !errors.Is(err, natssink.ErrClosed) {
			b.t.Errorf("close sink: %v", err)
		}
		if err := b.store.Close(); err != nil {
			b.t.Errorf("close checkpoint store: %v", err)
		}
		if b.spool != nil {
			if err := b.spool.Close(ctx); err != nil {
				b.t.Errorf("close spool: %v", err)
			}
		}
	})
	return b.err
}

// returned reports whether Run has returned.
func (b *bridge) returned() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// queueID waits until the bridge polls a registered queue and returns it.
func (b *bridge) queueID() string {
	b.t.Helper()
	var id string
	testutil.WaitFor(b.t, waitLimit, "a registered queue", func() bool {
		s := b.p.Status().Snapshot()
		id = s.QueueID
		return s.Registered && id != ""
	})
	return id
}

// counters count what the pipeline reports to its Observer.
type counters struct {
	publishes, publishFailures, duplicates, registrations, backfilled atomic.Int64

	mu            sync.Mutex
	backfillCalls []int // n of each OnBackfilled
}

func (c *counters) observer() pipeline.Observer {
	return pipeline.Observer{
		OnPublished: func(_ []*mapping.Message, err error, _ time.Duration) {
			c.publishes.Add(1)
			if err != nil {
				c.publishFailures.Add(1)
			}
		},
		OnSkipped: func(_, reason string) {
			if reason == "duplicate" {
				c.duplicates.Add(1)
			}
		},
		OnRegistered: func(bool) { c.registrations.Add(1) },
		OnBackfilled: func(n int) {
			c.backfilled.Add(int64(n))
			c.mu.Lock()
			c.backfillCalls = append(c.backfillCalls, n)
			c.mu.Unlock()
		},
	}
}

// hookSink lets a test intercept Publish of the real sink, e.g. to block
// it, while reads back and positions go to the real sink.
type hookSink struct {
	sink.Sink
	rec  sink.Recoverer
	hook publishHook
}

func (h *hookSink) Publish(ctx context.Context, msgs []*mapping.Message) error {
	return h.hook(ctx, msgs, h.Sink.Publish)
}

func (h *hookSink) Position(ctx context.Context) (json.RawMessage, error) {
	return h.rec.Position(ctx)
}

func (h *hookSink) PublishedSince(ctx context.Context, pos json.RawMessage) (map[string]struct{}, error) {
	return h.rec.PublishedSince(ctx, pos)
}

// gate sees the bridge's Zulip requests: it can hold POST /register until
// the test releases it, and records the register responses.
type gate struct {
	mu        sync.Mutex
	hold      chan struct{} // while non-nil, registrations wait for it to close
	held      chan struct{} // receives when a registration is held
	registers [][]byte      // bodies of the register responses, in order
}

func newGate() *gate { return &gate{held: make(chan struct{}, 16)} }

// holdRegistrations makes every later POST /register wait until release.
func (g *gate) holdRegistrations() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold = make(chan struct{})
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.hold != nil {
		close(g.hold)
		g.hold = nil
	}
}

// waitHeld waits until a registration is held.
func (g *gate) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-g.held:
	case <-time.After(waitLimit):
		t.Fatalf("no registration within %s", waitLimit)
	}
}

func (g *gate) registerBodies() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][]byte(nil), g.registers...)
}

func (g *gate) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		register := req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/register")
		if !register {
			return next.RoundTrip(req)
		}
		g.mu.Lock()
		hold := g.hold
		g.mu.Unlock()
		if hold != nil {
			g.held <- struct{}{}
			select {
			case <-hold:
			case <-req.Context().Done():
				return nil, req.Context().Err()
			}
		}
		resp, err := next.RoundTrip(req)
		if err != nil {
			return resp, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if resp.StatusCode == http.StatusOK {
			g.mu.Lock()
			g.registers = append(g.registers, body)
			g.mu.Unlock()
		}
		return resp, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// broker is a NATS server with JetStream in the test process that can be
// stopped and started again on the same port with its data.
// broker is the test's NATS server with JetStream, restartable on the
// same port with its data.
type broker struct {
	*testutil.NATS
	t *testing.T
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	return &broker{NATS: testutil.StartNATS(t), t: t}
}

// sink connects a JetStream sink. The stream's duplicate window is the
// shortest nats-server accepts, so that exactly-once across restarts
// rests on the pipeline's read-back, not on the window.
func (b *broker) sink(prefix string, log *slog.Logger) sink.Sink {
	b.t.Helper()
	cfg := natssink.Config{SubjectPrefix: prefix}
	cfg.URL = b.URL()
	cfg.Stream = streamName
	cfg.DuplicateWindow = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	s, err := natssink.New(ctx, cfg,
		natssink.WithLogger(log.With("component", "nats")),
		// Reconnect quickly once a stopped server is back.
		natssink.WithConnectOptions(nats.CustomReconnectDelay(func(int) time.Duration { return 20 * time.Millisecond })))
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// stored is a message as a consumer reads it back from the stream.
type stored struct {
	seq     uint64
	subject string
	headers nats.Header
	data    []byte
}

func (s stored) h(key string) string { return s.headers.Get(key) }

func (s stored) String() string {
	return fmt.Sprintf("#%d %s %s", s.seq, s.subject, s.h(mapping.HeaderDedupKey))
}

// readStream reads every message of the stream with an ordered consumer,
// as a downstream service would.
func (w *world) readStream() []stored {
	w.t.Helper()
	var out []stored
	for _, m := range testutil.ReadStream(w.t, w.nats.URL(), streamName) {
		out = append(out, stored{seq: m.Seq, subject: m.Subject, headers: m.Headers, data: m.Data})
	}
	return out
}

// waitAcked waits until the simulator saw every event of the queue
// acknowledged.
func (w *world) waitAcked(queueID string) {
	w.t.Helper()
	testutil.WaitFor(w.t, waitLimit, "queue "+queueID+" acknowledged to its last event", func() bool {
		h, ok := w.sim.History(queueID)
		return ok && h.Acked >= h.Info.LastEventID
	})
}

// heartbeat waits until a long-poll waits on the queue (the bridge has
// everything so far) and lets the heartbeat interval pass, then waits until
// the server added the heartbeat event (the fake clock runs it on its own
// goroutine, which a later event must not overtake).
func (w *world) heartbeat(queueID string) {
	w.t.Helper()
	if err := w.simClock.BlockUntilContext(w.ctx, 1); err != nil {
		w.t.Fatalf("no long-poll waiting: %v", err)
	}
	before := w.lastEventID(queueID)
	w.simClock.Advance(zuliptest.DefaultHeartbeatInterval)
	testutil.WaitFor(w.t, waitLimit, "a heartbeat", func() bool { return w.lastEventID(queueID) > before })
}

// lastEventID is the highest event id the live queue assigned.
func (w *world) lastEventID(queueID string) int64 {
	for _, q := range w.sim.Queues() {
		if q.ID == queueID {
			return q.LastEventID
		}
	}
	w.t.Fatalf("no live queue %s", queueID)
	return 0
}

// send sends n stream messages and returns their ids.
func (w *world) send(n int, topic string) []int64 {
	w.t.Helper()
	ids := make([]int64, 0, n)
	for i := range n {
		id, err := w.sim.SendMessage(zuliptest.SendRequest{To: "Denmark", Topic: topic, Content: fmt.Sprintf("%s %d", topic, i)})
		if err != nil {
			w.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// inject puts a non-message event into every live queue and returns the
// id each queue gave it.
func (w *world) inject(raw string) map[string]int64 {
	w.t.Helper()
	ids, err := w.sim.InjectEvent(json.RawMessage(raw))
	if err != nil {
		w.t.Fatal(err)
	}
	return ids
}

const (
	typingEvent   = `{"type":"typing","op":"start","message_type":"stream","stream_id":1,"topic":"lunch","sender":{"user_id":10,"email":"iago@zulip.example.com"}}`
	presenceEvent = `{"type":"presence","user_id":10,"email":"iago@zulip.example.com","server_timestamp":1700000000,"presence":{"website":{"client":"website","status":"active","timestamp":1700000000,"pushable":false}}}`
)
