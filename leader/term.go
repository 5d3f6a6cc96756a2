package leader

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
)

// ErrNotLeader is what Term.Check returns, wrapped, once a term is no longer
// current: its validity ran out by the local clock, or it ended.
var ErrNotLeader = errors.New("not the leader")

// Term is one tenure of leadership: from one acquisition of the lease to
// the moment this replica can no longer be sure it holds it. Its Number is
// the fencing token, larger for every later term of the same lease (see the
// package documentation for what each backend guarantees).
//
// A term is valid until RenewDeadline after the start of the last write that
// acquired or renewed the lease, by the local monotonic clock; it never
// becomes valid again once it was not. Its methods are safe for concurrent
// use.
type Term struct {
	number uint64
	holder string
	clock  clockwork.Clock
	window time.Duration // RenewDeadline

	mu     sync.Mutex
	until  time.Time // valid before this instant
	ended  bool
	timer  clockwork.Timer
	onEnd  []func()
	reason string
	done   chan struct{} // closed by end
}

// newTerm starts a term whose acquiring write started at start.
func newTerm(number uint64, holder string, clock clockwork.Clock, window time.Duration, start time.Time) *Term {
	t := &Term{number: number, holder: holder, clock: clock, window: window, until: start.Add(window), done: make(chan struct{})}
	t.timer = clock.AfterFunc(t.until.Sub(clock.Now()), t.expire)
	return t
}

// Number is the fencing token: the Lease's leaseTransitions + 1, or the NATS
// KV revision of the write that acquired the key.
func (t *Term) Number() uint64 { return t.number }

// Holder is the identity written in the record for this term: the
// configured identity and this candidacy's random suffix.
func (t *Term) Holder() string { return t.holder }

// Valid reports whether the term is still current: it has not ended and
// the local clock has not passed its deadline.
func (t *Term) Valid() bool { return t.Check() == nil }

// Check returns nil while the term is valid, and an error wrapping
// ErrNotLeader once it is not. Call it before each action the term guards
// (a poll, a publish, a checkpoint write).
func (t *Term) Check() error {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ended:
		return fmt.Errorf("term %d: %w (%s)", t.number, ErrNotLeader, t.reason)
	case !now.Before(t.until):
		return fmt.Errorf("term %d: %w (not renewed since %v)", t.number, ErrNotLeader, t.until.Add(-t.window).Format(time.RFC3339Nano))
	}
	return nil
}

// Done is closed once the term has ended: its deadline passed, another
// replica took over, or onLead returned. A term that ends this way is
// never valid again, so work guarded by it can be abandoned at once.
func (t *Term) Done() <-chan struct{} { return t.done }

// Deadline is the instant, by the local clock, after which the term is no
// longer valid unless a renewal extends it.
func (t *Term) Deadline() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.until
}

// extend records a successful renewal whose write started at start. It
// never revives a term that is no longer valid: another replica may have
// been entitled to take over in between.
func (t *Term) extend(start time.Time) bool {
	now := t.clock.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || !now.Before(t.until) {
		return false
	}
	if u := start.Add(t.window); u.After(t.until) {
		t.until = u
		t.timer.Reset(u.Sub(now))
	}
	return true
}

// expire runs when the deadline may have passed.
func (t *Term) expire() {
	now := t.clock.Now()
	t.mu.Lock()
	if !now.Before(t.until) {
		t.mu.Unlock()
		t.end("renew deadline passed")
		return
	}
	t.timer.Reset(t.until.Sub(now))
	t.mu.Unlock()
}

// end ends the term for good and runs the functions given to whenEnded.
func (t *Term) end(reason string) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended, t.reason = true, reason
	close(t.done)
	t.timer.Stop()
	fns := t.onEnd
	t.onEnd = nil
	t.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// whenEnded runs fn once the term has ended (at once if it has).
func (t *Term) whenEnded(fn func()) {
	t.mu.Lock()
	if !t.ended {
		t.onEnd = append(t.onEnd, fn)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	fn()
}
