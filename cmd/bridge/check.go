package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// checkTimeout bounds each step of `bridge check`.
const checkTimeout = 20 * time.Second

// cmdCheck validates the configuration, then reaches Zulip (server
// settings, then register and delete a throwaway queue), the broker and the
// checkpoint store, printing one line per step. Exit 0 only if all pass.
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
	// A check runs beside a bridge that may be running: it must not take
	// its HTTP port, its embedded NATS server's port and storage, or its
	// checkpoint lock. Components start on throwaway state; the real
	// checkpoint store is checked on its own below.
	cfg.Bridge.HTTPAddr = httpOff
	scratch, err := os.MkdirTemp("", "zulip-bridge-check-")
	if err != nil {
		fmt.Fprintf(stdout, "FAIL scratch directory: %v\n", err)
		return exitFailed
	}
	defer os.RemoveAll(scratch)
	embedded := cfg.Bridge.Sink == sinkNATS && cfg.NATS.URL == ""
	if embedded {
		cfg.Bridge.NATSEmbeddedAddr = "127.0.0.1:0"
	}
	cfg.Bridge.StateDir = scratch
	realCheckpoint := cfg.Checkpoint
	if cfg.Checkpoint.Kind == checkpoint.KindFile {
		cfg.Checkpoint.StateDir = scratch
	}

	failed := false
	step := func(name string, fn func(ctx context.Context) (string, error)) {
		sctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		detail, err := fn(sctx)
		if err != nil {
			failed = true
			fmt.Fprintf(stdout, "FAIL %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(stdout, "ok   %s%s\n", name, detail)
	}

	a, err := start(ctx, cfg, log)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL start components: %v\n", err)
		return exitFailed
	}
	defer a.stop(context.Background(), 5*time.Second)

	step("zulip server settings", func(ctx context.Context) (string, error) {
		s, err := a.client.ServerSettings(ctx)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf(" (%s, Zulip %s, feature level %d)", a.client.Site(), s.ZulipVersion, s.FeatureLevel), nil
	})
	step("zulip register and delete a throwaway queue", func(ctx context.Context) (string, error) {
		reg, err := a.client.Register(ctx)
		if err != nil {
			return "", err
		}
		if err := a.client.DeleteQueue(ctx, reg.QueueID); err != nil {
			return "", fmt.Errorf("registered %s but could not delete it: %w", reg.QueueID, err)
		}
		return fmt.Sprintf(" (as %s)", a.client.Email()), nil
	})
	broker := "broker (" + cfg.Bridge.Sink + ")"
	if embedded {
		broker = "embedded NATS server with JetStream (started in a scratch directory)"
	}
	step(broker, func(ctx context.Context) (string, error) {
		if rc, ok := a.sink.(sink.ReadyChecker); ok {
			return "", rc.Ready(ctx)
		}
		return "", nil
	})
	step("checkpoint store ("+realCheckpoint.Kind+")", func(ctx context.Context) (string, error) {
		store := a.store
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
	if failed {
		return exitFailed
	}
	return exitOK
}
