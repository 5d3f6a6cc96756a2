package retry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

// waitClock is a fake clock that reports every wait Do starts, once the
// timer is set, so that a test advances by exactly that wait.
type waitClock struct {
	*clockwork.FakeClock
	waits chan time.Duration
}

func newWaitClock() *waitClock {
	return &waitClock{FakeClock: clockwork.NewFakeClock(), waits: make(chan time.Duration, 100)}
}

func (c *waitClock) NewTimer(d time.Duration) clockwork.Timer {
	t := c.FakeClock.NewTimer(d)
	c.waits <- d
	return t
}

// run starts Do in the background and returns its result's channel.
func run(ctx context.Context, p Policy, op func(context.Context) error) <-chan error {
	done := make(chan error, 1)
	go func() { done <- Do(ctx, p, op) }()
	return done
}

// drive advances clock through every wait Do starts until Do returns, and
// returns Do's error and the waits.
func drive(t *testing.T, clock *waitClock, done <-chan error) (error, []time.Duration) {
	t.Helper()
	var waits []time.Duration
	deadline := time.After(10 * time.Second)
	for {
		select {
		case d := <-clock.waits:
			waits = append(waits, d)
			clock.Advance(d)
		case err := <-done:
			return err, waits
		case <-deadline:
			t.Fatalf("Do did not return; waits so far %v", waits)
		}
	}
}

// failing returns an op that fails with errs in turn, then succeeds, and
// counts its calls.
func failing(calls *int, errs ...error) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= len(errs) {
			return errs[*calls-1]
		}
		return nil
	}
}

func linear(attempt int) time.Duration { return time.Duration(attempt) * time.Second }

func TestDoRetriesUntilSuccess(t *testing.T) {
	clock := newWaitClock()
	var (
		retries   []Failure
		recovered []string
		calls     int
	)
	e1, e2, e3 := errors.New("one"), errors.New("two"), errors.New("three")
	p := Policy{
		Backoff:   linear,
		Clock:     clock,
		OnRetry:   func(f Failure) { retries = append(retries, f) },
		OnRecover: func(n int, down time.Duration) { recovered = append(recovered, fmt.Sprint(n, " ", down)) },
	}
	err, waits := drive(t, clock, run(t.Context(), p, failing(&calls, e1, e2, e3)))
	if err != nil {
		t.Fatalf("Do = %v, want nil", err)
	}
	if calls != 4 {
		t.Errorf("op called %d times, want 4", calls)
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}; !slices.Equal(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	want := []Failure{{1, time.Second, e1}, {2, 2 * time.Second, e2}, {3, 3 * time.Second, e3}}
	if !slices.Equal(retries, want) {
		t.Errorf("OnRetry got %v, want %v", retries, want)
	}
	// Down from the first failure to the success: the three waits.
	if want := []string{"4 6s"}; !slices.Equal(recovered, want) {
		t.Errorf("OnRecover got %v, want %v", recovered, want)
	}
}

func TestDoFirstSuccessTellsNothing(t *testing.T) {
	clock := newWaitClock()
	told := 0
	p := Policy{Clock: clock, OnRetry: func(Failure) { told++ }, OnRecover: func(int, time.Duration) { told++ }}
	calls := 0
	if err := Do(t.Context(), p, failing(&calls)); err != nil || calls != 1 {
		t.Fatalf("Do = %v after %d call(s), want nil after 1", err, calls)
	}
	if told != 0 || len(clock.waits) != 0 {
		t.Errorf("a first success told the hooks %d time(s) and waited %d time(s)", told, len(clock.waits))
	}
}

func TestDoPermanent(t *testing.T) {
	clock := newWaitClock()
	transient, fatal := errors.New("transient"), fmt.Errorf("wrapped: %w", errors.ErrUnsupported)
	var retries []int
	p := Policy{
		Backoff:   linear,
		Clock:     clock,
		Permanent: func(err error) bool { return errors.Is(err, errors.ErrUnsupported) },
		OnRetry:   func(f Failure) { retries = append(retries, f.Attempt) },
	}
	calls := 0
	err, waits := drive(t, clock, run(t.Context(), p, failing(&calls, transient, fatal, nil)))
	if err != fatal {
		t.Fatalf("Do = %v, want the permanent error as it is", err)
	}
	if calls != 2 || !slices.Equal(waits, []time.Duration{time.Second}) || !slices.Equal(retries, []int{1}) {
		t.Errorf("%d call(s), waits %v, retries %v: want 2, [1s], [1]", calls, waits, retries)
	}
}

func TestDoAttempts(t *testing.T) {
	clock := newWaitClock()
	errs := []error{errors.New("a"), errors.New("b"), errors.New("c"), errors.New("d")}
	calls := 0
	err, waits := drive(t, clock, run(t.Context(), Policy{Backoff: linear, Clock: clock, Attempts: 3}, failing(&calls, errs...)))
	if err != errs[2] {
		t.Errorf("Do = %v, want the third attempt's error", err)
	}
	if calls != 3 || len(waits) != 2 {
		t.Errorf("%d call(s) and %d wait(s), want 3 and 2", calls, len(waits))
	}
}

func TestDoStopDuringWait(t *testing.T) {
	clock := newWaitClock()
	ctx, cancel := context.WithCancel(t.Context())
	boom := errors.New("boom")
	done := run(ctx, Policy{Backoff: linear, Clock: clock}, func(context.Context) error { return boom })
	<-clock.waits
	cancel()
	err := <-done
	var stop *StopError
	if !errors.As(err, &stop) || stop.Last != boom {
		t.Fatalf("Do = %#v, want a *StopError with the last error", err)
	}
	if !errors.Is(err, context.Canceled) || errors.Is(err, boom) {
		t.Errorf("Do = %v: want it to match context.Canceled and not the attempt's error", err)
	}
	if want := "context canceled (last error: boom)"; err.Error() != want {
		t.Errorf("Do = %q, want %q", err, want)
	}
}

func TestDoStopDuringAttempt(t *testing.T) {
	clock := newWaitClock()
	ctx, cancel := context.WithCancel(t.Context())
	calls := 0
	err := Do(ctx, Policy{Clock: clock}, func(ctx context.Context) error {
		calls++
		cancel()
		return fmt.Errorf("attempt: %w", ctx.Err())
	})
	if _, ok := errors.AsType[*StopError](err); !ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Do = %v, want a *StopError matching context.Canceled", err)
	}
	if calls != 1 || len(clock.waits) != 0 {
		t.Errorf("%d call(s), %d wait(s) after the stop, want 1 and none", calls, len(clock.waits))
	}

	// A permanent error is returned as it is, even when ctx ended too.
	fatal := errors.New("fatal")
	ctx, cancel = context.WithCancel(t.Context())
	err = Do(ctx, Policy{Clock: clock, Permanent: func(err error) bool { return err == fatal }}, func(context.Context) error {
		cancel()
		return fatal
	})
	if err != fatal {
		t.Errorf("Do = %v, want the permanent error", err)
	}
}

func TestPolicyWait(t *testing.T) {
	retryAfter := func(err error) time.Duration {
		if d, err := time.ParseDuration(strings.TrimPrefix(err.Error(), "retry after ")); err == nil {
			return d
		}
		return 0
	}
	p := Policy{Backoff: linear, After: retryAfter}
	tests := []struct {
		attempt int
		err     error
		want    time.Duration
	}{
		{1, errors.New("plain"), time.Second},
		{1, errors.New("retry after 2500ms"), 2500 * time.Millisecond},
		{3, errors.New("retry after 2500ms"), 3 * time.Second},
	}
	for _, tt := range tests {
		if got := p.Wait(tt.attempt, tt.err); got != tt.want {
			t.Errorf("Wait(%d, %v) = %v, want %v", tt.attempt, tt.err, got, tt.want)
		}
	}
	// The zero Policy's backoff: full jitter under 100ms, doubling.
	for attempt, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 3: 400 * time.Millisecond, 20: 30 * time.Second} {
		if d := (Policy{}).Wait(attempt, errors.New("x")); d < 0 || d >= ceiling {
			t.Errorf("zero Policy: Wait(%d) = %v, want in [0, %v)", attempt, d, ceiling)
		}
	}
}

func TestJittered(t *testing.T) {
	for _, f := range []float64{0, 0.5, 0.999} {
		b := Jittered(100*time.Millisecond, 5*time.Second, 0.2, func() float64 { return f })
		for attempt := 1; attempt <= 10; attempt++ {
			ceil := Ceiling(100*time.Millisecond, 5*time.Second, attempt)
			want := ceil + time.Duration(f*(0.2*float64(ceil)+1))
			if got := b(attempt); got != want {
				t.Errorf("rnd %v attempt %d: %v, want %v", f, attempt, got, want)
			}
		}
	}
	b := Jittered(time.Second, 8*time.Second, 0.2, nil)
	seen := map[time.Duration]bool{}
	for range 50 {
		d := b(2)
		if d < 2*time.Second || d > 2400*time.Millisecond {
			t.Fatalf("delay %v outside [2s, 2.4s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatal("50 jittered delays were all equal")
	}
}
