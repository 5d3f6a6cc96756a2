package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// probe runs `bridge probe args...` with only BRIDGE_HTTP_ADDR set, as a
// container healthcheck does, and returns its exit code and output.
func probe(httpAddr string, args ...string) (int, string) {
	var stdout, stderr bytes.Buffer
	env := []string{"BRIDGE_HTTP_ADDR=" + httpAddr}
	code := run(append([]string{"probe"}, args...), env, &stdout, &stderr)
	return code, stdout.String() + stderr.String()
}

// TestProbeRunningBridge probes a real bridge: ready and live while its
// broker is up, not ready (but still live) once the broker is gone.
func TestProbeRunningBridge(t *testing.T) {
	nb := testutil.StartNATS(t)
	w := newWorld(t, zuliptest.Config{})
	p := w.start(natsEnv(nb)...)
	var addr string
	re := regexp.MustCompile(`msg="serving health, readiness and metrics" addr=127\.0\.0\.1:(\d+)`)
	testutil.WaitFor(t, 30*time.Second, "the bridge's HTTP address in its log", func() bool {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			addr = ":" + m[1] // as a Dockerfile sets it: no host, the probe uses loopback
		}
		return addr != "" || p.exited()
	})
	if addr == "" {
		t.Fatalf("bridge exited before serving HTTP:\n%s", tail(p.out.String()))
	}

	var out string
	testutil.WaitFor(t, 30*time.Second, "probe ready to exit 0", func() bool {
		var code int
		code, out = probe(addr)
		return code == exitOK
	})
	if !strings.Contains(out, "/readyz: ok") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("probe ready printed %q, want one line naming /readyz", out)
	}
	if code, out := probe(addr, "live"); code != exitOK || !strings.Contains(out, "/healthz: ok") {
		t.Errorf("probe live: exit %d, %q", code, out)
	}
	if code, out := probe("127.0.0.1"+addr, "ready"); code != exitOK {
		t.Errorf("probe with an explicit host: exit %d, %q", code, out)
	}

	t.Logf("ready: %s", out)
	nb.Stop()
	testutil.WaitFor(t, 30*time.Second, "probe ready to fail once the broker is down", func() bool {
		var code int
		code, out = probe(addr)
		return code == exitFailed
	})
	t.Logf("not ready: %s", out)
	if !strings.Contains(out, "503") || !strings.Contains(out, "broker: not ready") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Errorf("failed probe printed %q, want one line with the status and the failing check", out)
	}
	if code, out := probe(addr, "live"); code != exitOK {
		t.Errorf("probe live with the broker down: exit %d, %q; a broker outage is not a reason to restart", code, out)
	}
	if strings.Contains(out, testAPIKey) {
		t.Error("the probe printed the API key")
	}
}

// TestProbeNothingListening: a refused connection and a server that never
// answers both fail, the second within the probe's timeout.
func TestProbeNothingListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if code, out := probe(closed); code != exitFailed || !strings.Contains(out, "refused") {
		t.Errorf("nothing listening: exit %d, %q", code, out)
	}

	// Accepts connections and never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan []net.Conn)
	go func() {
		var held []net.Conn // open until the probe gave up
		for {
			c, err := silent.Accept()
			if err != nil {
				accepted <- held
				return
			}
			held = append(held, c)
		}
	}()
	began := time.Now()
	code, out := probe(silent.Addr().String(), "live")
	if code != exitFailed || !strings.Contains(out, "no answer within") {
		t.Errorf("silent server: exit %d, %q", code, out)
	}
	if took := time.Since(began); took > probeTimeout+3*time.Second {
		t.Errorf("probe took %s, more than its %s timeout", took, probeTimeout)
	}
	silent.Close()
	for _, c := range <-accepted {
		c.Close()
	}
}

func TestProbeUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name, addr string
		args       []string
		want       string
	}{
		{"unknown kind", ":8080", []string{"started"}, "usage:"},
		{"two kinds", ":8080", []string{"ready", "live"}, "usage:"},
		{"endpoints off", "off", nil, "BRIDGE_HTTP_ADDR is off"},
		{"not host:port", "8080", nil, "BRIDGE_HTTP_ADDR"},
		{"random port", "127.0.0.1:0", nil, "no fixed port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, out := probe(tt.addr, tt.args...); code != exitConfig || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, %q; want %d and %q", code, out, exitConfig, tt.want)
			}
		})
	}
}

func TestProbeURL(t *testing.T) {
	tests := []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080/readyz"},
		{"0.0.0.0:9090", "http://127.0.0.1:9090/readyz"},
		{"[::]:8080", "http://127.0.0.1:8080/readyz"},
		{"10.1.2.3:8080", "http://10.1.2.3:8080/readyz"},
		{"[::1]:8080", "http://[::1]:8080/readyz"},
		{"localhost:8080", "http://localhost:8080/readyz"},
	}
	for _, tt := range tests {
		got, err := probeURL(tt.addr, "/readyz")
		if err != nil || got != tt.want {
			t.Errorf("probeURL(%q) = %q, %v; want %q", tt.addr, got, err, tt.want)
		}
	}
}

// The probe's default is the same BRIDGE_HTTP_ADDR default `bridge run`
// listens on: with the variable unset it probes :8080.
func TestProbeDefaultAddress(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := cmdProbe(ctx, nil, nil, &stdout, &stderr)
	if out := stdout.String() + stderr.String(); !strings.Contains(out, "http://127.0.0.1:8080/readyz") {
		t.Errorf("exit %d, %q; want a probe of http://127.0.0.1:8080/readyz", code, out)
	}
}
