package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"
)

// Elector campaigns for the leadership of one lease.
type Elector interface {
	// Run campaigns until ctx is done. Each time this replica acquires the
	// lease it calls onLead with the new term, in its own goroutine, and a
	// context that is cancelled as soon as the term ends (a renewal could
	// not be made within RenewDeadline, or another replica took over) or
	// ctx is done. The term stays valid, and is renewed, until onLead
	// returns, so that work in flight at a shutdown can finish under a
	// valid term; onLead must return promptly once its context is done.
	// Then the term ends, onLose (if not nil) is called with it, and Run
	// campaigns again, or releases the lease and returns nil if ctx is done.
	// Run returns an error only when it cannot campaign at all.
	Run(ctx context.Context, onLead func(ctx context.Context, term *Term), onLose func(term *Term)) error

	// Current reads the lease's record, without campaigning or creating
	// anything (`bridge check`): who holds it and when it was last
	// written. An error is one that would keep this replica from
	// campaigning: the server unreachable, access refused, a bucket
	// whose TTL is not the lease duration.
	Current(ctx context.Context) (Record, error)
}

// Record is what a lease's record says.
type Record struct {
	// Where names the record: the Lease's namespace and name, or the
	// bucket and key.
	Where string
	// Holder is the identity of the candidacy that holds the lease
	// (BRIDGE_LEADER_IDENTITY and a suffix of its candidacy), empty when
	// there is no record or it was released.
	Holder string
	// Renewed is when the holder last wrote it (zero without a holder).
	Renewed time.Time
	// Expired: the holder has not renewed for the lease duration, by the
	// record's clock against this one's; a standby would take it over.
	Expired bool
}

// candidateID is the identity one candidacy writes: the configured identity
// and a random suffix, so that every acquisition is a change of holder.
func candidateID(identity string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return identity + "_" + hex.EncodeToString(b)
}

// lead runs one term: onLead until the term ends or ctx is done, then ends
// the term and calls onLose.
func lead(ctx context.Context, log *slog.Logger, term *Term, onLead func(context.Context, *Term), onLose func(*Term)) {
	log.Info("leader: elected", "term", term.Number(), "holder", term.Holder())
	leadCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	term.whenEnded(cancel)
	done := make(chan struct{})
	go func() {
		defer close(done)
		onLead(leadCtx, term)
	}()
	<-leadCtx.Done()
	<-done
	term.end("stopped")
	if err := term.Check(); err != nil {
		log.Info("leader: term ended", "term", term.Number(), "holder", term.Holder(), "error", err)
	}
	if onLose != nil {
		onLose(term)
	}
}

func discard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
