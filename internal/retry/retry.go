package retry

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
)

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry after a failure). Attempts start over after a success.
type Backoff func(attempt int) time.Duration

// Exponential returns exponential backoff with full jitter: retry n waits a
// uniformly random time in [0, Ceiling(base, max, n)). Full jitter spreads
// the retries of many clients hit by the same outage instead of having
// them come back in lockstep. rnd returns a number in [0, 1); nil means
// math/rand/v2's Float64. Tests pass a fixed sequence to get exact delays.
func Exponential(base, max time.Duration, rnd func() float64) Backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return func(attempt int) time.Duration {
		return time.Duration(rnd() * float64(Ceiling(base, max, attempt)))
	}
}

// Jittered returns exponential backoff that never waits less than its
// ceiling: retry n waits Ceiling(base, max, n) plus a uniformly random
// extra of up to frac of it. Unlike Exponential's full jitter it keeps a
// floor, for retries that are cheap to make but pointless to make at once
// (a reconnect). rnd as for Exponential.
func Jittered(base, max time.Duration, frac float64, rnd func() float64) Backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return func(attempt int) time.Duration {
		d := Ceiling(base, max, attempt)
		return d + time.Duration(rnd()*(frac*float64(d)+1))
	}
}

// Ceiling is min(max, base*2^(attempt-1)) without overflowing; attempts
// below 1 count as 1.
func Ceiling(base, max time.Duration, attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := base
	for i := 1; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max || d <= 0 {
		d = max
	}
	return d
}

// Sleep waits d on clock, or until ctx is done, whose error it returns. A
// d of zero or less returns at once, with ctx's error if it is done.
func Sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.Chan():
		return nil
	}
}
