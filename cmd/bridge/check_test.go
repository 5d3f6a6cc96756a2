package main

import (
	"bytes"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"os"
	"strings"
	"testing"
	"time"

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

	// Embedded NATS, nothing running yet.
	code, out := checkOut(w.env)
	if code != exitOK {
		t.Fatalf("check exit %d:\n%s", code, out)
	}
	for _, want := range []string{"ok   configuration", "ok   zulip server settings", "ok   zulip register and delete a throwaway queue",
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
