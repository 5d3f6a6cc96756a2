package source

import (
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/retry"
)

// Backoff returns how long to wait before retry number attempt (1 for the
// first retry after a failure). Attempts start over after a success.
type Backoff = retry.Backoff

// ExponentialBackoff returns exponential backoff with full jitter: retry n
// waits a uniformly random time in [0, min(max, base*2^(n-1))). Full jitter
// spreads the retries of many clients hit by the same outage instead of
// having them come back in lockstep.
//
// rnd returns a number in [0, 1); nil means math/rand/v2's Float64. Tests
// pass a fixed sequence to get exact delays.
func ExponentialBackoff(base, max time.Duration, rnd func() float64) Backoff {
	return retry.Exponential(base, max, rnd)
}

// retryDelay is how long to wait after the attempt-th consecutive failure:
// what the server asked for if it asked for longer than the backoff policy.
func retryDelay(b Backoff, attempt int, err error) time.Duration {
	return retry.Policy{Backoff: b, After: serverWait}.Wait(attempt, err)
}

// serverWait is how long the server asked to wait before the next request
// (Retry-After), zero if it did not ask.
func serverWait(err error) time.Duration {
	d, _ := retryAfter(err)
	return d
}
