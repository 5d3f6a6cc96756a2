package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// asBridgeEnv makes the test binary run as the bridge binary: the
// subprocess tests start os.Args[0] with it, so that they exercise the real
// main, signals and exit codes without a separate build step.
const asBridgeEnv = "ZULIP_BRIDGE_TEST_RUN_AS_BRIDGE"

func TestMain(m *testing.M) {
	if os.Getenv(asBridgeEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// testAPIKey is the simulator bot's key in these tests: distinctive, so
// that a test can search every output for it.
const testAPIKey = "SecretKeyMustNeverBeSeen0000001"

var testBot = zuliptest.Bot{Email: "bridge-bot@zulip.example.com", APIKey: testAPIKey}

// world is one end-to-end setup: a simulator, a state dir, and the
// environment that points a bridge at them.
type world struct {
	t    *testing.T
	sim  *zuliptest.Server
	dir  string
	env  []string
	site string
	outs []*testutil.SyncBuffer // every bridge's output, searched for the API key
}

func newWorld(t *testing.T, simCfg zuliptest.Config) *world {
	t.Helper()
	simCfg.Bots = []zuliptest.Bot{testBot}
	sim, err := zuliptest.New(simCfg)
	if err != nil {
		t.Fatal(err)
	}
	sim.Start()
	t.Cleanup(sim.Close)
	w := &world{t: t, sim: sim, dir: t.TempDir(), site: sim.URL}
	w.env = []string{
		"ZULIP_SITE=" + sim.URL,
		"ZULIP_EMAIL=" + testBot.Email,
		"ZULIP_API_KEY=" + testBot.APIKey,
		"BRIDGE_EVENT_TYPES=*",
		"BRIDGE_STATE_DIR=" + w.dir,
		"BRIDGE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_LOG_FORMAT=text",
		"BRIDGE_LOG_LEVEL=info",
		"BRIDGE_ZULIP_RETRY_BASE=10ms",
		"BRIDGE_ZULIP_RETRY_MAX=200ms",
	}
	t.Cleanup(func() {
		for i, out := range w.outs {
			if s := out.String(); strings.Contains(s, testAPIKey) {
				t.Errorf("bridge run %d printed the API key", i)
			}
		}
	})
	return w
}

// bridgeProc is one bridge process.
type bridgeProc struct {
	cmd  *exec.Cmd
	out  *testutil.SyncBuffer
	done chan struct{}
}

// start starts a bridge with the world's environment plus extra.
func (w *world) start(extra ...string) *bridgeProc {
	w.t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append([]string{
		asBridgeEnv + "=1",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + w.t.TempDir(), // never the developer's ~/.zuliprc
		"TMPDIR=" + os.TempDir(),
	}, append(append([]string(nil), w.env...), extra...)...)
	out := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &bridgeProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	w.outs = append(w.outs, out)
	w.t.Cleanup(func() { p.kill() })
	return p
}

// kill ends the process with SIGKILL, as a crash would.
func (p *bridgeProc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop sends sig and returns the exit code, failing after timeout.
func (p *bridgeProc) stop(t testing.TB, sig syscall.Signal, timeout time.Duration) int {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		t.Fatalf("bridge did not exit within %s of %v; output:\n%s", timeout, sig, tail(p.out.String()))
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *bridgeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// queueID waits for the simulator to have exactly one live queue and
// returns it.
func (w *world) queueID(timeout time.Duration) string {
	w.t.Helper()
	var id string
	testutil.WaitFor(w.t, timeout, "a registered queue", func() bool {
		qs := w.sim.Queues()
		if len(qs) == 1 {
			id = qs[0].ID
		}
		return id != ""
	})
	return id
}

// caughtUp waits until the queue has acknowledged every event up to id.
func (w *world) caughtUp(queueID string, id int64, timeout time.Duration, p *bridgeProc) {
	w.t.Helper()
	deadline := time.Now().Add(timeout)
	for w.sim.Acked(queueID) < id {
		if p != nil && p.exited() {
			w.t.Fatalf("bridge exited (code %d) before acknowledging event %d; output:\n%s", p.cmd.ProcessState.ExitCode(), id, tail(p.out.String()))
		}
		if time.Now().After(deadline) {
			out := ""
			if p != nil {
				out = tail(p.out.String())
			}
			w.t.Fatalf("queue %s acknowledged %d, want %d within %s; output:\n%s", queueID, w.sim.Acked(queueID), id, timeout, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lastEventID is the highest event id the simulator assigned on the queue.
func (w *world) lastEventID(queueID string) int64 {
	h, ok := w.sim.History(queueID)
	if !ok {
		w.t.Fatalf("no queue %s", queueID)
	}
	return h.Info.LastEventID
}

// expected returns, by dedup key, the payload of every event the queues
// delivered that the bridge must publish (all but heartbeats).
func (w *world) expected(queueIDs ...string) map[string][]byte {
	w.t.Helper()
	site, err := source.ParseSite(w.site)
	if err != nil {
		w.t.Fatal(err)
	}
	m, err := mapping.New(mapping.Config{}, site)
	if err != nil {
		w.t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, q := range queueIDs {
		for _, ev := range w.sim.Delivered(q) {
			if ev.Type == "heartbeat" {
				continue
			}
			msg, err := m.Map(ev.Raw, q)
			if err != nil {
				w.t.Fatalf("map delivered event %d: %v", ev.ID, err)
			}
			want[msg.DedupKey] = ev.Raw
		}
	}
	return want
}

// stored is a message as a consumer reads it back from a broker.
type stored struct {
	subject string // NATS subject or Kafka topic
	key     string // Kafka key
	headers map[string]string
	data    []byte
	// unordered marks a Kafka record without a key: the Hash balancer
	// spreads those over partitions, so they are in no order scope
	// (docs/names.md: order is kept per key).
	unordered bool
}

// checkExactlyOnce compares what the broker holds with what the queues
// delivered: each event once, byte for byte, nothing else but control
// events, and per subject (or key) in event id order.
func checkExactlyOnce(t testing.TB, got []stored, want map[string][]byte) {
	t.Helper()
	seen := map[string]int{}
	lastID := map[string]int64{}
	for _, m := range got {
		key := m.headers[mapping.HeaderDedupKey]
		if m.headers[mapping.HeaderEventType] == "bridge" {
			continue
		}
		payload, ok := want[key]
		if !ok {
			t.Errorf("stored %q (%s) was never delivered", key, m.subject)
			continue
		}
		if seen[key]++; seen[key] == 2 {
			t.Errorf("event %q stored more than once", key)
		}
		if !bytes.Equal(payload, m.data) {
			t.Errorf("event %q payload differs:\n got %s\nwant %s", key, m.data, payload)
		}
		if id, err := strconv.ParseInt(m.headers[mapping.HeaderEventID], 10, 64); err == nil && !m.unordered {
			// Event ids are per queue: a new queue starts them over.
			scope := m.subject + "\x00" + m.key + "\x00" + m.headers[mapping.HeaderQueueID]
			if prev, ok := lastID[scope]; ok && id <= prev {
				t.Errorf("%s: event %d stored after event %d", m.subject, id, prev)
			}
			lastID[scope] = id
		}
	}
	missing := 0
	for key := range want {
		if seen[key] == 0 {
			if missing++; missing <= 10 {
				t.Errorf("event %q delivered but never stored", key)
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d delivered events missing", missing, len(want))
	}
}

// readStream reads every message of the stream with a plain nats.go
// ordered consumer, as a downstream service would.
func readStream(t testing.TB, url, stream string) []stored {
	t.Helper()
	var out []stored
	for _, m := range testutil.ReadStream(t, url, stream) {
		h := map[string]string{}
		for k, v := range m.Headers {
			h[k] = v[0]
		}
		out = append(out, stored{subject: m.Subject, headers: h, data: m.Data})
	}
	return out
}

// kafkaBroker is a kfake cluster in the test process.
type kafkaBroker struct {
	c *kfake.Cluster
}

func newKafka(t testing.TB) *kafkaBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &kafkaBroker{c: c}
}

func (k *kafkaBroker) brokers() string { return strings.Join(k.c.ListenAddrs(), ",") }

// readTopics reads every record of every topic with the prefix, with plain
// kafka-go readers, partition by partition in offset order.
func readTopics(t testing.TB, k *kafkaBroker, prefix string) []stored {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", k.c.ListenAddrs()[0])
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
	var out []stored
	for _, p := range parts {
		if !strings.HasPrefix(p.Topic, prefix) {
			continue
		}
		leader, err := kafka.DialLeader(ctx, "tcp", k.c.ListenAddrs()[0], p.Topic, p.ID)
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
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.c.ListenAddrs(), Topic: p.Topic, Partition: p.ID, MaxWait: 100 * time.Millisecond})
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
			for _, x := range m.Headers {
				h[x.Key] = string(x.Value)
			}
			// The partition is part of the ordering scope.
			out = append(out, stored{subject: fmt.Sprintf("%s/%d", m.Topic, m.Partition), key: string(m.Key), headers: h, data: m.Value, unordered: len(m.Key) == 0})
			if m.Offset+1 >= last {
				break
			}
		}
		r.Close()
	}
	return out
}

// readCheckpoint reads the file store's checkpoint, as an operator would.
func readCheckpoint(t testing.TB, dir string) checkpoint.Checkpoint {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, checkpoint.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := checkpoint.DecodeFile(b)
	if err != nil {
		t.Fatalf("%s: %v", checkpoint.FileName, err)
	}
	return cp
}

// httpAddrRE finds the bridge's HTTP address in its start-up log line.
var httpAddrRE = regexp.MustCompile(`msg="serving health, readiness and metrics" addr=(\S+)`)

// httpAddr waits for the bridge to log its HTTP address and returns it.
func (p *bridgeProc) httpAddr(t testing.TB) string {
	t.Helper()
	var addr string
	testutil.WaitFor(t, 30*time.Second, "the bridge's HTTP address in its log", func() bool {
		if m := httpAddrRE.FindStringSubmatch(p.out.String()); m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	return addr
}

// httpGet GETs path on the bridge's HTTP address and returns the status
// and the body.
func (p *bridgeProc) httpGet(t testing.TB, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + p.httpAddr(t) + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
