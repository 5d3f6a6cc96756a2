package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/kafkastore"
	"github.com/zulip-bridge/zulip-bridge/checkpoint/natskv"
	"github.com/zulip-bridge/zulip-bridge/internal/health"
	"github.com/zulip-bridge/zulip-bridge/internal/natsembed"
	"github.com/zulip-bridge/zulip-bridge/internal/retry"
	"github.com/zulip-bridge/zulip-bridge/leader"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	natssink "github.com/zulip-bridge/zulip-bridge/sink/nats"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/spool"
	"github.com/zulip-bridge/zulip-bridge/telemetry"
)

// app is the bridge's components, started in order and stopped in reverse,
// each with a deadline.
type app struct {
	cfg      *config
	log      *slog.Logger
	tel      *telemetry.Telemetry
	embedded *natsembed.Server
	natsURL  string
	client   *source.Client
	mapper   *mapping.Mapper
	sink     sink.Sink
	store    checkpoint.Store
	spool    *spool.Spool // nil with the spool off
	// pipeline is the running pipeline: the one of the current term with
	// leader election (nil while standing by), else the only one.
	pipeline atomic.Pointer[pipeline.Pipeline]
	// With leader election: the elector, the current term (nil while
	// standing by; every request to Zulip checks it), and the figures of
	// zulip_bridge_leader and zulip_bridge_leader_changes_total.
	elector leader.Elector
	term    atomic.Pointer[leader.Term]
	leading atomic.Bool
	changes atomic.Uint64
	// pipelineDeps are the pipeline's components, for a new pipeline per
	// term.
	pipelineDeps pipeline.Deps
	http         *http.Server
	httpAddr     net.Addr
	// zulipSeen is when a request to Zulip last completed (UnixNano), with
	// or without an error: while the source retries a failing server the
	// loop makes no progress of its own, yet it is alive, not wedged.
	zulipSeen atomic.Int64
	// up is set once every component has started; until then the probes
	// answer "starting" (and waiting says why, when start is waiting for
	// an unreachable NATS) instead of asking the components.
	up      atomic.Bool
	waiting atomic.Pointer[string]

	stops []namedStop // in start order; run in reverse
}

type namedStop struct {
	name string
	fn   func(ctx context.Context) error
}

func (a *app) onStop(name string, fn func(ctx context.Context) error) {
	a.stops = append(a.stops, namedStop{name, fn})
}

// start builds and starts every component. On error, what was started is
// stopped again before returning.
func start(ctx context.Context, cfg *config, log *slog.Logger) (a *app, err error) {
	a = &app{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.stop(context.Background(), 10*time.Second)
		}
	}()

	telCfg := cfg.Telemetry
	telCfg.ServiceVersion = Version()
	a.tel, err = telemetry.New(ctx, telCfg, log)
	if err != nil {
		return a, fmt.Errorf("telemetry: %w", err)
	}
	a.onStop("telemetry", a.tel.Shutdown)

	// The endpoints come first, so that /readyz can say what start waits
	// for (an unreachable NATS) rather than refuse connections.
	if cfg.Bridge.HTTPAddr != httpOff {
		if err := a.serveHTTP(); err != nil {
			return a, err
		}
	}

	a.client, err = source.NewClient(cfg.Zulip,
		source.WithLogger(log.With("component", "zulip")),
		source.WithVersion(Version()),
		source.WithTransportWrapper(func(rt http.RoundTripper) http.RoundTripper {
			return a.tel.RoundTripper(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if err := a.fenced(); err != nil {
					return nil, err
				}
				resp, err := rt.RoundTrip(r)
				a.zulipSeen.Store(time.Now().UnixNano())
				return resp, err
			}))
		}))
	if err != nil {
		return a, fmt.Errorf("zulip client: %w", err)
	}
	a.mapper, err = mapping.New(cfg.Mapping, a.client.Site())
	if err != nil {
		return a, fmt.Errorf("mapping: %w", err)
	}

	var (
		nc          *nats.Conn
		kafkaClient *kafka.Client
	)
	switch cfg.Bridge.Sink {
	case sinkNATS:
		natsCfg := cfg.NATS
		if natsCfg.URL == "" {
			a.embedded, err = natsembed.Start(natsembed.Config{Addr: cfg.Bridge.NATSEmbeddedAddr, StoreDir: cfg.Bridge.StateDir, Logger: log})
			if err != nil {
				return a, fmt.Errorf("%w (BRIDGE_NATS_EMBEDDED_ADDR=%s)", err, cfg.Bridge.NATSEmbeddedAddr)
			}
			a.onStop("embedded nats", a.embedded.Shutdown)
			natsCfg.URL = a.embedded.ClientURL()
			log.Info("started embedded NATS server with JetStream", "url", natsCfg.URL, "store_dir", cfg.Bridge.StateDir)
		}
		a.natsURL = natsCfg.URL
		// natssink labels its own log lines component=nats.
		natsCfg.SubjectPrefix = a.mapper.Prefix()
		redacted := natsCfg.RedactedURL()
		if err := a.reach(ctx, natsComponent(redacted), func(ctx context.Context) error {
			s, err := natssink.New(ctx, natsCfg, natssink.WithLogger(log))
			if err != nil {
				return err // natssink says "nats sink: ..." itself
			}
			a.sink = s
			a.onStop("nats sink", s.Close)
			return nil
		}); err != nil {
			return a, err
		}
		if cfg.Checkpoint.Kind == checkpoint.KindNATSKV || cfg.Leader.Election == leader.NATSKV {
			if err := a.reach(ctx, natsComponent(redacted), func(ctx context.Context) (err error) {
				nc, err = natssink.Connect(ctx, natsCfg, natssink.WithLogger(log))
				return err
			}); err != nil {
				return a, fmt.Errorf("nats checkpoint connection: %w", err)
			}
			a.onStop("nats checkpoint connection", func(context.Context) error { nc.Close(); return nil })
		}
	case sinkKafka:
		kafkaCfg := cfg.Kafka
		if kafkaCfg.TopicPrefix == "" {
			// The bridge owns the topics its mapping names: <prefix>.<type>.
			kafkaCfg.TopicPrefix = a.mapper.Prefix() + "."
		}
		s, err := kafkasink.New(ctx, kafkaCfg, kafkasink.WithLogger(log))
		if err != nil {
			return a, fmt.Errorf("kafka sink: %w", err)
		}
		a.sink = s
		a.onStop("kafka sink", s.Close)
		kafkaClient = s.Client()
	}

	switch cfg.Checkpoint.Kind {
	case checkpoint.KindFile:
		dir := cfg.Checkpoint.StateDir
		if dir == "" {
			dir = cfg.Bridge.StateDir
		}
		a.store, err = checkpoint.OpenFile(dir)
	case checkpoint.KindNATSKV:
		var js jetstream.JetStream
		if js, err = jetstream.New(nc); err == nil {
			a.store, err = natskv.Open(ctx, js, cfg.Checkpoint, a.client.Site())
		}
	case checkpoint.KindKafka:
		err = a.reach(ctx, kafkaComponent(cfg.Kafka.Brokers), func(ctx context.Context) (err error) {
			a.store, err = kafkastore.Open(ctx, kafkaClient, cfg.Checkpoint, a.client.Site())
			return err
		})
	}
	if err != nil {
		return a, fmt.Errorf("checkpoint store: %w", err)
	}
	a.onStop("checkpoint store", func(context.Context) error { return a.store.Close() })

	forwarded, err := a.openSpool()
	if err != nil {
		return a, err
	}

	maxBytes := 0
	if l, ok := a.sink.(sink.Limiter); ok {
		maxBytes = l.MaxMessageBytes()
	}
	a.pipelineDeps = pipeline.Deps{
		Site: a.client.Site(), Client: a.client, Mapper: a.mapper,
		Sink: a.tel.WrapSink(a.sink), Store: a.store, Logger: log, Observer: a.tel.Observer(),
		MaxMessageBytes: maxBytes, Spool: a.spool, Forwarded: forwarded,
	}
	if a.elector, err = a.newElector(nc); err != nil {
		return a, err
	}
	if a.elector == nil {
		// No election: this replica leads for the life of the process.
		a.leading.Store(true)
		p, err := pipeline.New(cfg.Pipeline, a.pipelineDeps)
		if err != nil {
			return a, err
		}
		a.pipeline.Store(p)
	} else if err := cfg.Pipeline.Validate(); err != nil {
		return a, err // checked now rather than at the first election
	}
	a.tel.ObserveLeader(a.leading.Load, a.changes.Load)

	a.up.Store(true)
	return a, nil
}

// openSpool opens the spool when it is on. With it off, a spool file left
// by an earlier run must hold nothing unforwarded (those events are
// acknowledged to Zulip and nowhere else); the broker position it recorded
// is returned, for a checkpoint that still names a spool position.
func (a *app) openSpool() (json.RawMessage, error) {
	dir := a.cfg.spoolDir()
	opts := spool.Options{MaxBytes: a.cfg.Spool.MaxBytes, Site: a.client.Site().String()}
	if a.cfg.spoolOn() {
		sp, err := spool.Open(dir, opts)
		if err != nil {
			return nil, fmt.Errorf("%w (BRIDGE_SPOOL_DIR=%s)", err, dir)
		}
		a.spool = sp
		a.onStop("spool", sp.Close)
		a.tel.ObserveSpool(sp.Stats)
		st := sp.Stats()
		a.log.Info("spool on: events are acknowledged to Zulip once durable in it", "path", sp.Path(), "pending", st.Pending, "bytes", st.Bytes, "max_bytes", st.Limit)
		if sp.Lowered() {
			a.log.Warn("spool limit lowered to half the filesystem holding it, so that a long outage cannot fill the disk under the checkpoint; give the volume more room or lower BRIDGE_SPOOL_MAX_BYTES",
				"max_bytes", st.Limit, "BRIDGE_SPOOL_MAX_BYTES", cmp.Or(a.cfg.Spool.MaxBytes, spool.DefaultMaxBytes))
		}
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(dir, spool.FileName)); err != nil {
		return nil, nil // never on here
	}
	sp, err := spool.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (BRIDGE_SPOOL=off; BRIDGE_SPOOL_DIR=%s)", err, dir)
	}
	defer sp.Close(context.Background())
	if st := sp.Stats(); st.Pending > 0 {
		return nil, fmt.Errorf("BRIDGE_SPOOL: off, but %s holds %d events acknowledged to Zulip and not yet forwarded to the broker: run with the spool on until zulip_bridge_spool_pending_events is 0, then turn it off (example: BRIDGE_SPOOL=on)", sp.Path(), st.Pending)
	}
	_, pos := sp.Forwarded()
	return pos, nil
}

// attemptTimeout bounds one attempt to reach a broker at start: connect to
// NATS and look up (or create) the stream, or look up the Kafka checkpoint
// topic.
const attemptTimeout = 10 * time.Second

// component is a broker the bridge may reach only after it started.
type component struct {
	name, variable, url string // url without credentials
	// unreachable tells "nobody answered" (retried) from an answer that
	// refuses (fails at once).
	unreachable func(error) bool
}

func natsComponent(redactedURL string) component {
	return component{name: "nats", variable: "BRIDGE_NATS_URL", url: redactedURL,
		unreachable: func(err error) bool { return errors.Is(err, natssink.ErrUnreachable) }}
}

func kafkaComponent(brokers []string) component {
	return component{name: "kafka", variable: "BRIDGE_KAFKA_BROKERS", url: strings.Join(brokers, ","),
		unreachable: func(err error) bool {
			var op *net.OpError
			return errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, context.DeadlineExceeded)
		}}
}

// reach runs open (connect to c) until it succeeds. An unreachable broker
// is retried with backoff while the endpoints are served, /readyz saying
// why, so that a bridge started before its broker (Kubernetes starts them
// together) waits instead of exiting into a crash loop; it logs once when
// the broker is unreachable and once when it is reached. Any other error,
// or an unreachable broker with BRIDGE_HTTP_ADDR=off (bridge check), fails
// at once.
func (a *app) reach(ctx context.Context, c component, open func(context.Context) error) error {
	p := retry.Policy{
		Backoff: retry.Exponential(100*time.Millisecond, 5*time.Second, nil),
		Permanent: func(err error) bool {
			return !c.unreachable(err) || a.http == nil || a.embedded != nil
		},
		OnRetry: func(f retry.Failure) {
			if f.Attempt == 1 {
				a.log.Warn(c.name+" unreachable, retrying", "url", c.url, "variable", c.variable, "error", f.Err)
			} else {
				a.log.Debug(c.name+" still unreachable", "url", c.url, "attempt", f.Attempt, "error", f.Err)
			}
			reason := f.Err.Error() + "; retrying"
			a.waiting.Store(&reason)
		},
		OnRecover: func(attempts int, waited time.Duration) {
			a.waiting.Store(nil)
			a.log.Info(c.name+" reachable, starting", "url", c.url, "variable", c.variable,
				"attempts", attempts, "waited", waited.Round(time.Millisecond).String())
		},
	}
	err := retry.Do(ctx, p, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		defer cancel()
		return open(actx)
	})
	var stop *retry.StopError
	if errors.As(err, &stop) {
		return fmt.Errorf("waiting for %s at %s (%s): %w", c.name, c.url, c.variable, err)
	}
	return err
}

// serveHTTP starts the health, readiness and metrics endpoints.
func (a *app) serveHTTP() error {
	ln, err := net.Listen("tcp", a.cfg.Bridge.HTTPAddr)
	if err != nil {
		return fmt.Errorf("BRIDGE_HTTP_ADDR: %w", err)
	}
	a.httpAddr = ln.Addr()
	stall := a.cfg.Pipeline.StallTimeout
	h := &health.Handler{
		Live: func() error {
			if !a.up.Load() {
				return nil // waiting for a component at start is not being wedged
			}
			p := a.pipeline.Load()
			if p == nil {
				return nil // a standby: nothing to be wedged in
			}
			snap := p.Status().Snapshot()
			if seen := time.Unix(0, a.zulipSeen.Load()); seen.After(snap.LastProgress) {
				snap.LastProgress = seen
			}
			return snap.Live(time.Now(), stall)
		},
		Ready: []health.Check{
			{Name: "zulip queue", Fn: func(context.Context) error {
				if !a.up.Load() {
					return errStarting
				}
				p := a.pipeline.Load()
				if p == nil {
					return nil // a standby is ready: it must not hold up a rollout
				}
				return p.Status().Snapshot().Ready()
			}},
			{Name: "broker", Fn: func(ctx context.Context) error {
				if !a.up.Load() {
					if w := a.waiting.Load(); w != nil {
						return errors.New(*w)
					}
					return errStarting
				}
				if rc, ok := a.sink.(sink.ReadyChecker); ok {
					return rc.Ready(ctx)
				}
				return nil
			}},
			{Name: "spool", Fn: func(ctx context.Context) error {
				if !a.up.Load() {
					return errStarting
				}
				if a.spool == nil {
					return nil
				}
				if st := a.spool.Stats(); st.Full {
					return fmt.Errorf("spool full (%d of %d bytes): nothing more is acknowledged to Zulip until the broker takes events", st.Bytes, st.Limit)
				}
				return nil
			}},
			{Name: "checkpoint store", Fn: func(ctx context.Context) error {
				if !a.up.Load() {
					return errStarting
				}
				return a.store.Check(ctx)
			}},
		},
		Metrics: a.tel.MetricsHandler(),
	}
	var handler http.Handler = h
	if a.cfg.Bridge.PProf {
		handler = withPProf(h)
	}
	a.http = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	go func() {
		if err := a.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "error", err)
		}
	}()
	a.log.Info("serving health, readiness and metrics", "addr", a.httpAddr.String(), "pprof", a.cfg.Bridge.PProf)
	a.onStop("http server", a.http.Shutdown)
	return nil
}

// errStarting is what the readiness checks say before start has finished.
var errStarting = errors.New("starting")

// withPProf serves net/http/pprof's handlers under /debug/pprof/ and
// everything else with h (BRIDGE_PPROF=true). They are registered on a mux
// of their own: importing net/http/pprof also registers them on
// http.DefaultServeMux (nats-server imports it too), which the bridge never
// serves, so with BRIDGE_PPROF unset /debug/pprof/ stays a 404.
//
// The server has no WriteTimeout, so /debug/pprof/profile?seconds=N and
// /debug/pprof/trace run as long as asked.
func withPProf(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also /debug/pprof/<profile>: heap, goroutine, allocs...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/", h)
	return mux
}

// stop stops the components in reverse order of start, each with its own
// deadline (and all within ctx's), so that one that hangs does not keep
// the others from stopping.
func (a *app) stop(ctx context.Context, each time.Duration) {
	for i := len(a.stops) - 1; i >= 0; i-- {
		s := a.stops[i]
		sctx, cancel := context.WithTimeout(ctx, each)
		if err := s.fn(sctx); err != nil {
			a.log.Warn("stopping "+s.name, "error", err)
		}
		cancel()
	}
	a.stops = nil
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// newLogger builds the process logger from BRIDGE_LOG_LEVEL and
// BRIDGE_LOG_FORMAT (validated before).
func newLogger(c bridgeConfig, w io.Writer) *slog.Logger {
	level, _ := parseLevel(c.LogLevel)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: telemetry.ReplaceLogAttr}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
