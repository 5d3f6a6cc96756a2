package main

import (
	"bytes"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/natsembed"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

func TestCheck(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	checkOut := func(env []string) (int, string) {
		var stdout, stderr testutil.SyncBuffer
		code := run([]string{"check"}, env, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if strings.Contains(out, testAPIKey) {
			t.Errorf("check printed the API key:\n%s", out)
		}
		return code, stdout.String()
	}

	// Embedded NATS, nothing running yet (on a free port: check binds it).
	w.env = append(w.env, "BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:0")
	code, out := checkOut(w.env)
	if code != exitOK {
		t.Fatalf("check exit %d:\n%s", code, out)
	}
	for _, want := range []string{"ok   configuration", "ok   listen on 127.0.0.1:0 (BRIDGE_HTTP_ADDR)\n",
		"ok   listen on 127.0.0.1:0 (BRIDGE_NATS_EMBEDDED_ADDR, the embedded NATS server)\n", "ok   zulip server settings", "ok   zulip register and delete a throwaway queue",
		"ok   embedded NATS server", "ok   checkpoint store (file) (no checkpoint yet"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	if qs := w.sim.Queues(); len(qs) != 0 {
		t.Errorf("check left queues behind: %+v", qs)
	}

	// Beside a running bridge with the same state dir and embedded NATS.
	nb := testutil.StartNATS(t)
	p := w.start(natsEnv(nb)...)
	q := w.queueID(30 * time.Second)
	code, out = checkOut(append(w.env, natsEnv(nb)...))
	if code != exitOK || !strings.Contains(out, "held by a running bridge") {
		t.Errorf("check beside a running bridge: exit %d:\n%s", code, out)
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Errorf("check disturbed the running bridge's queue: %+v", qs)
	}
	// With the running bridge's own HTTP address: held by that bridge,
	// as its checkpoint is, which check recognises.
	httpAddr := p.httpAddr(t)
	code, out = checkOut(override(append(w.env, natsEnv(nb)...), []string{"BRIDGE_HTTP_ADDR=" + httpAddr}))
	if want := "ok   listen on " + httpAddr + " (BRIDGE_HTTP_ADDR) (in use by a running bridge)\n"; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check on a running bridge's HTTP address: exit %d, want 0 and %q:\n%s", code, want, out)
	}
	p.kill()

	// Wrong key: the Zulip steps fail, exit 1, and the key is not shown.
	bad := override(w.env, []string{"ZULIP_API_KEY=WrongKeyWrongKeyWrongKey00000001"})
	code, out = checkOut(bad)
	if code != exitFailed || !strings.Contains(out, "FAIL zulip register") {
		t.Errorf("check with a wrong key: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "WrongKeyWrongKey") {
		t.Errorf("check printed the wrong key:\n%s", out)
	}
}

// checkRun runs `bridge check` in-process with env and returns its exit code
// and its report (stdout), failing if it does not end within timeout.
func checkRun(t *testing.T, env []string, timeout time.Duration) (int, string) {
	t.Helper()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"check"}, env, &stdout, &stderr) }()
	select {
	case code := <-done:
		if out := stdout.String() + stderr.String(); strings.Contains(out, testAPIKey) {
			t.Errorf("check printed the API key:\n%s", out)
		}
		return code, stdout.String()
	case <-time.After(timeout):
		t.Fatalf("check did not end within %s; so far:\n%s%s", timeout, stdout.String(), stderr.String())
		return 0, ""
	}
}

// holdAddr listens on a free loopback port, accepting connections and never
// answering, until the test ends; it returns the address.
func holdAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c) // held open, never read nor written
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// TestCheckHTTPAddrInUse: an HTTP address another process holds fails
// check, naming the address and BRIDGE_HTTP_ADDR, as it would fail run.
func TestCheckHTTPAddrInUse(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	addr := holdAddr(t)
	code, out := checkRun(t, override(w.env, []string{"BRIDGE_HTTP_ADDR=" + addr, "BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:0"}), 30*time.Second)
	want := "FAIL listen on " + addr + " (BRIDGE_HTTP_ADDR): address already in use"
	if code != exitFailed || !strings.Contains(out, want) {
		t.Errorf("check with BRIDGE_HTTP_ADDR in use: exit %d, want %d and %q:\n%s", code, exitFailed, want, out)
	}
}

// TestCheckNATSAddrInUse: the embedded NATS server's address held by
// another process fails check at once (run would fail to start the
// server), naming it and BRIDGE_NATS_EMBEDDED_ADDR; held by a bridge's
// embedded server, it is reported as such.
func TestCheckNATSAddrInUse(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	addr := holdAddr(t)
	code, out := checkRun(t, override(w.env, []string{"BRIDGE_NATS_EMBEDDED_ADDR=" + addr}), 30*time.Second)
	want := "FAIL listen on " + addr + " (BRIDGE_NATS_EMBEDDED_ADDR, the embedded NATS server): address already in use"
	if code != exitFailed || !strings.Contains(out, want) {
		t.Errorf("check with BRIDGE_NATS_EMBEDDED_ADDR in use: exit %d, want %d and %q:\n%s", code, exitFailed, want, out)
	}
	// The broker step still runs, on a scratch server of its own.
	if !strings.Contains(out, "ok   embedded NATS server with JetStream") {
		t.Errorf("check skipped the broker step:\n%s", out)
	}

	srv, err := natsembed.Start(natsembed.Config{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	u, err := url.Parse(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	code, out = checkRun(t, override(w.env, []string{"BRIDGE_NATS_EMBEDDED_ADDR=" + u.Host}), 30*time.Second)
	if want := "ok   listen on " + u.Host + " (BRIDGE_NATS_EMBEDDED_ADDR, the embedded NATS server) (in use by a running bridge)\n"; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check on a bridge's embedded NATS address: exit %d, want 0 and %q:\n%s", code, want, out)
	}
}

// TestCheckKafkaUnresponsive: a broker that accepts connections and never
// answers fails check within BRIDGE_KAFKA_DIAL_TIMEOUT (not check's 20 s
// step bound), naming the broker and the variables; the other steps run.
func TestCheckKafkaUnresponsive(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	broker := holdAddr(t)
	env := override(w.env, []string{"BRIDGE_SINK=kafka", "BRIDGE_KAFKA_BROKERS=" + broker, "BRIDGE_KAFKA_DIAL_TIMEOUT=500ms"})
	// Generous, yet below the 20 s step bound the dial timeout replaces.
	code, out := checkRun(t, env, 15*time.Second)
	want := "FAIL broker (kafka): brokers " + broker + " (BRIDGE_KAFKA_BROKERS) did not answer within 500ms (BRIDGE_KAFKA_DIAL_TIMEOUT)"
	if code != exitFailed || !strings.Contains(out, want) {
		t.Errorf("check with an unresponsive broker: exit %d, want %d and %q:\n%s", code, exitFailed, want, out)
	}
	for _, want := range []string{"ok   zulip server settings", "ok   zulip register and delete a throwaway queue", "ok   checkpoint store (file)"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckEveryStep: every step is reported even when the first ones
// fail, and a Zulip that cannot be reached is named with ZULIP_SITE.
func TestCheckEveryStep(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	site := "http://" + closedAddr(t)
	httpAddr, natsAddr := holdAddr(t), holdAddr(t)
	env := override(w.env, []string{"ZULIP_SITE=" + site, "BRIDGE_HTTP_ADDR=" + httpAddr, "BRIDGE_NATS_EMBEDDED_ADDR=" + natsAddr})
	code, out := checkRun(t, env, 60*time.Second)
	if code != exitFailed {
		t.Errorf("check exit %d, want %d:\n%s", code, exitFailed, out)
	}
	wants := []string{
		"ok   configuration",
		"FAIL listen on " + httpAddr + " (BRIDGE_HTTP_ADDR): ",
		"FAIL listen on " + natsAddr + " (BRIDGE_NATS_EMBEDDED_ADDR, the embedded NATS server): ",
		"FAIL zulip server settings: cannot reach Zulip at " + site + " (ZULIP_SITE): ",
		"FAIL zulip register and delete a throwaway queue: cannot reach Zulip at " + site + " (ZULIP_SITE): ",
		"ok   embedded NATS server with JetStream",
		"ok   checkpoint store (file)",
		"ok   spool (off: the embedded NATS server's stream is local and durable already",
	}
	checkLines(t, out, wants)

	// Components that do not start (an unreachable BRIDGE_NATS_URL): the
	// broker step says so, the file checkpoint is still checked.
	env = override(w.env, []string{"BRIDGE_NATS_URL=nats://" + closedAddr(t)})
	code, out = checkRun(t, env, 60*time.Second)
	if code != exitFailed {
		t.Errorf("check with NATS unreachable: exit %d, want %d:\n%s", code, exitFailed, out)
	}
	checkLines(t, out, []string{
		"ok   configuration",
		"ok   listen on 127.0.0.1:0 (BRIDGE_HTTP_ADDR)",
		"ok   zulip server settings",
		"ok   zulip register and delete a throwaway queue",
		"FAIL start components: ",
		"FAIL broker (nats): not checked: the components did not start",
		"ok   checkpoint store (file)",
		"ok   spool (" + filepath.Join(w.dir, "spool.db") + ", BRIDGE_SPOOL_DIR) (on: 0 events waiting for the broker, 0 of 1073741824 bytes used)",
	})
}

// checkLines fails unless out has one line per want, each starting with it,
// in that order.
func checkLines(t *testing.T, out string, wants []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(wants) {
		t.Errorf("check printed %d lines, want %d:\n%s", len(lines), len(wants), out)
	}
	for i, want := range wants {
		if i >= len(lines) || !strings.HasPrefix(lines[i], want) {
			t.Errorf("check line %d: want it to start with %q:\n%s", i+1, want, out)
		}
	}
}

// TestCheckZuliprc: with ZULIP_CONFIG unset, the credentials come from
// $HOME/.zuliprc as with the official client, a site "localhost:port" in it
// means http, and check says where each credential came from.
func TestCheckZuliprc(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	u, err := url.Parse(w.sim.URL)
	if err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	rc := filepath.Join(home, ".zuliprc")
	if err := os.WriteFile(rc, []byte("[api]\nsite=localhost:"+u.Port()+"\nemail="+testBot.Email+"\nkey="+testAPIKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range w.env {
		if k, _, _ := strings.Cut(kv, "="); k != "ZULIP_SITE" && k != "ZULIP_EMAIL" && k != "ZULIP_API_KEY" {
			env = append(env, kv)
		}
	}
	env = append(env, "HOME="+home)
	check := func(env []string) (int, string) {
		var stdout, stderr testutil.SyncBuffer
		code := run([]string{"check"}, env, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if strings.Contains(out, testAPIKey) {
			t.Errorf("check printed the API key:\n%s", out)
		}
		return code, out
	}

	code, out := check(env)
	if code != exitOK {
		t.Fatalf("check with ~/.zuliprc: exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"ok   configuration (Zulip credentials: site, email, key from " + rc + " ($HOME/.zuliprc, read as ZULIP_CONFIG is unset))\n",
		"ok   zulip server settings (http://localhost:" + u.Port() + ", Zulip",
		"ok   zulip register and delete a throwaway queue (as " + testBot.Email + ")",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}

	// The variables win over the file; the key comes from the file still.
	code, out = check(append(env, "ZULIP_SITE="+w.sim.URL, "ZULIP_EMAIL="+testBot.Email))
	if want := "ok   configuration (Zulip credentials: ZULIP_SITE, ZULIP_EMAIL from the environment; key from " + rc +
		" ($HOME/.zuliprc, read as ZULIP_CONFIG is unset))\n"; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check with variables and ~/.zuliprc: exit %d, want 0 and %q:\n%s", code, want, out)
	}

	// The environment alone, no zuliprc: check says none was found.
	code, out = check(override(w.env, []string{"HOME=" + t.TempDir()}))
	if want := "ok   configuration (Zulip credentials: ZULIP_SITE, ZULIP_EMAIL, ZULIP_API_KEY from the environment; " +
		"no zuliprc: ZULIP_CONFIG is unset and "; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check without a zuliprc: exit %d, want 0 and %q:\n%s", code, want, out)
	}

	// ZULIP_CONFIG set empty: no file, as with the official client.
	code, out = check(append(env, "ZULIP_CONFIG="))
	if code != exitConfig || !strings.Contains(out, "ZULIP_SITE: is not set") {
		t.Errorf("check with ZULIP_CONFIG empty: exit %d, want %d and ZULIP_SITE not set:\n%s", code, exitConfig, out)
	}
}

// TestConfigTable keeps the configuration table of docs/configuration.md
// equal, whole, to what `bridge env --markdown` prints from the tags: same
// variables in the order of `bridge env`, same defaults, same meanings.
func TestConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	const begin, end = "<!-- env-table:begin -->\n", "<!-- env-table:end -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatal("docs/configuration.md has no env-table markers")
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"env", "--markdown"}, nil, &stdout, &stderr); code != exitOK {
		t.Fatalf("bridge env --markdown: exit %d: %s", code, stderr.String())
	}
	if got, want := doc[i+len(begin):j], stdout.String(); got != want {
		t.Errorf("docs/configuration.md table differs from bridge env --markdown; regenerate it with\n"+
			"  go run ./cmd/bridge env --markdown\ngot:\n%s\nwant:\n%s", got, want)
	}
	// Every row: the variable, its default as bridge env shows it, and a
	// meaning from its help tag.
	var keys []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n")[2:] {
		keys = append(keys, strings.Trim(strings.SplitN(line, " | ", 2)[0], "| `"))
	}
	var want []string
	for _, v := range vars() {
		want = append(want, v.Key)
		if v.Help == "" {
			t.Errorf("%s has no help tag", v.Key)
		}
	}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("table rows %v, want the variables of bridge env %v", keys, want)
	}
}

// TestCheckElection: with leader election on, check reports who leads,
// read from the election's record, and campaigns for nothing: before any
// replica, "no leader"; beside a running replica, held by it, which keeps
// leading.
func TestCheckElection(t *testing.T) {
	w := newWorld(t, zuliptest.Config{})
	nb := testutil.StartNATS(t)
	env := append(natsEnv(nb), "BRIDGE_CHECKPOINT=nats-kv", "BRIDGE_LEADER_ELECTION=nats-kv",
		"BRIDGE_LEADER_LEASE_NAME=check", "BRIDGE_LEADER_IDENTITY=checker")
	where := "NATS KV bucket zulip-bridge-leader key check"
	code, out := checkRun(t, append(w.env, env...), 60*time.Second)
	if want := "ok   leader election (nats-kv) (" + where + ": no leader"; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check before any replica: exit %d, want 0 and %q:\n%s", code, want, out)
	}

	p := w.start(append(env, "BRIDGE_LEADER_IDENTITY=replica-a")...)
	q := w.queueID(30 * time.Second) // registered: it leads
	code, out = checkRun(t, append(w.env, env...), 60*time.Second)
	if want := "ok   leader election (nats-kv) (" + where + ": held by replica-a_"; code != exitOK || !strings.Contains(out, want) {
		t.Errorf("check beside the leader: exit %d, want 0 and %q:\n%s", code, want, out)
	}
	if strings.Contains(out, "checker") {
		t.Errorf("check campaigned:\n%s", out)
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Errorf("check disturbed the leader's queue: %+v", qs)
	}
	if p.exited() {
		t.Errorf("the leader exited beside check")
	}
	t.Logf("check beside the leader:\n%s", out)
	p.kill()
}
