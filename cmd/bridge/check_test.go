package main

import (
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"os"
	"regexp"
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

// TestReadmeConfigTable keeps the README's configuration table equal to
// what `bridge env` lists: same variables, same order, same defaults.
func TestReadmeConfigTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	begin := strings.Index(readme, "<!-- env-table:begin -->")
	end := strings.Index(readme, "<!-- env-table:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README has no env-table markers")
	}
	row := regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\| `([^`]*)` \\|")
	var got []string
	for _, line := range strings.Split(readme[begin:end], "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			got = append(got, m[1]+"="+m[2])
		}
	}
	var want []string
	for _, v := range vars() {
		def := v.Default
		if def == "" {
			def = "-"
		}
		want = append(want, v.Key+"="+def)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README configuration table differs from bridge env.\nREADME:\n%s\n\nbridge env:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
