package leader

import (
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestTerm(t *testing.T) {
	clock := clockwork.NewFakeClock()
	start := clock.Now()
	term := newTerm(7, "a_1", clock, 10*time.Second, start)
	ended := make(chan struct{})
	term.whenEnded(func() { close(ended) })

	if !term.Valid() || term.Number() != 7 || term.Holder() != "a_1" {
		t.Fatalf("new term: valid %v, number %d, holder %q", term.Valid(), term.Number(), term.Holder())
	}
	clock.Advance(9 * time.Second)
	if !term.Valid() {
		t.Fatal("invalid before its deadline")
	}
	// A renewal that started at 5s extends the term to 15s.
	if !term.extend(start.Add(5 * time.Second)) {
		t.Fatal("extend refused on a valid term")
	}
	if got := term.Deadline(); !got.Equal(start.Add(15 * time.Second)) {
		t.Fatalf("deadline %v, want start+15s", got.Sub(start))
	}
	clock.Advance(5*time.Second + time.Millisecond) // 14.001s
	if !term.Valid() {
		t.Fatal("invalid before the extended deadline")
	}
	clock.Advance(999 * time.Millisecond) // 15s: the deadline itself is past
	if err := term.Check(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Check at the deadline: %v, want ErrNotLeader", err)
	}
	<-ended // the timer ended it
	// Never valid again, even by a renewal that started before the deadline.
	if term.extend(start.Add(14*time.Second)) || term.Valid() {
		t.Fatal("an expired term was revived")
	}
	late := make(chan struct{})
	term.whenEnded(func() { close(late) })
	<-late
}

func TestTermEnd(t *testing.T) {
	clock := clockwork.NewFakeClock()
	term := newTerm(1, "a", clock, time.Minute, clock.Now())
	term.end("released")
	if err := term.Check(); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Check after end: %v", err)
	}
	if term.extend(clock.Now()) {
		t.Fatal("an ended term was extended")
	}
}
