package source

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
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

// Batch is what Queue.Next hands out.
type Batch struct {
	QueueID string
	Events  []Event
	// Registered is set, with no events, on the first batch after every
	// registration (the initial one and each replacement of a lost queue).
	Registered *Registration
	// Lost is set, with Registered, when the registration replaced a lost
	// queue: backfill before acknowledging this batch.
	Lost *QueueLost
}

// LastEventID is the id that acknowledges the whole batch with Queue.Ack.
func (b Batch) LastEventID() int64 {
	switch {
	case len(b.Events) > 0:
		return b.Events[len(b.Events)-1].ID
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
//	... handle b durably ...
//	q.Ack(b.LastEventID())     // records it; nothing is sent yet
//	persist(q.State())         // what a restart resumes from
//	// the next q.Next sends the acknowledgement to the server
//
// A batch that is not acknowledged comes again with the next Next. Because
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
	delivered   []evIDs // ids of the last batch handed out
	fresh       bool    // current queue registered here and not yet read
	lastSuccess time.Time
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
	for _, d := range q.delivered {
		if d.event > id {
			break
		}
		if d.event > q.st.LastEventID {
			q.st.LastEventID = d.event
			q.st.MaxMessageID = max(q.st.MaxMessageID, d.message)
		}
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
	q.mu.Unlock()

	empties := 0
	for attempt := 1; ; {
		events, err := q.c.GetEvents(ctx, queueID, last, false)
		if err == nil && len(events) == 0 {
			// The server ends a waiting GET with no events when a newer GET
			// on the queue supersedes it or the queue is collected: ask
			// again at once. Several in a row mean another client is
			// polling this queue; back off rather than fight over it.
			if empties++; empties == 1 {
				continue
			}
			err = &MalformedResponseError{Method: http.MethodGet, Endpoint: "/api/v1/events",
				Err: fmt.Errorf("%d empty answers in a row to a waiting GET: is another client polling this queue?", empties)}
		}
		if err == nil {
			q.mu.Lock()
			q.lastSuccess = q.c.clock.Now()
			q.fresh = false
			q.delivered = q.delivered[:0]
			for _, ev := range events {
				q.delivered = append(q.delivered, evIDs{ev.ID, ev.MessageID})
			}
			q.mu.Unlock()
			return Batch{QueueID: queueID, Events: events}, nil
		}
		if ctx.Err() != nil {
			return Batch{}, ctx.Err()
		}
		if q.isLost(err) {
			return q.replace(ctx, err)
		}
		if !IsTransient(err) {
			return Batch{}, fmt.Errorf("get events of queue %s: %w", queueID, err)
		}
		d := retryDelay(q.c.backoff, attempt, err)
		q.c.log.Warn("zulip get events failed, retrying", "queue_id", queueID, "attempt", attempt, "retry_in", d, "error", err)
		if err := retry.Sleep(ctx, q.c.clock, d); err != nil {
			return Batch{}, err
		}
		attempt++
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
