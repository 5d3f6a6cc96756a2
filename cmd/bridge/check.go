package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/natsembed"
	"github.com/zulip-bridge/zulip-bridge/leader"
	"github.com/zulip-bridge/zulip-bridge/sink"
	kafkasink "github.com/zulip-bridge/zulip-bridge/sink/kafka"
	"github.com/zulip-bridge/zulip-bridge/source"
	"github.com/zulip-bridge/zulip-bridge/spool"
)

// checkTimeout bounds each step of `bridge check` (the Kafka broker step:
// BRIDGE_KAFKA_DIAL_TIMEOUT).
const checkTimeout = 20 * time.Second

// checkIdentifyTimeout bounds asking what holds an address in use.
const checkIdentifyTimeout = time.Second

// cmdCheck validates the configuration, then tries what `bridge run` will
// use: it binds (and releases) the addresses run listens on, reaches Zulip
// (server settings, then register and delete a throwaway queue), the broker
// and the checkpoint store, printing one line per step. Every step runs even
// when an earlier one failed. Exit 0 only if all pass.
func cmdCheck(ctx context.Context, environ []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintln(stdout, "FAIL configuration")
		printConfigError(stderr, err)
		return exitConfig
	}
	// Where the credentials came from (names only, never a value), so that
	// a zuliprc found or missed by the $HOME/.zuliprc fallback shows.
	fmt.Fprintf(stdout, "ok   configuration (Zulip credentials: %s)\n", cfg.Zulip.CredentialsOrigin())
	// Components log to stderr at warn: the report on stdout is the output.
	quiet := cfg.Bridge
	quiet.LogLevel = "warn"
	log := newLogger(quiet, stderr)

	failed := false
	step := func(name string, timeout time.Duration, fn func(ctx context.Context) (string, error)) bool {
		sctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		detail, err := fn(sctx)
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %v\n", name, err)
			return false
		}
		fmt.Fprintf(stdout, "ok   %s%s\n", name, detail)
		return true
	}

	// The addresses run listens on, bound exactly as run binds them and
	// released at once. One held by a running bridge (this check beside
	// it, with its configuration) is reported as such, as its checkpoint
	// lock is below.
	embedded := cfg.Bridge.Sink == sinkNATS && cfg.NATS.URL == ""
	if cfg.Bridge.HTTPAddr != httpOff {
		addr := cfg.Bridge.HTTPAddr
		step("listen on "+addr+" (BRIDGE_HTTP_ADDR)", checkTimeout, func(ctx context.Context) (string, error) {
			return checkListen(ctx, addr, "BRIDGE_HTTP_ADDR", "BRIDGE_HTTP_ADDR=:9090", runningBridgeHTTP)
		})
	}
	if embedded {
		addr := cfg.Bridge.NATSEmbeddedAddr
		step("listen on "+addr+" (BRIDGE_NATS_EMBEDDED_ADDR, the embedded NATS server)", checkTimeout, func(ctx context.Context) (string, error) {
			return checkListen(ctx, addr, "BRIDGE_NATS_EMBEDDED_ADDR", "BRIDGE_NATS_EMBEDDED_ADDR=127.0.0.1:4223", runningBridgeNATS)
		})
	}

	// Zulip, with a client of its own: it needs no other component.
	client, err := source.NewClient(cfg.Zulip, source.WithLogger(log.With("component", "zulip")), source.WithVersion(Version()))
	if err != nil {
		failed = true
		fmt.Fprintf(stdout, "FAIL zulip client: %v\n", err)
	} else {
		step("zulip server settings", checkTimeout, func(ctx context.Context) (string, error) {
			s, err := client.ServerSettings(ctx)
			if err != nil {
				return "", zulipError(client.Site(), err)
			}
			return fmt.Sprintf(" (%s, Zulip %s, feature level %d)", client.Site(), s.ZulipVersion, s.FeatureLevel), nil
		})
		step("zulip register and delete a throwaway queue", checkTimeout, func(ctx context.Context) (string, error) {
			reg, err := client.Register(ctx)
			if err != nil {
				return "", zulipError(client.Site(), err)
			}
			if err := client.DeleteQueue(ctx, reg.QueueID); err != nil {
				return "", fmt.Errorf("registered %s but could not delete it: %w", reg.QueueID, zulipError(client.Site(), err))
			}
			return fmt.Sprintf(" (as %s)", client.Email()), nil
		})
	}

	// A check runs beside a bridge that may be running: the components
	// start without its HTTP port, its embedded NATS server's port and
	// storage, or its checkpoint lock, on throwaway state; the real
	// checkpoint store is checked on its own below.
	realCheckpoint := cfg.Checkpoint
	broker := "broker (" + cfg.Bridge.Sink + ")"
	if embedded {
		broker = "embedded NATS server with JetStream (started in a scratch directory)"
	}
	var (
		a       *app
		skipped error // why the broker or checkpoint step cannot run
	)
	brokerDone := false
	if cfg.Bridge.Sink == sinkKafka {
		// Kafka first, on its own, within BRIDGE_KAFKA_DIAL_TIMEOUT: an
		// unresponsive broker fails here, not after every later step's
		// timeout.
		brokerDone = true
		if !step(broker, kafkaCheckTimeout(cfg), func(ctx context.Context) (string, error) {
			return "", checkKafka(ctx, cfg)
		}) {
			skipped = errors.New("not checked: the broker did not answer")
		}
	}
	if skipped == nil {
		a, skipped = startScratch(ctx, cfg, log)
		if skipped != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL start components: %v\n", skipped)
			skipped = errors.New("not checked: the components did not start")
		} else {
			defer a.stop(context.Background(), 5*time.Second)
		}
	}
	if !brokerDone {
		step(broker, checkTimeout, func(ctx context.Context) (string, error) {
			if a == nil {
				return "", skipped
			}
			if rc, ok := a.sink.(sink.ReadyChecker); ok {
				return "", rc.Ready(ctx)
			}
			return "", nil
		})
	}
	step("checkpoint store ("+realCheckpoint.Kind+")", checkTimeout, func(ctx context.Context) (string, error) {
		var store checkpoint.Store
		if realCheckpoint.Kind == checkpoint.KindFile {
			fs, err := checkpoint.OpenFile(realCheckpoint.StateDir)
			if errors.Is(err, checkpoint.ErrLocked) {
				return " (held by a running bridge)", nil
			}
			if err != nil {
				return "", err
			}
			defer fs.Close()
			store = fs
		} else if a == nil {
			return "", skipped
		} else {
			store = a.store
		}
		if err := store.Check(ctx); err != nil {
			return "", err
		}
		cp, found, err := store.Load(ctx)
		switch {
		case err != nil:
			return "", err
		case !found:
			return " (no checkpoint yet: the bridge will register a new queue)", nil
		}
		return fmt.Sprintf(" (resumes queue %s after event %d)", cp.QueueID, cp.LastEventID), nil
	})
	checkSpool(cfg, step)
	if cfg.Leader.Enabled() {
		step("leader election ("+cfg.Leader.Election+")", checkTimeout, func(ctx context.Context) (string, error) {
			if a == nil {
				return "", skipped
			}
			return checkElection(ctx, a.elector)
		})
	}
	if failed {
		return exitFailed
	}
	return exitOK
}

// checkSpool reports the spool: why it is off, or what the real one holds.
func checkSpool(cfg *config, step func(name string, timeout time.Duration, fn func(ctx context.Context) (string, error)) bool) {
	if !cfg.spoolOn() {
		why := "BRIDGE_SPOOL=off"
		switch {
		case cfg.Spool.Mode == spool.ModeOff:
		case cfg.Checkpoint.Kind != checkpoint.KindFile:
			why = "the " + cfg.Checkpoint.Kind + " checkpoint keeps no local state (BRIDGE_SPOOL=on turns it on)"
		default:
			why = "the embedded NATS server's stream is local and durable already (BRIDGE_SPOOL=on turns it on)"
		}
		step("spool", checkTimeout, func(context.Context) (string, error) { return " (off: " + why + ")", nil })
		return
	}
	dir := cfg.spoolDir()
	step("spool ("+filepath.Join(dir, spool.FileName)+", BRIDGE_SPOOL_DIR)", checkTimeout, func(context.Context) (string, error) {
		site, _ := source.ParseSite(cfg.Zulip.Site) // checked by loadConfig
		sp, err := spool.Open(dir, spool.Options{MaxBytes: cfg.Spool.MaxBytes, Site: site.String()})
		if errors.Is(err, spool.ErrLocked) {
			return " (held by a running bridge)", nil
		}
		if err != nil {
			return "", err
		}
		defer sp.Close(context.Background())
		st := sp.Stats()
		return fmt.Sprintf(" (on: %d events waiting for the broker, %d of %d bytes used)", st.Pending, st.Bytes, st.Limit), nil
	})
}

// checkElection reads who leads, without campaigning: a check beside the
// running replicas must not take the lease from them.
func checkElection(ctx context.Context, el leader.Elector) (string, error) {
	r, err := el.Current(ctx)
	switch {
	case err != nil:
		return "", err
	case r.Holder == "":
		return fmt.Sprintf(" (%s: no leader: the first replica to campaign takes it)", r.Where), nil
	case r.Expired:
		return fmt.Sprintf(" (%s: held by %s, not renewed since %s: a standby takes it over)", r.Where, r.Holder, r.Renewed.UTC().Format(time.RFC3339)), nil
	}
	return fmt.Sprintf(" (%s: held by %s, renewed %s)", r.Where, r.Holder, r.Renewed.UTC().Format(time.RFC3339)), nil
}

// startScratch starts the components as run does, but without the HTTP
// endpoints, with the embedded NATS server (if any) on a free port, on a
// scratch state directory (removed when the app stops), within
// checkTimeout.
func startScratch(ctx context.Context, cfg *config, log *slog.Logger) (*app, error) {
	c := *cfg
	c.Bridge.HTTPAddr = httpOff
	scratch, err := os.MkdirTemp("", "zulip-bridge-check-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	if c.Bridge.Sink == sinkNATS && c.NATS.URL == "" {
		c.Bridge.NATSEmbeddedAddr = "127.0.0.1:0"
	}
	c.Bridge.StateDir = scratch
	c.Spool.Dir = scratch
	if c.Checkpoint.Kind == checkpoint.KindFile {
		c.Checkpoint.StateDir = scratch
	}
	sctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	a, err := start(sctx, &c, log)
	if err != nil {
		os.RemoveAll(scratch)
		return nil, err
	}
	// Removed last: stops run in reverse order.
	a.stops = append([]namedStop{{"scratch directory", func(context.Context) error { return os.RemoveAll(scratch) }}}, a.stops...)
	return a, nil
}

// checkListen binds addr as run will (net.Listen "tcp", as the HTTP server
// and nats-server do) and releases it. An address in use fails at once,
// naming it and its variable, unless identify finds a running bridge
// holding it.
func checkListen(ctx context.Context, addr, variable, example string, identify func(ctx context.Context, addr string) bool) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return "", ln.Close()
	}
	if !errors.Is(err, syscall.EADDRINUSE) {
		return "", fmt.Errorf("%w (example: %s)", err, example)
	}
	ictx, cancel := context.WithTimeout(ctx, checkIdentifyTimeout)
	defer cancel()
	if identify(ictx, addr) {
		return " (in use by a running bridge)", nil
	}
	return "", fmt.Errorf("address already in use: bridge run would fail to listen on it; stop what holds it or set %s to another address (example: %s)", variable, example)
}

// dialAddr is where a client reaches a listen address: a wildcard or empty
// host is reached on the loopback address.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// runningBridgeHTTP reports whether the bridge's endpoints answer on addr:
// /readyz lists the bridge's readiness checks.
func runningBridgeHTTP(ctx context.Context, addr string) bool {
	_, body, err := probeGet(ctx, "http://"+dialAddr(addr)+"/readyz")
	return err == nil && strings.Contains(body, "zulip queue: ") && strings.Contains(body, "checkpoint store: ")
}

// runningBridgeNATS reports whether the NATS server on addr is a bridge's
// embedded one: its INFO names it.
func runningBridgeNATS(ctx context.Context, addr string) bool {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", dialAddr(addr))
	if err != nil {
		return false
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	line, err := bufio.NewReader(io.LimitReader(conn, 64<<10)).ReadString('\n')
	if err != nil {
		return false
	}
	info, ok := strings.CutPrefix(strings.TrimSpace(line), "INFO ")
	if !ok {
		return false
	}
	var v struct {
		ServerName string `json:"server_name"`
	}
	return json.Unmarshal([]byte(info), &v) == nil && v.ServerName == natsembed.ServerName
}

// zulipError names the site and its variable in an error reaching Zulip
// (no complete response: refused, reset, TLS, timeout); an answer from the
// server (a wrong key...) is shown as it is.
func zulipError(site source.Site, err error) error {
	var te *source.TransportError
	if errors.As(err, &te) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("cannot reach Zulip at %s (ZULIP_SITE): %w", site, err)
	}
	return err
}

// kafkaCheckTimeout is how long check waits for the Kafka brokers:
// BRIDGE_KAFKA_DIAL_TIMEOUT.
func kafkaCheckTimeout(cfg *config) time.Duration {
	if d := cfg.Kafka.DialTimeout; d > 0 {
		return d
	}
	return kafkasink.DefaultDialTimeout
}

// checkKafka asks the brokers for their API versions and metadata (the
// sink's readiness check) with a sink of its own, naming the brokers and
// the variables in an error.
func checkKafka(ctx context.Context, cfg *config) error {
	brokers := strings.Join(cfg.Kafka.Brokers, ",")
	s, err := kafkasink.New(ctx, cfg.Kafka)
	if err != nil {
		return fmt.Errorf("kafka sink: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = s.Close(cctx)
	}()
	err = s.Ready(ctx)
	// The dialer's own timeout is the step's: whichever fires first, the
	// brokers did not answer in time.
	var ne net.Error
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("brokers %s (BRIDGE_KAFKA_BROKERS) did not answer within %s (BRIDGE_KAFKA_DIAL_TIMEOUT): %w",
			brokers, kafkaCheckTimeout(cfg), err)
	default:
		return fmt.Errorf("brokers %s (BRIDGE_KAFKA_BROKERS): %w", brokers, err)
	}
}
