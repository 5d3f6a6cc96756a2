package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
)

// cmdRun runs the bridge until SIGTERM/SIGINT (ctx) or a fatal error.
func cmdRun(ctx context.Context, environ []string, _, stderr io.Writer) int {
	cfg, err := loadConfig(environ)
	if err != nil {
		printConfigError(stderr, err)
		return exitConfig
	}
	log := newLogger(cfg.Bridge, stderr)
	log.Info("starting zulip-bridge", "version", Version(), "sink", cfg.Bridge.Sink, "site", cfg.Zulip.Site, "checkpoint", cfg.Checkpoint.Kind)
	a, err := start(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "error", err)
		return exitFailed
	}
	runErr := a.pipeline.Run(ctx)
	// The pipeline has confirmed and checkpointed its last batch (or given
	// up at the shutdown deadline); what remains is closing connections.
	a.stop(context.Background(), stopTimeout(cfg))
	if runErr != nil {
		log.Error("bridge stopped", "error", runErr)
		return exitFailed
	}
	log.Info("bridge stopped")
	return exitOK
}

// stopTimeout is the deadline of each component's stop: a share of the
// shutdown timeout, at least one second.
func stopTimeout(cfg *config) time.Duration {
	return max(time.Second, cfg.Pipeline.ShutdownTimeout/4)
}

func printConfigError(w io.Writer, err error) {
	fmt.Fprintln(w, "bridge: invalid configuration:")
	for _, line := range strings.Split(err.Error(), "\n") {
		if line != "" {
			fmt.Fprintln(w, "  "+line)
		}
	}
}
