package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// profileEnv names the file the overlay below writes the bridge's CPU
// profile to.
const profileEnv = "ZULIP_BRIDGE_BENCH_CPUPROFILE"

// profileOverlay is added to package main of cmd/bridge (go build
// -overlay, nothing on disk changes) when -cpuprofile is given: the bridge
// has no profiling endpoint, and a profile must cover exactly the drain,
// which starts with the process. SIGUSR1 ends the profile; it is written
// to a temporary name and renamed, so that the bench knows when it is
// complete before it sends SIGTERM.
const profileOverlay = `package main

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("` + profileEnv + `")
	if path == "" {
		return
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGUSR1)
	go func() {
		<-stop
		pprof.StopCPUProfile()
		if f.Close() == nil {
			os.Rename(path+".tmp", path)
		}
	}()
}
`

// buildBridge builds cmd/bridge of the module the bench runs in into
// dir, with the profiling overlay (written to scratch) when profile is
// set.
func buildBridge(ctx context.Context, dir, scratch string, profile bool) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find the module: not inside the zulip-bridge module (run from the repository, or pass -bridge)")
	}
	root := filepath.Dir(gomod)
	bin := filepath.Join(dir, "bridge")
	args := []string{"build", "-o", bin}
	if profile {
		overlay, err := writeOverlay(scratch, root)
		if err != nil {
			return "", err
		}
		args = append(args, "-overlay", overlay)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./cmd/bridge")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/bridge: %w\n%s", err, out)
	}
	return bin, nil
}

func writeOverlay(dir, root string) (string, error) {
	src := filepath.Join(dir, "bench_profile.go")
	if err := os.WriteFile(src, []byte(profileOverlay), 0o600); err != nil {
		return "", fmt.Errorf("write profiling overlay: %w", err)
	}
	spec, err := json.Marshal(map[string]map[string]string{
		"Replace": {filepath.Join(root, "cmd", "bridge", "zz_bench_profile.go"): src},
	})
	if err != nil {
		return "", fmt.Errorf("profiling overlay: %w", err)
	}
	path := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(path, spec, 0o600); err != nil {
		return "", fmt.Errorf("write profiling overlay: %w", err)
	}
	return path, nil
}

// bridgeSpec is everything one bridge needs to run against the bench's
// simulator and one broker: its own state directory and HTTP port, so
// that a restart resumes its queue.
type bridgeSpec struct {
	bin      string
	site     string
	stateDir string
	httpAddr string
	sinkEnv  []string // BRIDGE_SINK and the broker's address
}

func newBridgeSpec(bin, site, stateDir string, sinkEnv []string) (*bridgeSpec, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return &bridgeSpec{bin: bin, site: site, stateDir: stateDir, httpAddr: addr, sinkEnv: sinkEnv}, nil
}

// environ is the bridge's whole environment: nothing is inherited but
// what a process needs to run and the Go runtime's knobs, so that a
// BRIDGE_* or ZULIP_* variable of the caller cannot change what is
// measured.
func (s *bridgeSpec) environ(profilePath string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"TMPDIR=" + os.TempDir(),
		// Set and empty: no zuliprc, not even the caller's ~/.zuliprc.
		"ZULIP_CONFIG=",
		"ZULIP_SITE=" + s.site,
		"ZULIP_EMAIL=" + zuliptest.DefaultBot.Email,
		"ZULIP_API_KEY=" + zuliptest.DefaultBot.APIKey,
		"BRIDGE_EVENT_TYPES=*",
		"BRIDGE_STATE_DIR=" + s.stateDir,
		"BRIDGE_HTTP_ADDR=" + s.httpAddr,
		"BRIDGE_LOG_LEVEL=warn",
		"BRIDGE_LOG_FORMAT=text",
	}
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if profilePath != "" {
		env = append(env, profileEnv+"="+profilePath)
	}
	return append(env, s.sinkEnv...)
}

// bridgeProc is one running bridge process.
type bridgeProc struct {
	spec    *bridgeSpec
	cmd     *exec.Cmd
	started time.Time
	out     *syncBuffer
	done    chan struct{}
	profile string
}

// start starts the bridge; profilePath, if set, receives its CPU profile
// (only with a bridge built with the overlay).
func (s *bridgeSpec) start(profilePath string) (*bridgeProc, error) {
	cmd := exec.Command(s.bin, "run")
	cmd.Env = s.environ(profilePath)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	p := &bridgeProc{spec: s, cmd: cmd, out: out, done: make(chan struct{}), profile: profilePath}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bridge: %w", err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	return p, nil
}

func (p *bridgeProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// failed describes an unexpected state of the process with the end of its
// output.
func (p *bridgeProc) failed(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if p.exited() {
		msg += fmt.Sprintf(" (bridge exited with code %d)", p.cmd.ProcessState.ExitCode())
	}
	return fmt.Errorf("%s; bridge output:\n%s", msg, tail(p.out.String(), 30))
}

// waitReady waits until /readyz answers 200 and the simulator has a
// long-poll waiting on a queue other than those in others: the bridge
// polls only after it checkpointed the registration, so a SIGTERM from
// then on keeps the queue. It returns that queue.
func (p *bridgeProc) waitReady(ctx context.Context, sim *zuliptest.Server, others map[string]bool, timeout time.Duration) (queueID string, err error) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return "", p.failed("bridge exited before it was ready")
		}
		if time.Now().After(deadline) {
			return "", p.failed("bridge not ready within %s", timeout)
		}
		if get200(ctx, client, "http://"+p.spec.httpAddr+"/readyz") {
			if q := waitingQueue(sim, others); q != "" {
				return q, nil
			}
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// waitingQueue returns a queue not in others that a long-poll waits on,
// if there is one. Only one bridge runs at a time, so it is the running
// bridge's.
func waitingQueue(sim *zuliptest.Server, others map[string]bool) string {
	for _, q := range sim.Queues() {
		if q.Waiting && !others[q.ID] {
			return q.ID
		}
	}
	return ""
}

// get200 reports whether url answers 200; an error (the bridge is not
// listening yet) is a no.
func get200(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// stop ends the profile (if any), sends SIGTERM and waits for exit 0.
func (p *bridgeProc) stop(timeout time.Duration) error {
	if p.exited() {
		return p.failed("bridge exited on its own")
	}
	if p.profile != "" {
		if err := p.endProfile(10 * time.Second); err != nil {
			return err
		}
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return p.failed("bridge did not exit within %s of SIGTERM", timeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return p.failed("bridge exited with code %d after SIGTERM", code)
	}
	return nil
}

func (p *bridgeProc) endProfile(timeout time.Duration) error {
	_ = p.cmd.Process.Signal(syscall.SIGUSR1)
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(p.profile); err == nil {
			return nil
		}
		if time.Now().After(deadline) || p.exited() {
			return p.failed("no CPU profile at %s within %s (was the bridge built by the bench with -cpuprofile?)", p.profile, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill ends the process with SIGKILL if it still runs.
func (p *bridgeProc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// memory is what /proc/<pid>/status says about the bridge's memory.
type memory struct {
	RSSMiB  float64 // VmRSS: resident now
	PeakMiB float64 // VmHWM: the most ever resident
}

// memory reads VmRSS and VmHWM of the running bridge.
func (p *bridgeProc) memory() (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, fmt.Errorf("bridge memory: %w", err)
	}
	var m memory
	var found int
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return memory{}, fmt.Errorf("bridge memory: %s: %q: %w", k, v, err)
		}
		found++
		if k == "VmRSS" {
			m.RSSMiB = kb / 1024
		} else {
			m.PeakMiB = kb / 1024
		}
	}
	if found != 2 {
		return memory{}, errors.New("bridge memory: no VmRSS and VmHWM in /proc/<pid>/status (Linux only)")
	}
	return m, nil
}

// freeAddr returns a 127.0.0.1 address with a port the OS just handed
// out; the bridge binds it a moment later.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// syncBuffer collects a process's output; the process writes while the
// bench may read.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A bridge that logs without end must not eat the bench's memory;
	// the end of the output is what explains a failure.
	if b.b.Len() > 1<<20 {
		rest := b.b.Bytes()[b.b.Len()-(1<<19):]
		b.b = *bytes.NewBuffer(append([]byte(nil), rest...))
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// clockTick is USER_HZ, the unit of the CPU times in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpu returns the CPU time (user and system) the running bridge used so
// far, from /proc/<pid>/stat.
func (p *bridgeProc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("bridge cpu: %w", err)
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from after it. utime and stime are fields 14 and 15 of the line.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("bridge cpu: unexpected /proc/<pid>/stat %q", b)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bridge cpu: %q: %w", s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// selfCPU is the CPU time this process used so far: the simulator, the
// embedded brokers and the raw clients all run here.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
