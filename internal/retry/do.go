package retry

import (
	"context"
	"fmt"
	"time"

	"github.com/jonboulle/clockwork"
)

// Policy says how Do retries: how long it waits, which errors it gives up
// on, and whom it tells. The zero value retries every error until ctx ends,
// waiting Exponential(100ms, 30s) on the real clock, and tells no one.
type Policy struct {
	// Backoff is the wait before retry n (1 after the first failure).
	// Nil: Exponential(100*time.Millisecond, 30*time.Second, nil).
	Backoff Backoff
	// After returns the least wait an error asks for, e.g. a server's
	// Retry-After: the wait is the longer of it and Backoff's. Nil: none.
	After func(error) time.Duration
	// Clock paces the waits; tests pass a fake one. Nil: the real clock.
	Clock clockwork.Clock
	// Attempts is the most attempts Do makes; it returns the last one's
	// error. Zero or less: no limit, Do retries until ctx ends.
	Attempts int
	// Permanent reports an error that no retry fixes: Do returns it at
	// once, as it is, even when ctx has ended too. Nil: every error is
	// worth retrying.
	Permanent func(error) bool
	// OnRetry is called after each failed attempt that Do retries, before
	// the wait: where to log. Failure.Attempt is 1 for the first failure,
	// so that a caller can say the start of an outage once, loudly, and the
	// attempts after it quietly or not at all. Nil: nothing is told.
	OnRetry func(Failure)
	// OnRecover is called once when an attempt succeeds after failed ones,
	// with the attempts it took (the successful one included) and the time
	// since the first failure on Clock: where to log that the outage is
	// over. Nil: nothing is told.
	OnRecover func(attempts int, down time.Duration)
}

// Failure is one failed attempt that Do retries.
type Failure struct {
	Attempt int           // 1 for the first failure
	Wait    time.Duration // before the next attempt
	Err     error
}

// StopError is Do's error when ctx ended before an attempt succeeded,
// during an attempt or a wait. It matches ctx's error (errors.Is), not the
// last attempt's, so that a caller tells a stop from a failure; the last
// attempt's error is in its text and in Last.
type StopError struct {
	Err  error // ctx's error
	Last error // the last attempt's error
}

func (e *StopError) Error() string { return fmt.Sprintf("%v (last error: %v)", e.Err, e.Last) }

func (e *StopError) Unwrap() error { return e.Err }

// Wait is how long Do waits after the attempt-th failure in a row, which
// failed with err: Backoff's wait, or what err asks for (After) if that is
// longer.
func (p Policy) Wait(attempt int, err error) time.Duration {
	b := p.Backoff
	if b == nil {
		b = defaultBackoff
	}
	d := b(attempt)
	if p.After != nil {
		d = max(d, p.After(err))
	}
	return d
}

var defaultBackoff = Exponential(100*time.Millisecond, 30*time.Second, nil)

// Do calls op until it returns nil, and returns nil. Between attempts it
// waits p.Wait on p.Clock. It returns, without another attempt:
//   - op's error, as it is, when p.Permanent reports it or when it was the
//     last of p.Attempts;
//   - a *StopError when ctx ended (checked after a failure that is not
//     permanent, and during the wait).
//
// Do does not look at ctx before the first attempt: op gets ctx and
// decides what a done context means for it.
func Do(ctx context.Context, p Policy, op func(context.Context) error) error {
	clock := p.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	var first time.Time // of the first failure
	for attempt := 1; ; attempt++ {
		err := op(ctx)
		if err == nil {
			if attempt > 1 && p.OnRecover != nil {
				p.OnRecover(attempt, clock.Since(first))
			}
			return nil
		}
		if attempt == 1 {
			first = clock.Now()
		}
		if p.Permanent != nil && p.Permanent(err) {
			return err
		}
		if ctx.Err() != nil {
			return &StopError{Err: ctx.Err(), Last: err}
		}
		if p.Attempts > 0 && attempt >= p.Attempts {
			return err
		}
		d := p.Wait(attempt, err)
		if p.OnRetry != nil {
			p.OnRetry(Failure{Attempt: attempt, Wait: d, Err: err})
		}
		if serr := Sleep(ctx, clock, d); serr != nil {
			return &StopError{Err: serr, Last: err}
		}
	}
}
