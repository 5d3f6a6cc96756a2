package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/crashpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/envconfig"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// cmdRun runs the bridge until SIGTERM/SIGINT (ctx) or a fatal error.
func cmdRun(ctx context.Context, environ []string, _, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		printConfigError(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg.Bridge, stderr)
	if err := crashpoint.Arm(envconfig.ToMap(environ)[crashpoint.EnvVar]); err != nil {
		fmt.Fprintln(stderr, "bridge:", err)
		return exitConfig
	}
	// The parsed site, not the variable: it is what every component uses.
	site, _ := source.ParseSite(cfg.Zulip.Site) // checked by loadConfig
	log.Info("starting zulip-bridge", "version", Version(), "sink", cfg.Bridge.Sink, "site", site.String(), "checkpoint", cfg.Checkpoint.Kind)
	total := cfg.Pipeline.ShutdownTimeout
	cfg.Pipeline.ShutdownTimeout = drainBudget(total)
	a, err := start(ctx, cfg, log)
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while waiting for a component (NATS unreachable):
			// nothing was read from Zulip, so nothing is left behind.
			log.Info("stop requested before start-up finished: exiting", "waiting_for", err)
			return exitOK
		}
		log.Error("start failed", "error", err)
		return exitFailed
	}
	var stopAt time.Time
	stopped := make(chan struct{})
	context.AfterFunc(ctx, func() { stopAt = time.Now(); close(stopped) })
	runErr := a.run(ctx)
	// The pipeline has confirmed and checkpointed what it read (or given
	// up at its share of the shutdown timeout, saying so at warn); what
	// remains is closing connections and flushing telemetry, within the
	// rest of it.
	deadline := time.Now().Add(total)
	select {
	case <-stopped:
		deadline = stopAt.Add(total)
		log.Info("stop requested: closing connections")
	default:
	}
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	a.stop(sctx, total)
	cancel()
	if runErr != nil {
		log.Error("bridge stopped", "error", runErr)
		return exitFailed
	}
	log.Info("bridge stopped")
	return exitOK
}

// drainBudget is the share of BRIDGE_SHUTDOWN_TIMEOUT that the pipeline may
// spend finishing the batch in flight; the rest (a quarter, at most 5s) is
// kept for closing connections and flushing telemetry, so that the whole
// stop fits in the timeout.
func drainBudget(total time.Duration) time.Duration {
	return total - min(total/4, 5*time.Second)
}

func printConfigError(w io.Writer, err error) {
	fmt.Fprintln(w, "bridge: invalid configuration:")
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintln(w, "  "+line)
		}
	}
}
