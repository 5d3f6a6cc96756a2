package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/checkpoint"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// retryPipeline is the part of a Pipeline that retry uses: a fake clock,
// a backoff of n seconds before retry n, and a log.
func retryPipeline() (*Pipeline, *clockwork.FakeClock, *testutil.SyncBuffer) {
	fc := clockwork.NewFakeClock()
	logs := &testutil.SyncBuffer{}
	p := &Pipeline{
		clock:   fc,
		log:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		backoff: func(n int) time.Duration { return time.Duration(n) * time.Second },
	}
	return p, fc, logs
}

// TestRetryRecovers: failures are retried after the backoff's waits, the
// first is logged once, the recovery once with the attempts it took, and
// each attempt counts as progress.
func TestRetryRecovers(t *testing.T) {
	p, fc, logs := retryPipeline()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	attempts := 0
	var progress []time.Time
	done := make(chan error, 1)
	go func() {
		done <- p.retry(ctx, "write checkpoint", func() error {
			attempts++
			progress = append(progress, p.status.Snapshot().LastProgress)
			if attempts < 3 {
				return fmt.Errorf("store down %d", attempts)
			}
			return nil
		})
	}()
	start := fc.Now()
	for _, d := range []time.Duration{time.Second, 2 * time.Second} {
		if err := fc.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(d - time.Nanosecond)
		if err := fc.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		fc.Advance(time.Nanosecond)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("retry = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatalf("retry did not return after the waits %v (%d attempts)", progress, attempts)
	}
	want := []time.Time{start, start.Add(time.Second), start.Add(3 * time.Second)}
	if attempts != 3 || len(progress) != 3 || !progress[0].Equal(want[0]) || !progress[1].Equal(want[1]) || !progress[2].Equal(want[2]) {
		t.Errorf("%d attempts, progress at %v, want 3 at %v", attempts, progress, want)
	}
	out := logs.String()
	if n := strings.Count(out, "write checkpoint: failed, retrying"); n != 1 || !strings.Contains(out, "store down 1") {
		t.Errorf("failure logged %d times, want once with the first error:\n%s", n, out)
	}
	if n := strings.Count(out, "write checkpoint: recovered"); n != 1 || !strings.Contains(out, "attempts=3") {
		t.Errorf("recovery logged %d times, want once with attempts=3:\n%s", n, out)
	}
}

// TestRetryErrors: what retry returns when it gives up: a permanent error
// at once, wrapped; a stop during the wait with the context's error only;
// a stop seen after a failed attempt with both, even a permanent one.
func TestRetryErrors(t *testing.T) {
	boom := errors.New("boom")
	t.Run("permanent", func(t *testing.T) {
		p, _, logs := retryPipeline()
		attempts := 0
		err := p.retry(t.Context(), "write checkpoint", func() error {
			attempts++
			return fmt.Errorf("%w: %w", checkpoint.ErrConflict, boom)
		})
		if attempts != 1 || !errors.Is(err, checkpoint.ErrConflict) || errors.Is(err, context.Canceled) ||
			err.Error() != "write checkpoint: "+checkpoint.ErrConflict.Error()+": boom" {
			t.Errorf("after %d attempts: %v, want one attempt and the error wrapped", attempts, err)
		}
		if strings.Contains(logs.String(), "retrying") {
			t.Errorf("a permanent error logged as retried:\n%s", logs)
		}
	})
	t.Run("stopped during the wait", func(t *testing.T) {
		p, fc, _ := retryPipeline()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.retry(ctx, "write checkpoint", func() error { return boom }) }()
		if err := fc.BlockUntilContext(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		cancel()
		err := <-done
		if !errors.Is(err, context.Canceled) || errors.Is(err, boom) || err.Error() != "write checkpoint: context canceled" {
			t.Errorf("retry = %v, want the context's error alone", err)
		}
	})
	for _, opErr := range []error{boom, fmt.Errorf("%w: %w", checkpoint.ErrLocked, boom)} {
		t.Run(fmt.Sprintf("stopped during %q", opErr), func(t *testing.T) {
			p, _, _ := retryPipeline()
			ctx, cancel := context.WithCancel(t.Context())
			err := p.retry(ctx, "write checkpoint", func() error { cancel(); return opErr })
			if !errors.Is(err, context.Canceled) || !errors.Is(err, boom) || err.Error() != "write checkpoint: context canceled: "+opErr.Error() {
				t.Errorf("retry = %v, want the context's error and the attempt's", err)
			}
		})
	}
}
