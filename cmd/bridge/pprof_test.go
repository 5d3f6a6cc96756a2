package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// TestPProf: BRIDGE_PPROF=true serves net/http/pprof on the bridge's own
// HTTP address beside the probes; unset (the default), /debug/pprof/ is a
// 404 there although the binary links net/http/pprof (whose handlers sit
// on http.DefaultServeMux, which nothing serves).
func TestPProf(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
		want  int
	}{
		{"on", []string{"BRIDGE_PPROF=true"}, http.StatusOK},
		{"default", nil, http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nb := testutil.StartNATS(t)
			w := newWorld(t, zuliptest.Config{})
			p := w.start(append(natsEnv(nb), tc.extra...)...)
			addr := httpAddr(t, p)
			get := func(path string) (int, string) {
				t.Helper()
				resp, err := http.Get("http://" + addr + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/goroutine?debug=1"} {
				if code, body := get(path); code != tc.want {
					t.Errorf("GET %s: %d, want %d\n%.300s", path, code, tc.want, body)
				}
			}
			if tc.want == http.StatusOK {
				if _, body := get("/debug/pprof/"); !strings.Contains(body, "goroutine") {
					t.Errorf("/debug/pprof/ does not list the profiles:\n%.500s", body)
				}
				// The test binary runs as the bridge with `run`.
				if _, body := get("/debug/pprof/cmdline"); !strings.HasSuffix(body, "\x00run") {
					t.Errorf("/debug/pprof/cmdline = %q, want the bridge's command line", body)
				}
			}
			// The probes are still served beside it.
			testutil.WaitFor(t, 30*time.Second, "/readyz 200", func() bool {
				code, _ := get("/readyz")
				return code == http.StatusOK
			})
			if code, _ := get("/metrics"); code != http.StatusOK {
				t.Errorf("/metrics: %d", code)
			}
			if code, _ := get("/nope"); code != http.StatusNotFound {
				t.Errorf("/nope: %d, want 404", code)
			}
		})
	}
}

// httpAddr waits for the bridge's HTTP address in its log.
func httpAddr(t *testing.T, p *bridgeProc) string {
	t.Helper()
	re := regexp.MustCompile(`msg="serving health, readiness and metrics" addr=(\S+)`)
	var addr string
	testutil.WaitFor(t, 30*time.Second, "the bridge's HTTP address in its log", func() bool {
		if m := re.FindStringSubmatch(p.out.String()); m != nil {
			addr = m[1]
		}
		return addr != "" || p.exited()
	})
	if addr == "" {
		t.Fatalf("bridge exited before serving HTTP:\n%s", tail(p.out.String()))
	}
	return addr
}
