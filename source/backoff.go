package source

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
)

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry after a failure). Attempts start over after a success.
type Backoff func(attempt int) time.Duration

// ExponentialBackoff returns exponential backoff with full jitter: retry n
// waits a uniformly random time in [0, min(max, base*2^(n-1))). Full jitter
// spreads the retries of many clients hit by the same outage instead of
// having them come back in lockstep.
//
// rnd returns a number in [0, 1); nil means math/rand/v2's Float64. Tests
// pass a fixed sequence to get exact delays.
func ExponentialBackoff(base, max time.Duration, rnd func() float64) Backoff {
	if rnd == nil {
		rnd = rand.Float64
	}
	return func(attempt int) time.Duration {
		return time.Duration(rnd() * float64(backoffCeiling(base, max, attempt)))
	}
}

// backoffCeiling is min(max, base*2^(attempt-1)) without overflowing.
func backoffCeiling(base, max time.Duration, attempt int) time.Duration {
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

// retryDelay is how long to wait after the attempt-th consecutive failure:
// what the server asked for if it asked for longer than the backoff policy.
func retryDelay(b Backoff, attempt int, err error) time.Duration {
	d := b(attempt)
	if ra, ok := retryAfter(err); ok && ra > d {
		d = ra
	}
	return d
}

// sleep waits d on clock, or until ctx is done.
func sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) error {
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
