package helm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The bridge and the simulator are built from the root module as programs: this module
// must not be imported by the bridge, nor import it.

var binDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "zulip-bridge-helm-bin-") })

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := binDir(); err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

var builds sync.Map // package path -> func() (string, error)

// buildBinary builds ./cmd/<name> of the root module once per test run.
func buildBinary(t testing.TB, name string) string {
	t.Helper()
	f, _ := builds.LoadOrStore(name, sync.OnceValues(func() (string, error) {
		dir, err := binDir()
		if err != nil {
			return "", err
		}
		root, err := filepath.Abs("..")
		if err != nil {
			return "", err
		}
		out := filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-C", root, "-o", out, "./cmd/"+name)
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./cmd/%s: %v\n%s", name, err, b)
		}
		return out, nil
	}))
	path, err := f.(func() (string, error))()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// bridgeEnv is what `bridge env` says about the variables the bridge reads.
type bridgeEnv struct {
	names   map[string]bool // every variable
	secrets map[string]bool // variables holding a secret value (those with a *_FILE twin)
}

var bridgeEnvOnce sync.Once
var bridgeEnvResult bridgeEnv
var bridgeEnvErr error

// knownEnv runs `bridge env` twice: with a clean environment to list the variables (the
// first column), then with every variable set to see which ones it reports as
// secrets. A secret whose value is itself a secret has a *_FILE twin holding a path.
func knownEnv(t testing.TB) bridgeEnv {
	t.Helper()
	bin := buildBinary(t, "bridge")
	bridgeEnvOnce.Do(func() {
		out, err := exec.Command(bin, "env").Output()
		if err != nil {
			bridgeEnvErr = fmt.Errorf("bridge env: %w", err)
			return
		}
		names := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`).MatchString(f[0]) {
				names[f[0]] = true
			}
		}
		var environ []string
		for n := range names {
			environ = append(environ, n+"=x")
		}
		cmd := exec.Command(bin, "env")
		cmd.Env = environ
		out, err = cmd.Output()
		if err != nil {
			bridgeEnvErr = fmt.Errorf("bridge env (all set): %w", err)
			return
		}
		secrets := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && names[f[0]] && strings.Contains(line, "(secret)") && names[f[0]+"_FILE"] {
				secrets[f[0]] = true
			}
		}
		bridgeEnvResult = bridgeEnv{names, secrets}
	})
	if bridgeEnvErr != nil {
		t.Fatal(bridgeEnvErr)
	}
	if len(bridgeEnvResult.names) < 50 || len(bridgeEnvResult.secrets) == 0 {
		t.Fatalf("bridge env listed %d variables, %d secrets: parsing broke", len(bridgeEnvResult.names), len(bridgeEnvResult.secrets))
	}
	return bridgeEnvResult
}

// scrape is what the running bridge exports on /metrics.
type scrape struct {
	// series names (histograms as _bucket, _sum, _count) -> label name -> values seen
	series map[string]map[string]map[string]bool
	// families: metric family name -> type
	families map[string]string
}

var metricsOnce sync.Once
var metricsResult scrape
var metricsErr error

// exportedMetrics starts the simulator and the bridge (embedded NATS, file checkpoint)
// on loopback, waits until the bridge is ready and has exported the series that exist
// only after traffic (skipped heartbeats, message lag), and parses /metrics.
func exportedMetrics(t *testing.T) scrape {
	t.Helper()
	sim, bridge := buildBinary(t, "zulipsim"), buildBinary(t, "bridge")
	metricsOnce.Do(func() { metricsResult, metricsErr = runAndScrape(sim, bridge, t.TempDir()) })
	if metricsErr != nil {
		t.Fatal(metricsErr)
	}
	return metricsResult
}

func runAndScrape(simBin, bridgeBin, dir string) (scrape, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	// Fast heartbeats, so that an idle long-poll gives a skipped heartbeat soon.
	simLog := newLineWatcher()
	sim := exec.Command(simBin, "-addr", "127.0.0.1:0", "-rate", "2", "-heartbeat", "100ms")
	sim.Env = []string{}
	sim.Stderr = simLog
	if err := sim.Start(); err != nil {
		return scrape{}, err
	}
	defer stopProcess(sim)
	siteLine, err := simLog.wait(ctx, regexp.MustCompile(`msg="zulipsim listening" url=(\S+)`))
	if err != nil {
		return scrape{}, fmt.Errorf("simulator: %w\n%s", err, simLog)
	}
	site := siteLine[1]

	bridgeLog := newLineWatcher()
	bridge := exec.Command(bridgeBin, "run")
	bridge.Env = []string{
		"ZULIP_SITE=" + site,
		"ZULIP_EMAIL=bridge-bot@zulip.example.com",
		"ZULIP_API_KEY=ZulipSimulatorBridgeBotApiKey001", // the simulator's published test key
		"BRIDGE_HTTP_ADDR=127.0.0.1:0",
		"BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:0",
		"BRIDGE_STATE_DIR=" + filepath.Join(dir, "state"),
		"BRIDGE_EVENT_TYPES=*",
	}
	bridge.Stderr = bridgeLog
	if err := bridge.Start(); err != nil {
		return scrape{}, err
	}
	defer stopProcess(bridge)
	addrLine, err := bridgeLog.wait(ctx, regexp.MustCompile(`"msg":"serving health, readiness and metrics","addr":"([^"]+)"`))
	if err != nil {
		return scrape{}, fmt.Errorf("bridge: %w\n%s", err, bridgeLog)
	}
	base := "http://" + addrLine[1]

	for {
		if code, _, _ := get(ctx, base+"/readyz"); code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			return scrape{}, fmt.Errorf("bridge never ready\n%s", bridgeLog)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, with the deadline above
	}
	lazy := []string{"zulip_bridge_events_skipped_total", "zulip_bridge_message_lag_seconds", "zulip_bridge_events_published_total"}
	for {
		_, body, err := get(ctx, base+"/metrics")
		if err == nil {
			s := parseMetrics(body)
			missing := false
			for _, f := range lazy {
				if _, ok := s.families[f]; !ok {
					missing = true
				}
			}
			if !missing {
				return s, nil
			}
		}
		if ctx.Err() != nil {
			return scrape{}, fmt.Errorf("metrics never had %v: %v\n%s", lazy, err, body)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, with the deadline above
	}
}

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func stopProcess(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

var (
	typeLine   = regexp.MustCompile(`^# TYPE (\S+) (\S+)$`)
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

// parseMetrics reads the Prometheus text format: families from # TYPE lines, and the
// label values of every sample.
func parseMetrics(body string) scrape {
	s := scrape{series: map[string]map[string]map[string]bool{}, families: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := typeLine.FindStringSubmatch(line); m != nil {
			s.families[m[1]] = m[2]
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := s.series[m[1]]
		if labels == nil {
			labels = map[string]map[string]bool{}
			s.series[m[1]] = labels
		}
		for _, lp := range labelPair.FindAllStringSubmatch(m[3], -1) {
			if labels[lp[1]] == nil {
				labels[lp[1]] = map[string]bool{}
			}
			labels[lp[1]][lp[2]] = true
		}
	}
	return s
}

// lineWatcher collects a process's output and lets a test wait for a line.
type lineWatcher struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLineWatcher() *lineWatcher { return &lineWatcher{changed: make(chan struct{})} }

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	close(w.changed)
	w.changed = make(chan struct{})
	return len(p), nil
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait returns the submatches of the first line matching re.
func (w *lineWatcher) wait(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	for {
		w.mu.Lock()
		m := re.FindStringSubmatch(w.buf.String())
		ch := w.changed
		w.mu.Unlock()
		if m != nil {
			return m, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("no line matching %s: %w", re, ctx.Err())
		}
	}
}
