package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// spoolBoth is -spool's default: a drain measurement with the spool off
// and one with it on.
const spoolBoth = "both"

// spoolOff and spoolOn are BRIDGE_SPOOL's values.
const spoolOff, spoolOn = spool.ModeOff, spool.ModeOn

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the command line.
type config struct {
	runs        int
	events      int
	big         int
	rate        float64
	duration    time.Duration
	sinks       []string
	jsonOnly    bool
	bridge      string
	cpuprofile  string
	timeout     time.Duration
	seed        uint64
	mix         string
	maxResponse int64
	checkpoint  string
	// set is -set: BRIDGE_* variables given to every measured bridge.
	set []string
	// spool is -spool: both, off or on; spools are the drain
	// measurements it selects, in order.
	spool  string
	spools []string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var sinks string
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.runs, "runs", 3, "drain runs per sink; the figure is the median")
	fs.IntVar(&cfg.events, "events", 100000, "events in the backlog of each drain run, and messages of the backfill")
	fs.IntVar(&cfg.big, "big", 1000000, "events in the big backlog; 0 skips it")
	fs.Float64Var(&cfg.rate, "rate", 1000, "events per second of the latency measurement")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "length of the latency measurement")
	fs.StringVar(&sinks, "sinks", "nats,kafka", "sinks to measure, comma-separated: nats, kafka")
	fs.BoolVar(&cfg.jsonOnly, "json", false, "print only the JSON line on stdout")
	fs.StringVar(&cfg.bridge, "bridge", "", "bridge binary to measure; default: go build ./cmd/bridge of this module")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "directory for CPU profiles of every measured bridge process (builds the bridge with a profiling overlay; not with -bridge)")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "longest wait for one backlog to drain; a backlog not drained by then is reported as did not finish")
	fs.Int64Var(&cfg.maxResponse, "max-response", 0, "BRIDGE_ZULIP_MAX_RESPONSE_BYTES of every bridge (the largest single event); 0 leaves the bridge's default")
	fs.StringVar(&cfg.checkpoint, "checkpoint", "file", "checkpoint store of every bridge: file (fsynced in the state dir, the default) or broker (nats-kv with JetStream, kafka with Kafka)")
	fs.StringVar(&cfg.spool, "spool", spoolBoth, "drain measurements: off (BRIDGE_SPOOL=off against the raw client), on (BRIDGE_SPOOL=on against a spool append overlapped with the raw client forwarding from it) or both; the other measurements always run with BRIDGE_SPOOL=off")
	fs.Uint64Var(&cfg.seed, "seed", 1, "traffic generator seed")
	fs.StringVar(&cfg.mix, "mix", mixIssue, "traffic: issue (issue 13's: 55% stream messages of about 1 KB, 15% direct messages, typing, reactions, edits) or default (zuliptest.DefaultMix: every kind of event, short messages)")
	fs.Func("set", "`BRIDGE_NAME=value` for every measured bridge, e.g. -set BRIDGE_PUBLISH_BATCH=5000 (repeatable; BRIDGE_ variables only, as documented in docs/configuration.md)", func(v string) error {
		name, _, ok := strings.Cut(v, "=")
		if !ok || !strings.HasPrefix(name, "BRIDGE_") {
			return fmt.Errorf("want BRIDGE_NAME=value (example: -set BRIDGE_PUBLISH_BATCH=5000)")
		}
		cfg.set = append(cfg.set, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var problems []string
	if cfg.runs < 1 {
		problems = append(problems, fmt.Sprintf("-runs %d: want at least 1 (example: -runs 3)", cfg.runs))
	}
	if cfg.events < 10 {
		problems = append(problems, fmt.Sprintf("-events %d: want at least 10 (example: -events 100000)", cfg.events))
	}
	if cfg.big < 0 {
		problems = append(problems, fmt.Sprintf("-big %d: want 0 (skip) or more (example: -big 1000000)", cfg.big))
	}
	if cfg.rate <= 0 || cfg.rate > 100000 {
		problems = append(problems, fmt.Sprintf("-rate %v: want more than 0 and at most 100000 events/s (example: -rate 1000)", cfg.rate))
	}
	if cfg.duration < 100*time.Millisecond {
		problems = append(problems, fmt.Sprintf("-duration %s: want at least 100ms (example: -duration 10s)", cfg.duration))
	}
	if cfg.timeout < time.Second {
		problems = append(problems, fmt.Sprintf("-timeout %s: want at least 1s (example: -timeout 5m)", cfg.timeout))
	}
	if cfg.maxResponse < 0 {
		problems = append(problems, fmt.Sprintf("-max-response %d: want 0 (the bridge's default) or a size in bytes (example: -max-response 1073741824)", cfg.maxResponse))
	}
	if cfg.checkpoint != "file" && cfg.checkpoint != "broker" {
		problems = append(problems, fmt.Sprintf("-checkpoint %q: want file or broker (example: -checkpoint broker)", cfg.checkpoint))
	}
	if cfg.cpuprofile != "" && cfg.bridge != "" {
		problems = append(problems, "-cpuprofile needs the bridge the bench builds; drop -bridge")
	}
	if cfg.mix != mixIssue && cfg.mix != mixDefault {
		problems = append(problems, fmt.Sprintf("-mix %q: want %s or %s (example: -mix issue)", cfg.mix, mixIssue, mixDefault))
	}
	switch cfg.spool {
	case spoolBoth:
		cfg.spools = []string{spool.ModeOff, spool.ModeOn}
	case spool.ModeOff, spool.ModeOn:
		cfg.spools = []string{cfg.spool}
	default:
		problems = append(problems, fmt.Sprintf("-spool %q: want both, off or on (example: -spool both)", cfg.spool))
	}
	seen := map[string]bool{}
	for _, s := range strings.Split(sinks, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s != "nats" && s != "kafka":
			problems = append(problems, fmt.Sprintf("-sinks: unknown sink %q (example: -sinks nats,kafka)", s))
		case !seen[s]:
			seen[s] = true
			cfg.sinks = append(cfg.sinks, s)
		}
	}
	if len(problems) > 0 {
		return config{}, errors.New(strings.Join(problems, "\n"))
	}
	return cfg, nil
}

// run is the whole command; it returns the exit code: 0 when every
// measurement ran (whether or not a target was met), 1 on an error, 2 on
// bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "zulip-bridge-bench-")
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	b := &bench{cfg: cfg, dir: dir, progress: stderr, prev: map[string]backlog{}}
	res, err := b.measure(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	if !cfg.jsonOnly {
		printTable(stdout, res)
	}
	if err := printJSON(stdout, res); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

// bench holds what the measurements share.
type bench struct {
	cfg      config
	dir      string
	bin      string
	progress io.Writer
	// prev is, per sink, what the last drain run's bridge stored: raw
	// goes first in odd runs, publishing these (the same seed gives the
	// same traffic every run).
	prev map[string]backlog
	// profiles counts the CPU profiles written, to name them.
	profiles int
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.progress, "bench: "+format+"\n", args...)
}

func (b *bench) measure(ctx context.Context) (*result, error) {
	began := time.Now()
	res := &result{
		GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		Runs: b.cfg.runs, Events: b.cfg.events, Big: b.cfg.big, Rate: b.cfg.rate, Mix: b.cfg.mix,
		MaxResponseBytes: b.cfg.maxResponse, Checkpoint: b.cfg.checkpoint, Set: b.cfg.set, Spool: b.cfg.spool,
		DurationSeconds: b.cfg.duration.Seconds(), Load1Start: load1(),
		Sinks: map[string]*sinkResult{},
	}
	for _, s := range b.cfg.sinks {
		res.Sinks[s] = &sinkResult{}
	}
	if b.cfg.cpuprofile != "" {
		if err := os.MkdirAll(b.cfg.cpuprofile, 0o755); err != nil {
			return nil, fmt.Errorf("-cpuprofile: %w", err)
		}
	}
	b.bin = b.cfg.bridge
	if b.bin == "" {
		b.logf("building ./cmd/bridge")
		// With profiles, the binary stays beside them for go tool pprof.
		into := b.dir
		if b.cfg.cpuprofile != "" {
			into = b.cfg.cpuprofile
		}
		bin, err := buildBridge(ctx, into, b.dir, b.cfg.cpuprofile != "")
		if err != nil {
			return nil, err
		}
		b.bin = bin
	}
	res.BridgeBinary = cmp.Or(b.cfg.bridge, "go build ./cmd/bridge")
	avg, err := averageEventBytes(ctx, b.cfg.mix, b.cfg.seed, min(b.cfg.events, 20000))
	if err != nil {
		return nil, fmt.Errorf("measure the mix: %w", err)
	}
	res.AvgEventBytes = avg

	for run := 0; run < b.cfg.runs; run++ {
		for _, mode := range b.cfg.spools {
			runs, err := b.drainRun(ctx, run, mode)
			if err != nil {
				return nil, fmt.Errorf("drain run %d, BRIDGE_SPOOL=%s: %w", run+1, mode, err)
			}
			for s, r := range runs {
				res.Sinks[s].drain(mode).Runs = append(res.Sinks[s].drain(mode).Runs, r)
			}
		}
	}
	for _, s := range b.cfg.sinks {
		for _, mode := range b.cfg.spools {
			res.Sinks[s].drain(mode).summarize()
		}
	}
	for _, s := range b.cfg.sinks {
		lat, err := b.latency(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s latency: %w", s, err)
		}
		res.Sinks[s].Latency = lat
	}
	for _, s := range b.cfg.sinks {
		bf, err := b.backfill(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s backfill: %w", s, err)
		}
		res.Sinks[s].Backfill = bf
	}
	for _, s := range b.cfg.sinks {
		if b.cfg.big == 0 {
			break
		}
		big, err := b.bigBacklog(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("%s big backlog: %w", s, err)
		}
		res.Sinks[s].Big = big
	}
	res.Load1End = load1()
	res.Seconds = time.Since(began).Seconds()
	res.evaluate()
	return res, nil
}

// profilePath names the next CPU profile, or is empty without
// -cpuprofile.
func (b *bench) profilePath(what string) string {
	if b.cfg.cpuprofile == "" {
		return ""
	}
	b.profiles++
	p, err := filepath.Abs(filepath.Join(b.cfg.cpuprofile, fmt.Sprintf("%02d-%s.pprof", b.profiles, what)))
	if err != nil {
		return filepath.Join(b.cfg.cpuprofile, fmt.Sprintf("%02d-%s.pprof", b.profiles, what))
	}
	return p
}

// newSpec is a bridge against sim and br with its state in stateDir and
// BRIDGE_SPOOL=spoolMode (always set: the bridge's default depends on the
// checkpoint store and the broker, and a figure must say which it is).
func (b *bench) newSpec(sim *zuliptest.Server, stateDir string, br broker, spoolMode string) (*bridgeSpec, error) {
	env := append(br.env(), "BRIDGE_SPOOL="+spoolMode)
	if b.cfg.maxResponse > 0 {
		env = append(env, fmt.Sprintf("BRIDGE_ZULIP_MAX_RESPONSE_BYTES=%d", b.cfg.maxResponse))
	}
	if b.cfg.checkpoint == "broker" {
		store := "kafka"
		if _, ok := br.(*natsBroker); ok {
			store = "nats-kv"
		}
		env = append(env, "BRIDGE_CHECKPOINT="+store)
	}
	// -set comes last: it wins over the bench's own settings.
	return newBridgeSpec(b.bin, sim.URL, stateDir, append(env, b.cfg.set...))
}

// newSimulator starts the Zulip simulator with queues and heartbeats that
// outlast any measurement: nothing expires unless the bench expires it,
// and no heartbeat event joins a backlog.
func newSimulator() (*zuliptest.Server, error) {
	sim, err := zuliptest.New(zuliptest.Config{
		QueueTimeout:      24 * time.Hour,
		HeartbeatInterval: time.Hour,
		// The bridge's long-poll timeout follows the reported one, so
		// that an idle poll is not cut before the heartbeat.
		LongpollTimeout: time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("simulator: %w", err)
	}
	sim.Start()
	return sim, nil
}

// load1 is the one-minute load average, or -1 where /proc/loadavg is
// missing.
func load1() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	var l float64
	if _, err := fmt.Sscan(string(b), &l); err != nil {
		return -1
	}
	return l
}
