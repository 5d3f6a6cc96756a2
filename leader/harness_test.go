package leader

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// election watches candidates of one lease and checks, each time one of
// them is elected, the two properties fencing rests on: no other term is
// still valid by the same (this process's) clock, and the new term's
// number is larger than every earlier one.
type election struct {
	t  *testing.T
	mu sync.Mutex
	// terms are all the terms granted so far, in order of election.
	terms []*Term
	owner map[*Term]*candidate
}

func newElection(t *testing.T) *election {
	return &election{t: t, owner: map[*Term]*candidate{}}
}

// candidate is one replica running Elector.Run.
type candidate struct {
	name     string
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once

	mu      sync.Mutex
	leading *Term // the term whose onLead runs, nil when none
	led     []*Term
	lost    []*Term
}

func (e *election) start(name string, el Elector) *candidate {
	ctx, cancel := context.WithCancel(context.Background())
	c := &candidate{name: name, cancel: cancel, done: make(chan error, 1)}
	go func() {
		c.done <- el.Run(ctx, func(ctx context.Context, term *Term) {
			e.elected(c, term)
			c.mu.Lock()
			c.leading = term
			c.led = append(c.led, term)
			c.mu.Unlock()
			<-ctx.Done()
			c.mu.Lock()
			c.leading = nil
			c.mu.Unlock()
		}, func(term *Term) {
			if term.Valid() {
				e.t.Errorf("%s: onLose with term %d still valid", name, term.Number())
			}
			c.mu.Lock()
			c.lost = append(c.lost, term)
			c.mu.Unlock()
		})
	}()
	e.t.Cleanup(func() { c.stop(e.t) })
	return c
}

func (e *election) elected(c *candidate, term *Term) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !term.Valid() {
		e.t.Errorf("%s: onLead with term %d already invalid", c.name, term.Number())
	}
	for _, old := range e.terms {
		if old.Valid() {
			e.t.Errorf("%s elected with term %d while term %d of %s is still valid", c.name, term.Number(), old.Number(), e.owner[old].name)
		}
		if old.Number() >= term.Number() {
			e.t.Errorf("%s elected with term %d, not above the earlier term %d of %s", c.name, term.Number(), old.Number(), e.owner[old].name)
		}
	}
	e.terms = append(e.terms, term)
	e.owner[term] = c
	e.t.Logf("%s elected: term %d", c.name, term.Number())
}

// stop cancels the candidate and waits for Run to return.
func (c *candidate) stop(t *testing.T) {
	c.stopOnce.Do(func() {
		c.cancel()
		select {
		case err := <-c.done:
			if err != nil {
				t.Errorf("%s: Run: %v", c.name, err)
			}
		case <-time.After(time.Minute):
			t.Errorf("%s: Run did not return within a minute of its cancellation", c.name)
		}
	})
}

func (c *candidate) term() *Term {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

func (c *candidate) lostCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.lost)
}

// waitLeader waits until one of cs leads and returns it.
func waitLeader(t *testing.T, timeout time.Duration, cs ...*candidate) *candidate {
	t.Helper()
	var got *candidate
	testutil.WaitFor(t, timeout, "a leader", func() bool {
		for _, c := range cs {
			if c.term() != nil {
				got = c
				return true
			}
		}
		return false
	})
	return got
}

// backend makes electors: for a lease of the given name, talking to
// their server directly or through a fault proxy, which is then returned.
type backend struct {
	cfg Config // the durations the electors use
	new func(t *testing.T, lease, identity string, viaProxy bool) (Elector, *faultproxy.Proxy)
}

// takeover is the longest a standby may need to take over from a leader
// that stopped renewing: LeaseDuration after it last saw the record
// change, noticed at its next try (RetryPeriod with client-go's jitter),
// plus a slack for the race detector on two shared cores.
func (b backend) takeover() time.Duration {
	return b.cfg.LeaseDuration + time.Duration(float64(b.cfg.RetryPeriod)*(1+jitterFactor)) + 5*time.Second
}

// testElection runs the scenarios every backend must pass.
func testElection(t *testing.T, b backend) {
	t.Run("current reads the holder without campaigning", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		probe, _ := b.new(t, "current", "probe", false)
		current := func() Record {
			t.Helper()
			r, err := probe.Current(ctx)
			if err != nil {
				t.Fatalf("Current: %v", err)
			}
			if r.Where == "" || !strings.Contains(r.Where, "current") {
				t.Errorf("Current names the record %q, want its name in it", r.Where)
			}
			return r
		}
		if r := current(); r.Holder != "" {
			t.Fatalf("no candidate yet, Current says %+v", r)
		}
		e := newElection(t)
		el, _ := b.new(t, "current", "a", false)
		c := e.start("a", el)
		l := waitLeader(t, b.takeover(), c)
		r := current()
		if r.Holder != l.term().Holder() || !strings.HasPrefix(r.Holder, "a_") || r.Expired || r.Renewed.IsZero() {
			t.Errorf("while a leads, Current says %+v, want holder %s, renewed, not expired", r, l.term().Holder())
		}
		c.stop(t) // releases
		if r := current(); r.Holder != "" {
			t.Errorf("after a released, Current says %+v, want no holder", r)
		}
		if len(e.terms) != 1 {
			t.Errorf("%d terms granted, want a's alone: Current must not campaign", len(e.terms))
		}
	})

	t.Run("one of two leads and cancelling it hands over, terms increasing", func(t *testing.T) {
		e := newElection(t)
		el1, _ := b.new(t, "handover", "a", false)
		el2, _ := b.new(t, "handover", "b", false)
		cs := []*candidate{e.start("a", el1), e.start("b", el2)}
		for round := range 3 {
			l := waitLeader(t, b.takeover(), cs...)
			var others []*candidate
			for _, c := range cs {
				if c != l {
					others = append(others, c)
				}
			}
			began := time.Now()
			l.stop(t)
			if l.lostCount() != 1 {
				t.Errorf("%s: onLose called %d times for its one term", l.name, l.lostCount())
			}
			next := waitLeader(t, b.takeover(), others...)
			t.Logf("round %d: %s took over from %s in %v", round, next.name, l.name, time.Since(began).Round(time.Millisecond))
			// A new candidate replaces the stopped one.
			name := string(rune('c' + round))
			el, _ := b.new(t, "handover", name, false)
			cs = append(others, e.start(name, el))
		}
		if len(e.terms) != 4 {
			t.Errorf("%d terms granted, want 4", len(e.terms))
		}
	})

	t.Run("a paused leader loses its term before the standby acquires", func(t *testing.T) {
		e := newElection(t)
		el1, proxy := b.new(t, "pause", "a", true)
		a := e.start("a", el1)
		waitLeader(t, b.takeover(), a)
		old := a.term()
		el2, _ := b.new(t, "pause", "b", false)
		s := e.start("b", el2)

		// The leader's packets go nowhere, as when its process is
		// stopped or its node cut off. elected checks that its term is no
		// longer valid when b is elected.
		proxy.Set(faultproxy.Faults{Blackhole: faultproxy.Both})
		waitLeader(t, b.takeover(), s)
		testutil.WaitFor(t, b.takeover(), "a's term to end", func() bool { return a.lostCount() == 1 })
		if err := old.Check(); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("a's old term: %v, want ErrNotLeader", err)
		}

		// Back on the network, a is a standby: its old term stays
		// invalid, and it takes over, with a new term, once b stops.
		proxy.Set(faultproxy.Faults{})
		s.stop(t)
		waitLeader(t, b.takeover()+b.takeover(), a)
		if old.Valid() {
			t.Error("a's old term is valid again")
		}
		if n := len(e.terms); n != 3 {
			t.Errorf("%d terms granted, want 3", n)
		}
	})
}
