package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

const testTimeout = 30 * time.Second

var urlLine = regexp.MustCompile(`msg="zulipsim listening" url=(\S+)`)

// logLines streams r's lines into a channel, closed at EOF.
func logLines(r io.Reader) <-chan string {
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// waitLine returns the first line matching re, failing the test at the
// deadline or at EOF.
func waitLine(t *testing.T, lines <-chan string, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("log ended before a line matching %s", re)
			}
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("no log line matching %s", re)
		}
	}
}

func getJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("%s %s: decode: %v", req.Method, req.URL, err)
	}
	return resp.StatusCode, body
}

func checkServerSettings(t *testing.T, base string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/server_settings", nil)
	status, body := getJSON(t, req)
	if status != http.StatusOK || body["result"] != "success" || body["zulip_feature_level"] != float64(zuliptest.DefaultFeatureLevel) {
		t.Fatalf("server_settings: %d %v", status, body)
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	lines := logLines(pr)
	done := make(chan int, 1)
	go func() {
		done <- serve(ctx, []string{"-addr", "127.0.0.1:0", "-rate", "500", "-seed", "7"}, map[string]string{}, pw)
		pw.Close()
	}()
	base := waitLine(t, lines, urlLine)[1]
	checkServerSettings(t, base)

	// The generator is on: a registered queue receives traffic.
	form := url.Values{"event_types": {`["message"]`}}
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/register", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey)
	status, reg := getJSON(t, req)
	if status != http.StatusOK {
		t.Fatalf("register: %d %v", status, reg)
	}
	q := url.Values{"queue_id": {reg["queue_id"].(string)}, "last_event_id": {"-1"}}
	req, _ = http.NewRequest(http.MethodGet, base+"/api/v1/events?"+q.Encode(), nil)
	req.SetBasicAuth(zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey)
	status, evs := getJSON(t, req)
	if events, _ := evs["events"].([]any); status != http.StatusOK || len(events) == 0 {
		t.Fatalf("events: %d %v", status, evs)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve returned %d, want 0", code)
		}
	case <-time.After(testTimeout):
		t.Fatal("serve did not stop after the context ended")
	}
}

// TestBinaryStopsOnSignal builds zulipsim and runs it as a user would,
// configured from the environment, then stops it with SIGTERM.
func TestBinaryStopsOnSignal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "zulipsim")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	const bot, key = "ci-bot@zulip.example.com", "CiBotKeyCiBotKeyCiBotKeyCiBotKey"
	cmd := exec.Command(bin, "-heartbeat", "2s")
	cmd.Env = append(os.Environ(), "ZULIPSIM_ADDR=127.0.0.1:0", "ZULIPSIM_BOT="+bot+":"+key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := logLines(stderr)
	base := waitLine(t, lines, urlLine)[1]
	checkServerSettings(t, base)

	// The environment's bot is accepted, the default one is not.
	for _, c := range []struct {
		email, key string
		want       int
	}{{bot, key, http.StatusOK}, {zuliptest.DefaultBot.Email, zuliptest.DefaultBot.APIKey, http.StatusUnauthorized}} {
		req, _ := http.NewRequest(http.MethodGet, base+"/api/v1/messages?anchor=newest&num_before=1&num_after=0", nil)
		req.SetBasicAuth(c.email, c.key)
		if status, body := getJSON(t, req); status != c.want {
			t.Fatalf("GET /messages as %s: %d %v, want %d", c.email, status, body, c.want)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, regexp.MustCompile(`msg="zulipsim stopped"`))
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("zulipsim exit: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("zulipsim did not exit after SIGTERM")
	}
}

func TestLoadConfig(t *testing.T) {
	key := strings.Repeat("k", 32)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		check   func(config) bool
		wantErr string
	}{
		{
			name: "defaults",
			check: func(c config) bool {
				return c.Addr == "127.0.0.1:9991" && c.Heartbeat == 50*time.Second && c.QueueTimeout == 10*time.Minute && c.Rate == 0 && len(c.Bots) == 0
			},
		},
		{
			name: "environment",
			env:  map[string]string{"ZULIPSIM_ADDR": "0.0.0.0:80", "ZULIPSIM_BOT": "a@x.org:" + key + ",b@x.org:" + key, "ZULIPSIM_RATE": "2.5", "ZULIPSIM_HEARTBEAT": "5s", "ZULIPSIM_QUEUE_TIMEOUT": "1m"},
			check: func(c config) bool {
				return c.Addr == "0.0.0.0:80" && len(c.Bots) == 2 && c.Rate == 2.5 && c.Heartbeat == 5*time.Second && c.QueueTimeout == time.Minute
			},
		},
		{
			name: "flags win over the environment",
			env:  map[string]string{"ZULIPSIM_BOT": "a@x.org:" + key, "ZULIPSIM_RATE": "3"},
			args: []string{"-bot", "c@x.org:" + key, "-bot", "d@x.org:" + key, "-rate", "4", "-queue-timeout", "30s"},
			check: func(c config) bool {
				return len(c.Bots) == 2 && c.Bots[0] == "c@x.org:"+key && c.Rate == 4 && c.QueueTimeout == 30*time.Second
			},
		},
		{name: "bad bot", args: []string{"-bot", "nokey@x.org"}, wantErr: "ZULIPSIM_BOT"},
		{name: "bad bot hides key", args: []string{"-bot", "noemail:" + key}, wantErr: "ZULIPSIM_BOT"},
		{name: "bad rate", env: map[string]string{"ZULIPSIM_RATE": "-1"}, wantErr: "ZULIPSIM_RATE"},
		{name: "bad heartbeat", args: []string{"-heartbeat", "0s"}, wantErr: "ZULIPSIM_HEARTBEAT"},
		{name: "bad addr", args: []string{"-addr", "nowhere"}, wantErr: "ZULIPSIM_ADDR"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			cfg, err := loadConfig(tt.args, env, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), key) {
					t.Fatalf("error %q leaks the API key", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("config = %+v", cfg)
			}
		})
	}
}
