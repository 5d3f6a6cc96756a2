package main

import (
	"fmt"
	"github.com/twmb/franz-go/pkg/kfake"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestNATSDownAtStart: a bridge started before its NATS server keeps
// running, not ready on /readyz with the reason, logs once that NATS is
// unreachable (URL redacted, variable named) and once that it was reached,
// and delivers without a restart once the server listens.
func TestNATSDownAtStart(t *testing.T) {
	nb := testutil.StartNATS(t)
	nb.Stop() // its port is free now: nothing listens there
	addr := strings.TrimPrefix(nb.URL(), "nats://")
	w := newWorld(t, zuliptest.Config{})
	// The test server has no authorization, so it accepts any password:
	// the URL's must never show.
	p := w.start("BRIDGE_SINK=nats", "BRIDGE_NATS_URL=nats://bridge:pa55-s3cret@"+addr, "BRIDGE_LOG_LEVEL=debug")

	testutil.WaitFor(t, 30*time.Second, "the bridge to retry NATS", func() bool {
		return strings.Contains(p.out.String(), "nats still unreachable") || p.exited()
	})
	if p.exited() {
		t.Fatalf("the bridge exited while NATS was down:\n%s", tail(p.out.String()))
	}
	out := p.out.String()
	warn := regexp.MustCompile(`level=WARN msg="nats unreachable, retrying" url=nats://redacted@` + regexp.QuoteMeta(addr) + ` variable=BRIDGE_NATS_URL error=`)
	if n := len(warn.FindAllString(out, -1)); n != 1 {
		t.Errorf("%d 'nats unreachable, retrying' warnings with the redacted URL and the variable, want 1:\n%s", n, tail(out))
	}
	get := func(path string) (int, string) { return p.httpGet(t, path) }
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable ||
		!strings.Contains(body, "broker: not ready: nats sink: cannot reach nats://redacted@"+addr+" (BRIDGE_NATS_URL)") ||
		!strings.Contains(body, "retrying") {
		t.Errorf("/readyz while NATS is down: %d\n%s", code, body)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz while NATS is down: %d %s", code, body)
	}
	if len(w.sim.Queues()) != 0 {
		t.Error("registered a Zulip queue before the broker was reachable")
	}

	nb.Start()
	q := w.queueID(time.Minute)
	sendMessages(t, w.sim, 20, "after")
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	if code, body := get("/readyz"); code != http.StatusOK || !strings.Contains(body, "broker: ok") {
		t.Errorf("/readyz once NATS is up: %d\n%s", code, body)
	}
	out = p.out.String()
	if n := strings.Count(out, `msg="nats reachable, starting" url=nats://redacted@`+addr+" variable=BRIDGE_NATS_URL"); n != 1 {
		t.Errorf("%d 'nats reachable' lines, want 1:\n%s", n, tail(out))
	}
	if n := strings.Count(out, `msg="nats unreachable, retrying"`); n != 1 {
		t.Errorf("%d 'nats unreachable, retrying' lines in all, want 1", n)
	}
	if strings.Contains(out, "pa55-s3cret") {
		t.Error("the log shows the password of BRIDGE_NATS_URL")
	}
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkExactlyOnce(t, readStream(t, nb.URL(), "ZULIP"), w.expected(q))
}

// TestStopWhileNATSDown: a bridge stopped while it still waits for NATS
// has read nothing from Zulip and exits 0.
func TestStopWhileNATSDown(t *testing.T) {
	nb := testutil.StartNATS(t)
	nb.Stop()
	w := newWorld(t, zuliptest.Config{})
	p := w.start("BRIDGE_SINK=nats", "BRIDGE_NATS_URL="+nb.URL())
	testutil.WaitFor(t, 30*time.Second, "the bridge to wait for NATS", func() bool {
		return strings.Contains(p.out.String(), "nats unreachable, retrying") || p.exited()
	})
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d on SIGTERM while waiting for NATS, want 0:\n%s", code, tail(p.out.String()))
	}
	if !strings.Contains(p.out.String(), "stop requested before start-up finished") {
		t.Errorf("no line saying the stop came before start-up finished:\n%s", tail(p.out.String()))
	}
}

// TestKafkaDownAtStart: with the checkpoint in Kafka, a bridge started
// before its Kafka broker waits as it does for NATS: running, not ready,
// one warning, then it starts once the broker listens.
func TestKafkaDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	w := newWorld(t, zuliptest.Config{})
	p := w.start("BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS="+addr, "BRIDGE_KAFKA_CREATE_TOPICS=true", "BRIDGE_CHECKPOINT=kafka")
	testutil.WaitFor(t, 30*time.Second, "the bridge to wait for Kafka", func() bool {
		return strings.Contains(p.out.String(), "kafka unreachable, retrying") || p.exited()
	})
	if p.exited() {
		t.Fatalf("the bridge exited while Kafka was down:\n%s", tail(p.out.String()))
	}
	if !strings.Contains(p.out.String(), "variable=BRIDGE_KAFKA_BROKERS") {
		t.Errorf("the warning does not name BRIDGE_KAFKA_BROKERS:\n%s", tail(p.out.String()))
	}
	if len(w.sim.Queues()) != 0 {
		t.Error("registered a Zulip queue before the checkpoint store was reachable")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DefaultNumPartitions(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	q := w.queueID(time.Minute)
	sendMessages(t, w.sim, 10, "after")
	w.caughtUp(q, w.lastEventID(q), time.Minute, p)
	if n := strings.Count(p.out.String(), `msg="kafka reachable, starting"`); n != 1 {
		t.Errorf("%d 'kafka reachable' lines, want 1:\n%s", n, tail(p.out.String()))
	}
	if code := p.stop(t, syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	checkExactlyOnce(t, readTopics(t, &kafkaBroker{c: c}, "zulip."), w.expected(q))
}
