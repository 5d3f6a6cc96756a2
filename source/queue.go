package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/retry"
)

// State is what a caller persists to resume a queue after a restart.
type State struct {
	QueueID string `json:"queue_id"`
	// LastEventID is the highest acknowledged event id of QueueID.
	LastEventID int64 `json:"last_event_id"`
	// MaxMessageID is the highest message id handled, across queues: where
	// a backfill starts when the queue is lost.
	MaxMessageID int64 `json:"max_message_id"`
}

// QueueLost reports a queue that could not be read any more and was
// replaced. Events of the old queue after OldLastEventID are gone; the
// messages among them can be fetched with GetMessages from MaxMessageID up
// to the new registration's MaxMessageID.
type QueueLost struct {
	OldQueueID     string
	NewQueueID     string
	OldLastEventID int64
	MaxMessageID   int64
	// LostAt is when the loss was detected; LastSuccess when the old queue
	// last answered (zero if it never did in this process). The events lost
	// happened between them, or before LastSuccess if they were never read.
	LostAt      time.Time
	LastSuccess time.Time
	// Cause is why: an error matching ErrQueueExpired, ErrResponseTooLarge,
	// or the server refusing the queue's last_event_id (HTTP 400).
	Cause error
}

// Batch is what Queue.Next hands out: a registration, or the events of one
// GET /events response, read as they arrive.
type Batch struct {
	QueueID string
	// Registered is set, with no events, on the first batch after every
	// registration (the initial one and each replacement of a lost queue).
	Registered *Registration
	// Lost is set, with Registered, when the registration replaced a lost
	// queue: backfill before acknowledging this batch.
	Lost *QueueLost

	r *batchReader // the events; nil for a registration
}

// batchReader reads a batch's events for Batch.Read.
type batchReader struct {
	q      *Queue
	ev     *events
	first  *Event // read by Next, not yet handed out
	last   int64  // id of the last event handed out
	closed atomic.Bool
}

// Read returns the batch's next events, in order, as the response brings
// them: at most max events (no limit when max <= 0), and no more once
// they hold maxBytes bytes of JSON (no limit when maxBytes <= 0), so that
// a caller bounds what it holds however large the backlog. It returns
// (nil, io.EOF) after the last event of the batch, and never events with an
// error: an error (the response broke off, or is not a valid one, or ctx
// of Next ended) comes on the call after the last good events, and the
// events not read come again with the next Next, which waits out a backoff
// first. A registration batch has no events.
func (b Batch) Read(max, maxBytes int) ([]Event, error) {
	if b.r == nil {
		return nil, io.EOF
	}
	return b.r.read(max, maxBytes)
}

// Close abandons what is left of the batch's response; the events not read
// come again with the next Next. It may be called from any goroutine, also
// while Read is waiting, and more than once.
func (b Batch) Close() {
	if b.r != nil && b.r.ev != nil && !b.r.closed.Swap(true) {
		b.r.ev.Close()
	}
}

func (r *batchReader) read(maxEvents, maxBytes int) ([]Event, error) {
	var out []Event
	size := 0
	for (maxEvents <= 0 || len(out) < maxEvents) && (maxBytes <= 0 || size < maxBytes) {
		var ev Event
		if r.first != nil {
			ev, r.first = *r.first, nil
		} else {
			var err error
			if ev, err = r.ev.next(); err != nil {
				if !r.closed.Swap(true) {
					// Read to its end or broken: release the connection
					// now, and count the outcome once.
					r.ev.Close()
					r.q.ended(err)
				}
				if len(out) > 0 {
					return out, nil // the error comes again on the next call
				}
				return nil, err
			}
		}
		r.q.deliver(ev)
		r.last = ev.ID
		size += len(ev.Raw)
		out = append(out, ev)
	}
	return out, nil
}

// LastEventID is the id that acknowledges, with Queue.Ack, everything the
// batch handed out so far: its last event read, or the registration.
func (b Batch) LastEventID() int64 {
	switch {
	case b.r != nil:
		return b.r.last
	case b.Registered != nil:
		return b.Registered.LastEventID
	}
	return -1
}

// Queue owns one event queue: it hands out batches and acknowledges exactly
// what its caller confirms. Next and Ack are meant for one goroutine; State
// may be called from any.
//
// The loop a caller runs:
//
//	b, err := q.Next(ctx)      // events after the acknowledged id
//	for {
//		evs, err := b.Read(1000, 1<<20) // io.EOF at the end of the batch
//		... handle evs durably ...
//		q.Ack(evs[len(evs)-1].ID)   // records it; nothing is sent yet
//		persist(q.State())          // what a restart resumes from
//	}
//	// the next q.Next sends the acknowledgement to the server
//
// Events not acknowledged come again with the next Next. Because
// an immediately answered GET does not keep a queue alive on the server,
// failing on the same batch for longer than the queue lifespan loses the
// queue; Next then reports it.
type Queue struct {
	c *Client

	mu sync.Mutex
	// st is the acknowledged state; while a registration batch is pending,
	// it is still the state before that registration, so that persisting
	// State before the caller has dealt with a loss makes a restart report
	// the loss again rather than skip it.
	st          State
	pending     *Batch  // registration batch handed out, not yet acknowledged
	delivered   []evIDs // ids handed out and not acknowledged yet
	fresh       bool    // current queue registered here and not yet read
	lastSuccess time.Time
	open        *Batch // the events batch being read, if any
	// failures counts responses in a row that broke off or were invalid
	// after they started; the next GET waits a backoff for them, and
	// failure is the last one's error.
	failures int
	// down is true from a failed GET /events until a response is read to
	// its end, so that an outage of Zulip is logged once each way, not at
	// every attempt (a response that starts and then breaks off is part
	// of the outage); downSince is when it began. Guarded by mu.
	down      bool
	downSince time.Time
	failure   error
}

type evIDs struct{ event, message int64 }

// Open returns a Queue that resumes st.QueueID after st.LastEventID, or,
// when st.QueueID is empty, registers a new queue (retrying transient
// failures until ctx ends). Resuming makes no request: a queue that is gone
// is found, replaced and reported by the first Next.
func (c *Client) Open(ctx context.Context, st State) (*Queue, error) {
	q := &Queue{c: c, st: st}
	if st.QueueID != "" {
		c.log.Debug("resuming zulip event queue", "queue_id", st.QueueID, "last_event_id", st.LastEventID)
		return q, nil
	}
	reg, err := c.registerRetry(ctx)
	if err != nil {
		return nil, err
	}
	q.pending = &Batch{QueueID: reg.QueueID, Registered: reg}
	q.fresh = true
	q.lastSuccess = c.clock.Now()
	c.log.Debug("registered zulip event queue", "queue_id", reg.QueueID, "zulip_version", reg.ZulipVersion,
		"feature_level", reg.FeatureLevel, "max_message_id", reg.MaxMessageID)
	return q, nil
}

// registerRetry registers, retrying transient failures with backoff until
// ctx ends, logging each failure. Fatal errors are returned at once.
func (c *Client) registerRetry(ctx context.Context) (*Registration, error) {
	var reg *Registration
	err := c.Retry(ctx, "register event queue", func(ctx context.Context) error {
		var err error
		reg, err = c.Register(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("register event queue: %w", err)
	}
	return reg, nil
}

// State returns the acknowledged state: what to persist.
func (q *Queue) State() State {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.st
}

// Ack records that the caller durably handled every event of the last batch
// with an id up to id. The next Next sends it to the server. Acknowledging
// the registration batch (with its LastEventID) moves State to the new
// queue. Ids above the last batch, or below what is acknowledged, change
// nothing; an id between two events acknowledges the lower one, because the
// server accepts only ids of events it sent.
func (q *Queue) Ack(id int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending != nil {
		reg := q.pending.Registered
		if id >= reg.LastEventID {
			q.st = State{QueueID: reg.QueueID, LastEventID: reg.LastEventID, MaxMessageID: max(q.st.MaxMessageID, reg.MaxMessageID)}
			q.pending = nil
		}
		return
	}
	n := 0
	for _, d := range q.delivered {
		if d.event > id {
			break
		}
		n++
		if d.event > q.st.LastEventID {
			q.st.LastEventID = d.event
			q.st.MaxMessageID = max(q.st.MaxMessageID, d.message)
		}
	}
	q.delivered = q.delivered[n:]
}

// deliver records that ev was handed out.
func (q *Queue) deliver(ev Event) {
	q.mu.Lock()
	q.delivered = append(q.delivered, evIDs{ev.ID, ev.MessageID})
	q.mu.Unlock()
}

// ended records how the response being read ended: at its end (io.EOF),
// stopped by the caller, or broken off, which the next GET backs off for.
func (q *Queue) ended(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case errors.Is(err, io.EOF):
		q.failures, q.failure = 0, nil
		q.recoveredLocked()
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
	default:
		q.failures++
		q.failure = err
	}
}

// Next returns the next batch: the pending registration batch if there is
// one, else the events after the acknowledged id, waiting for them as long
// as it takes. Transient failures are retried with backoff until ctx ends.
// A lost queue is replaced (registration retried until ctx ends) and
// reported by a batch with Registered and Lost set. Fatal errors (matching
// ErrUnauthorized, or other permanent API errors) are returned.
func (q *Queue) Next(ctx context.Context) (Batch, error) {
	q.mu.Lock()
	if q.pending != nil {
		b := *q.pending
		q.mu.Unlock()
		return b, nil
	}
	queueID, last := q.st.QueueID, q.st.LastEventID
	open := q.open
	q.open = nil
	failures, failure := q.failures, q.failure
	q.mu.Unlock()
	if open != nil {
		open.Close()
	}

	if failures > 0 {
		// The last response broke off or went wrong after it started:
		// what it did not deliver is asked for again, after a backoff, as
		// for any transient failure.
		d := retryDelay(q.c.backoff, failures, failure)
		q.getFailed(queueID, failures, d, failure)
		if err := retry.Sleep(ctx, q.c.clock, d); err != nil {
			return Batch{}, err
		}
	}
	var b Batch
	empties := 0
	err := retry.Do(ctx, retry.Policy{
		Backoff:   q.c.backoff,
		After:     serverWait,
		Clock:     q.c.clock,
		Permanent: func(err error) bool { _, ok := err.(nextEnd); return ok },
		OnRetry:   func(f retry.Failure) { q.getFailed(queueID, f.Attempt, f.Wait, f.Err) },
	}, func(ctx context.Context) error {
		for {
			ev, err := q.c.openEvents(ctx, queueID, last, false)
			var first Event
			if err == nil {
				if first, err = ev.next(); errors.Is(err, io.EOF) {
					ev.Close()
					// The server ends a waiting GET with no events when a
					// newer GET on the queue supersedes it or the queue is
					// collected: ask again at once. Several in a row mean
					// another client is polling this queue; back off rather
					// than fight over it.
					if empties++; empties == 1 {
						q.mu.Lock()
						q.recoveredLocked() // a whole answer, if an empty one
						q.mu.Unlock()
						continue
					}
					err = &MalformedResponseError{Method: http.MethodGet, Endpoint: "/api/v1/events",
						Err: fmt.Errorf("%d empty answers in a row to a waiting GET: is another client polling this queue?", empties)}
				} else if err != nil {
					ev.Close()
				}
			}
			switch {
			case err == nil:
				b = Batch{QueueID: queueID, r: &batchReader{q: q, ev: ev, first: &first, last: last}}
				q.mu.Lock()
				q.lastSuccess = q.c.clock.Now()
				q.fresh = false
				q.delivered = q.delivered[:0]
				q.open = &b
				q.mu.Unlock()
				return nil
			case ctx.Err() != nil:
				return err // Do returns ctx's error
			case q.isLost(err):
				return nextEnd{err: err, lost: true}
			case !IsTransient(err):
				return nextEnd{err: fmt.Errorf("get events of queue %s: %w", queueID, err)}
			}
			return err
		}
	})
	switch err := err.(type) {
	case nil:
		return b, nil
	case nextEnd:
		if err.lost {
			return q.replace(ctx, err.err)
		}
		return Batch{}, err.err
	case *retry.StopError:
		return Batch{}, err.Err
	default:
		return Batch{}, err
	}
}

// nextEnd is a GET /events failure that Next does not retry: a lost queue,
// which it replaces, or an error it returns.
type nextEnd struct {
	err  error
	lost bool
}

func (e nextEnd) Error() string { return e.err.Error() }

// getFailed logs a failed GET /events: at warn when it starts an outage,
// at debug for the attempts after it.
func (q *Queue) getFailed(queueID string, attempt int, retryIn time.Duration, err error) {
	q.mu.Lock()
	first := !q.down
	if first {
		q.down, q.downSince = true, q.c.clock.Now()
	}
	q.mu.Unlock()
	if first {
		q.c.log.Warn("zulip get events failed, retrying", "queue_id", queueID, "attempt", attempt, "retry_in", retryIn, "error", err)
		return
	}
	q.c.log.Debug("zulip get events still failing", "queue_id", queueID, "attempt", attempt, "retry_in", retryIn, "error", err)
}

// recoveredLocked logs, once, that GET /events works again after an
// outage: a response was read to its end. q.mu is held.
func (q *Queue) recoveredLocked() {
	if q.down {
		q.down = false
		q.c.log.Info("zulip get events recovered", "queue_id", q.st.QueueID, "outage", q.c.clock.Since(q.downSince).Round(time.Millisecond).String())
	}
}

// isLost tells whether a GET /events error means the queue cannot be read
// again: expired, a backlog above the response limit (asking again returns
// the same), or a 400 refusing our last_event_id. The last two on a queue
// registered here and never read point to configuration, not to the queue:
// replacing it would loop, so they are returned instead.
func (q *Queue) isLost(err error) bool {
	if errors.Is(err, ErrQueueExpired) {
		return true
	}
	q.mu.Lock()
	fresh := q.fresh
	q.mu.Unlock()
	if fresh {
		return false
	}
	var ae *APIError
	return errors.Is(err, ErrResponseTooLarge) ||
		(errors.As(err, &ae) && ae.Status == http.StatusBadRequest && !ae.unauthorized())
}

// replace registers a queue in place of the lost one and returns the batch
// that reports it.
func (q *Queue) replace(ctx context.Context, cause error) (Batch, error) {
	q.mu.Lock()
	lost := &QueueLost{
		OldQueueID:     q.st.QueueID,
		OldLastEventID: q.st.LastEventID,
		MaxMessageID:   q.st.MaxMessageID,
		LostAt:         q.c.clock.Now(),
		LastSuccess:    q.lastSuccess,
		Cause:          cause,
	}
	q.mu.Unlock()
	q.c.log.Warn("zulip event queue lost, registering a new one", "queue_id", lost.OldQueueID,
		"last_event_id", lost.OldLastEventID, "max_message_id", lost.MaxMessageID, "cause", cause)
	if !errors.Is(cause, ErrQueueExpired) {
		// The queue still exists: delete it, or a restart from a checkpoint
		// that still names it would go through the same failure again.
		if err := q.c.DeleteQueue(ctx, lost.OldQueueID); err != nil {
			q.c.log.Warn("could not delete the abandoned zulip event queue", "queue_id", lost.OldQueueID, "error", err)
		}
	}
	reg, err := q.c.registerRetry(ctx)
	if err != nil {
		return Batch{}, fmt.Errorf("replace lost queue %s: %w", lost.OldQueueID, err)
	}
	lost.NewQueueID = reg.QueueID
	b := Batch{QueueID: reg.QueueID, Registered: reg, Lost: lost}
	q.mu.Lock()
	q.pending = &b
	q.fresh = true
	q.delivered = q.delivered[:0]
	q.lastSuccess = q.c.clock.Now()
	q.mu.Unlock()
	q.c.log.Debug("registered zulip event queue", "queue_id", reg.QueueID, "replaces", lost.OldQueueID,
		"max_message_id", reg.MaxMessageID)
	return b, nil
}

// Delete deletes the queue on the server, for a shutdown after which it
// will not be resumed. The Queue must not be used afterwards.
func (q *Queue) Delete(ctx context.Context) error {
	q.mu.Lock()
	id := q.st.QueueID
	if q.pending != nil {
		id = q.pending.QueueID
	}
	q.mu.Unlock()
	if id == "" {
		return nil
	}
	if err := q.c.DeleteQueue(ctx, id); err != nil {
		return fmt.Errorf("delete queue %s: %w", id, err)
	}
	return nil
}
