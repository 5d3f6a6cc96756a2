package main

import (
	"bytes"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"net/url"
	"os"
	"path/filepath"
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
