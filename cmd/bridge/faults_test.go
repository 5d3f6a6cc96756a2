package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// Fault injection on the real binary: a TCP proxy (internal/faultproxy)
// sits between the bridge and Zulip, NATS or Kafka; each fault is switched
// on while events flow, kept on until the bridge has felt it past the
// timeout it defeats, and switched off. Then every event the queue
// delivered is in the broker exactly once, the queue was never lost, and
// a broker outage was logged once going down and once coming back.

// faultTimeouts make every fault outlast the bridge's timeouts within a
// second or two.
var faultTimeouts = []string{
	"BRIDGE_PUBLISH_TIMEOUT=1s",
	"BRIDGE_ZULIP_REQUEST_TIMEOUT=1s",
	"BRIDGE_ZULIP_LONGPOLL_TIMEOUT=2s",
}

// felt is what a fault case looks at to tell that the fault has done its
// harm: the bridge's log since the fault went on, the proxy's counters,
// and whether Zulip's queue has acknowledged every event injected so far.
type felt struct {
	log   string
	stats faultproxy.Stats
	acked bool
	// publishErrors is the bridge's zulip_bridge_publish_errors_total,
	// read once the log says the broker is down (0 before).
	publishErrors int
}

// faultCase is one fault and how to tell it was felt.
type faultCase struct {
	name   string
	faults faultproxy.Faults
	felt   func(f felt) bool
	// brokerOutage: the fault takes the broker away, so the log must say
	// "broker down" once and "broker up" once.
	brokerOutage bool
	// zulipLoggedOnce: the failing GETs of the outage must be logged
	// once, not once per attempt (TestFaultZulipLoggedOnce).
	zulipLoggedOnce bool
}

// faultSink is a broker for the fault tests: the bridge's environment
// for it, and what it holds (read past the proxy for NATS; through it,
// with the faults off, for Kafka, whose metadata names only the proxy).
type faultSink struct {
	env  []string
	read func() []stored
	// count is how many messages the broker holds (0 before the bridge
	// created anything), cheap enough to poll.
	count func() int64
}

// natsFaultSink is an external JetStream server, behind a proxy when
// proxied is true (else p is nil).
func natsFaultSink(t *testing.T, proxied bool) (faultSink, *faultproxy.Proxy) {
	nb := testutil.StartNATS(t)
	url := nb.URL()
	var p *faultproxy.Proxy
	if proxied {
		p = startProxy(t, strings.TrimPrefix(url, "nats://"))
		url = "nats://" + p.Addr()
	}
	nc, err := nats.Connect(nb.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return faultSink{
		env:  []string{"BRIDGE_SINK=nats", "BRIDGE_NATS_URL=" + url},
		read: func() []stored { return readStream(t, nb.URL(), "ZULIP") },
		count: func() int64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := js.Stream(ctx, "ZULIP")
			if err != nil {
				return 0 // not created yet
			}
			info, err := s.Info(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return int64(info.State.Msgs)
		},
	}, p
}

// kafkaFaultSink is a kfake broker whose listener is fronted by a proxy:
// kfake advertises its listener's address in its metadata, and the
// fronted listener reports the proxy's, so the bootstrap connection and
// every connection the metadata leads to go through the proxy. The read
// goes through it too, once the faults are off.
func kafkaFaultSink(t *testing.T) (faultSink, *faultproxy.Proxy) {
	var p *faultproxy.Proxy
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(3),
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			ln, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			fp, fl, err := faultproxy.Front(ln)
			if err != nil {
				ln.Close()
				return nil, err
			}
			p = fp
			return fl, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	kb := &kafkaBroker{c: c}
	if addrs := c.ListenAddrs(); len(addrs) != 1 || addrs[0] != p.Addr() {
		t.Fatalf("kfake advertises %v, want the proxy %s", addrs, p.Addr())
	}
	return faultSink{
		env: []string{
			"BRIDGE_SINK=kafka",
			"BRIDGE_KAFKA_BROKERS=" + kb.brokers(),
			"BRIDGE_KAFKA_CREATE_TOPICS=true",
			"BRIDGE_KAFKA_WRITE_TIMEOUT=1s",
			"BRIDGE_KAFKA_DIAL_TIMEOUT=1s",
		},
		read:  func() []stored { return readKafka(t, p.Addr(), "zulip.", kafkaCount(t, p.Addr(), "zulip.")) },
		count: func() int64 { return kafkaCount(t, p.Addr(), "zulip.") },
	}, p
}

// readKafka reads the total records of the topics with the prefix with
// one franz-go consumer, each partition in offset order: what readTopics
// returns, in a fraction of its time (it opens a connection and a reader
// per partition, and the bridge creates a topic per event type).
func readKafka(t *testing.T, addr, prefix string, total int64) []stored {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeRegex(), kgo.ConsumeTopics("^"+regexp.QuoteMeta(prefix)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []stored
	for int64(len(out)) < total {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records: %v", len(out), total, ctx.Err())
		}
		fs.EachError(func(topic string, partition int32, err error) {
			t.Fatalf("read %s/%d: %v", topic, partition, err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			// The partition is part of the ordering scope, as in readTopics.
			out = append(out, stored{subject: fmt.Sprintf("%s/%d", r.Topic, r.Partition), key: string(r.Key), headers: h, data: r.Value, unordered: len(r.Key) == 0})
		})
	}
	return out
}

// kafkaCount is the number of records in the topics with the prefix.
func kafkaCount(t *testing.T, addr, prefix string) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client := &kafka.Client{Addr: kafka.TCP(addr)}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, topic := range md.Topics {
		if !strings.HasPrefix(topic.Name, prefix) {
			continue
		}
		for _, part := range topic.Partitions {
			req.Topics[topic.Name] = append(req.Topics[topic.Name], kafka.FirstOffsetOf(part.ID), kafka.LastOffsetOf(part.ID))
		}
	}
	if len(req.Topics) == 0 {
		return 0
	}
	resp, err := client.ListOffsets(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for topic, parts := range resp.Topics {
		for _, po := range parts {
			if po.Error != nil {
				t.Fatalf("offsets of %s/%d: %v", topic, po.Partition, po.Error)
			}
			n += po.LastOffset - po.FirstOffset
		}
	}
	return n
}

func startProxy(t *testing.T, upstream string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.New(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// faultWorld is a world whose bridge reaches the simulator through a
// proxy: ZULIP_SITE names the proxy, and so do the dedup keys.
func faultWorld(t *testing.T) (*world, *faultproxy.Proxy) {
	w := newWorld(t, zuliptest.Config{HeartbeatInterval: 500 * time.Millisecond})
	p := startProxy(t, strings.TrimPrefix(w.sim.URL, "http://"))
	w.site = "http://" + p.Addr()
	w.env = append(w.env, "ZULIP_SITE="+w.site) // the last of a duplicate variable wins
	return w, p
}

// run starts a bridge on the sink s, injects mixed events before, during
// and after the fault of c on proxy, and checks the outcome against s.
func (c faultCase) run(t *testing.T, w *world, proxy *faultproxy.Proxy, s faultSink) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	gen, err := zuliptest.NewGenerator(w.sim, zuliptest.GeneratorConfig{Seed: rand.New(rand.NewPCG(seed, 3)).Uint64()})
	if err != nil {
		t.Fatal(err)
	}
	inject := func(n int) {
		t.Helper()
		for range n {
			if _, err := gen.Step(); err != nil {
				t.Fatal(err)
			}
		}
	}

	p := w.start(append(append([]string(nil), s.env...), faultTimeouts...)...)
	q := w.queueID(30 * time.Second)
	inject(50)
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	mark := len(p.out.String())
	since := func() string { return p.out.String()[mark:] }

	// The fault goes on while the bridge reads and publishes a burst,
	// and more events come while it is on.
	inject(100)
	proxy.Set(c.faults)
	inject(100)
	testutil.WaitFor(t, time.Minute, "the bridge to feel "+c.name, func() bool {
		if p.exited() {
			t.Fatalf("bridge exited (code %d) under %s:\n%s", p.cmd.ProcessState.ExitCode(), c.name, tail(p.out.String()))
		}
		f := felt{log: since(), stats: proxy.Stats(), acked: w.sim.Acked(q) >= w.lastEventID(q)}
		if brokerDown(f) {
			f.publishErrors = metricSum(t, p, "zulip_bridge_publish_errors_total")
		}
		return c.felt(f)
	})
	t.Logf("%s felt at %s: proxy %+v", c.name, time.Now().UTC().Format("15:04:05.000"), proxy.Stats())
	proxy.Set(faultproxy.Faults{})
	inject(50)
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	if c.brokerOutage {
		testutil.WaitFor(t, 30*time.Second, "the bridge to log that the broker is back", func() bool {
			return strings.Contains(since(), `msg="broker up`)
		})
	}
	// Zulip's acknowledgement need not mean the broker has it all (a
	// spool may hold the tail): wait for the broker to hold as many
	// messages as were delivered; checkExactlyOnce says which.
	want := w.expected(q)
	testutil.WaitFor(t, time.Minute, "the broker to hold every delivered event", func() bool {
		if p.exited() {
			t.Fatalf("bridge exited (code %d) after %s:\n%s", p.cmd.ProcessState.ExitCode(), c.name, tail(p.out.String()))
		}
		return s.count() >= int64(len(want))
	})
	t.Logf("the broker holds every delivered event at %s", time.Now().UTC().Format("15:04:05.000"))
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d after %s:\n%s", code, c.name, tail(p.out.String()))
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Errorf("queues after %s: %+v; want only %s (the fault must not lose the queue)", c.name, qs, q)
	}
	checkExactlyOnce(t, s.read(), want)

	out := since()
	if testing.Verbose() {
		t.Logf("the bridge's log from the fault on:\n%s", warnings(out))
	}
	switch {
	case c.brokerOutage:
		for _, msg := range []string{"broker down", "broker up"} {
			if n := strings.Count(out, `msg="`+msg); n != 1 {
				t.Errorf("%q logged %d times during %s, want once:\n%s", msg, n, c.name, warnings(out))
			}
		}
	case strings.Contains(out, `msg="broker down`):
		t.Errorf("a fault between the bridge and Zulip logged the broker down:\n%s", warnings(out))
	case c.zulipLoggedOnce:
		if n := strings.Count(out, `msg="`+zulipRetryWarning); n != 1 {
			t.Errorf("%q logged %d times during one outage of Zulip, want once:\n%s", zulipRetryWarning, n, warnings(out))
		}
		if n := strings.Count(out, `msg="zulip get events recovered"`); n != 1 {
			t.Errorf("the end of the outage of Zulip logged %d times, want once", n)
		}
	}
	for msg, n := range repeatedWarnings(out) {
		t.Errorf("warning %q logged %d times during %s, want once per outage", msg, n, c.name)
	}
}

// metricSum is the sum of the samples of the metric on the bridge's
// /metrics, over its labels.
func metricSum(t *testing.T, p *bridgeProc, name string) int {
	t.Helper()
	code, body := p.httpGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	sum := 0.0
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok && (strings.HasPrefix(rest, "{") || strings.HasPrefix(rest, " ")) {
			v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("/metrics line %q: %v", line, err)
			}
			sum += v
		}
	}
	return int(sum)
}

// zulipRetryWarning is what the source logs for each failed GET /events.
const zulipRetryWarning = "zulip get events failed, retrying"

var warnRE = regexp.MustCompile(`level=WARN msg="([^"]*)"`)

// repeatedWarnings returns the warning messages of out logged more than
// once, with their counts.
func repeatedWarnings(out string) map[string]int {
	counts := map[string]int{}
	for _, m := range warnRE.FindAllStringSubmatch(out, -1) {
		counts[m[1]]++
	}
	for msg, n := range counts {
		if n < 2 {
			delete(counts, msg)
		}
	}
	return counts
}

// warnings returns the warning and info lines of out, for a failure
// message.
func warnings(out string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=INFO") || strings.Contains(l, "level=ERROR") {
			lines = append(lines, l)
		}
	}
	return tail(strings.Join(lines, "\n"))
}

// zulipFailed: the bridge logged a failed GET /events since the fault.
func zulipFailed(f felt) bool { return strings.Contains(f.log, `msg="`+zulipRetryWarning) }

// brokerDown: the bridge logged that the broker is down since the fault.
func brokerDown(f felt) bool { return strings.Contains(f.log, `msg="broker down`) }

// brokerRetried: the broker is down and a publish failed. After a failed
// publish the bridge reads back what the broker stored before it sends
// anything again, and keeps trying that read-back while the fault lasts,
// so one publish error is the outage (the proxy's counters say the fault
// kept acting).
func brokerRetried(f felt) bool { return brokerDown(f) && f.publishErrors >= 1 }

// zulipFaults are the faults between the bridge and Zulip.
var zulipFaults = []faultCase{
	{name: "reset", faults: faultproxy.Faults{Reset: true},
		// Reconnections refused while the fault is on: the bridge retried.
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.Refused >= 3 }},
	{name: "cut mid-response", faults: faultproxy.Faults{CutAfter: 4096},
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.Cut >= 3 }},
	{name: "truncated body", faults: faultproxy.Faults{TruncateAfter: 4096},
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.Cut >= 3 }},
	{name: "stall past the long-poll timeout", faults: faultproxy.Faults{Stall: faultproxy.Both},
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.Held > 0 }},
	{name: "blackhole", faults: faultproxy.Faults{Blackhole: faultproxy.Both},
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.DroppedUp > 0 }},
	{name: "one-way blackhole", faults: faultproxy.Faults{Blackhole: faultproxy.Down},
		felt: func(f felt) bool { return zulipFailed(f) && f.stats.DroppedDown > 0 }},
	{name: "latency", faults: faultproxy.Faults{Latency: 20 * time.Millisecond},
		felt: func(f felt) bool { return f.acked }},
}

// brokerFaults are the faults between the bridge and its broker; each
// is kept on until the bridge says the broker is down (after
// BRIDGE_PUBLISH_TIMEOUT for those that fail nothing).
var brokerFaults = []faultCase{
	{name: "reset", faults: faultproxy.Faults{Reset: true}, brokerOutage: true,
		felt: func(f felt) bool { return brokerRetried(f) && f.stats.Refused >= 2 }},
	{name: "blackhole", faults: faultproxy.Faults{Blackhole: faultproxy.Both}, brokerOutage: true,
		felt: func(f felt) bool { return brokerRetried(f) && f.stats.DroppedUp > 0 }},
	// The broker stores every publish and every acknowledgement is lost.
	{name: "one-way blackhole", faults: faultproxy.Faults{Blackhole: faultproxy.Down}, brokerOutage: true,
		felt: func(f felt) bool { return brokerRetried(f) && f.stats.DroppedDown > 0 }},
	{name: "stall past the publish timeout", faults: faultproxy.Faults{Stall: faultproxy.Both}, brokerOutage: true,
		felt: func(f felt) bool { return brokerRetried(f) && f.stats.Held > 0 }},
	// The broker stores every publish; the acknowledgements come, late.
	{name: "one-way stall", faults: faultproxy.Faults{Stall: faultproxy.Down}, brokerOutage: true,
		felt: func(f felt) bool { return brokerRetried(f) && f.stats.Held > 0 }},
}

// TestFaultZulip puts each fault between the bridge and the Zulip
// simulator (the sink is JetStream, reached directly).
func TestFaultZulip(t *testing.T) {
	t.Parallel() // the three run side by side, each fault of one after the other
	for _, c := range zulipFaults {
		t.Run(c.name, func(t *testing.T) {
			w, p := faultWorld(t)
			s, _ := natsFaultSink(t, false)
			c.run(t, w, p, s)
		})
	}
}

// TestFaultNATS puts each fault between the bridge and an external
// JetStream server.
func TestFaultNATS(t *testing.T) {
	t.Parallel() // the three run side by side, each fault of one after the other
	for _, c := range brokerFaults {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, zuliptest.Config{HeartbeatInterval: 500 * time.Millisecond})
			s, p := natsFaultSink(t, true)
			c.run(t, w, p, s)
		})
	}
}

// TestFaultKafka puts each fault between the bridge and a Kafka broker,
// every connection of it (bootstrap and produce) through the proxy.
func TestFaultKafka(t *testing.T) {
	t.Parallel() // the three run side by side, each fault of one after the other
	for _, c := range brokerFaults {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, zuliptest.Config{HeartbeatInterval: 500 * time.Millisecond})
			s, p := kafkaFaultSink(t)
			c.run(t, w, p, s)
		})
	}
}

// TestFaultZulipLoggedOnce: an outage of Zulip (connections reset for
// several attempts) is logged once going down and once coming back, as a
// broker outage is.
func TestFaultZulipLoggedOnce(t *testing.T) {
	c := zulipFaults[0]
	c.zulipLoggedOnce = true
	w, p := faultWorld(t)
	s, _ := natsFaultSink(t, false)
	c.run(t, w, p, s)
}

// TestFaultNATSShortDuplicateWindow runs the one-way faults (the broker
// stores, the acknowledgements are lost or late) with the shortest
// duplicate window JetStream allows, shorter than the outage, as the
// crash tests do: exactly-once must then come from the read-back, not
// from JetStream's dedup. While the read-back cannot get an answer either,
// nothing is sent again (a resend past the window would be stored twice).
func TestFaultNATSShortDuplicateWindow(t *testing.T) {
	for _, c := range brokerFaults {
		if !strings.HasPrefix(c.name, "one-way") {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, zuliptest.Config{HeartbeatInterval: 500 * time.Millisecond})
			s, p := natsFaultSink(t, true)
			s.env = append(s.env, "BRIDGE_NATS_DUPLICATE_WINDOW=100ms")
			c.run(t, w, p, s)
		})
	}
}
