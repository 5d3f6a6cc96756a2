package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/source"
)

// Resync is the payload of the <prefix>.bridge.resync control event,
// published once per lost queue after its messages were backfilled.
type Resync struct {
	Type           string    `json:"type"` // always "resync"
	Site           string    `json:"site"`
	OldQueueID     string    `json:"old_queue_id"`
	OldLastEventID int64     `json:"old_last_event_id"`
	NewQueueID     string    `json:"new_queue_id"`
	LastSuccessAt  time.Time `json:"last_success_at,omitzero"` // last good poll of the old queue (this process)
	DetectedAt     time.Time `json:"detected_at"`              // when the loss was noticed
	RegisteredAt   time.Time `json:"registered_at"`            // when the new queue existed
	// Backfill: the messages with ids in (FromMessageID, ToMessageID] that
	// match the narrow were published again from GET /messages, with the
	// same dedup keys as live message events.
	FromMessageID      int64 `json:"from_message_id"`
	ToMessageID        int64 `json:"to_message_id"`
	MessagesBackfilled int   `json:"messages_backfilled"`
	// Unrecoverable says, in words, what the events API lost for good.
	Unrecoverable string `json:"unrecoverable"`
}

// resync backfills the messages a lost queue missed and publishes the
// resync control event.
//
// Until the batch of the new queue is checkpointed, the checkpoint keeps
// naming the old queue; after a crash here, the next start finds the old
// queue gone, registers again and resumes the backfill from the last page
// checkpointed, skipping (by read-back) what was already published. The
// resync event's dedup key names the old queue, so that it too is
// published once.
func (p *Pipeline) resync(ctx context.Context, b source.Batch) error {
	lost := b.Lost
	p.log.Warn("event queue lost: backfilling messages", "old_queue_id", lost.OldQueueID, "new_queue_id", lost.NewQueueID, "max_message_id", p.maxMessageID)
	from, to := p.maxMessageID, int64(0)
	if b.Registered != nil {
		to = b.Registered.MaxMessageID
	}
	n, err := p.backfill(ctx, lost, from, to)
	if err != nil {
		return err
	}
	p.log.Info("backfilled messages after queue loss", "count", n, "from_message_id", from, "to_message_id", to)
	r := Resync{
		Type: "resync", Site: p.site.String(),
		OldQueueID: lost.OldQueueID, OldLastEventID: lost.OldLastEventID, NewQueueID: lost.NewQueueID,
		LastSuccessAt: lost.LastSuccess.UTC(), DetectedAt: lost.LostAt.UTC(), RegisteredAt: p.clock.Now().UTC(),
		FromMessageID: from, ToMessageID: max(from, to), MessagesBackfilled: n,
		Unrecoverable: "events other than new messages (edits, deletions, reactions, stream, user, " +
			"subscription and presence changes, typing) that happened after the old queue's last " +
			"acknowledged event (old_last_event_id) and before registered_at; the new queue's initial " +
			"state (bridge.state with BRIDGE_PUBLISH_INITIAL_STATE=true) reflects their result",
	}
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("resync event: %w", err)
	}
	return p.publishControl(ctx, "resync", lost.OldQueueID, payload)
}

// backfill publishes the messages with ids in (from, to] page by page,
// checkpointing (against the old queue) after each page so that a crash
// does not start it over. It returns how many it published.
//
// Pages go through the same stages as events (drain.go): the next page is
// fetched while the current one is mapped, the one before published, and
// the last confirmed one checkpointed; the backfill metric moves with each
// confirmed page, and a long backfill logs its progress.
func (p *Pipeline) backfill(ctx context.Context, lost *source.QueueLost, from, to int64) (int, error) {
	var (
		published int
		pages     int
		logged    = p.clock.Now()
	)
	// Runs on the publish stage's goroutine, page after page.
	confirmed := func(n int, at int64) func() {
		return func() {
			published += n
			pages++
			p.obs.Backfilled(n)
			if now := p.clock.Now(); now.Sub(logged) >= backfillLogEvery {
				logged = now
				p.log.Info("backfill in progress", "published", published, "pages", pages, "at_message_id", at, "to_message_id", to)
			}
		}
	}
	err := p.stages(ctx, lost.OldQueueID, nil, func(sctx context.Context, out chan<- chunk) error {
		defer close(out)
		for pg := range p.fetchPages(sctx, from, to) {
			if pg.err != nil {
				return pg.err
			}
			msgs := make([]*mapping.Message, 0, len(pg.msgs))
			for _, pm := range pg.msgs {
				m, err := p.mapper.MapBackfilledMessage(pm, lost.NewQueueID)
				if err != nil {
					p.log.Warn("backfilled message cannot be mapped; publishing it as a bridge.invalid control event", "message_id", pm.ID, "error", err)
				}
				m, dup, err := p.prepare(m, err, lost.NewQueueID, "message/"+strconv.FormatInt(pm.ID, 10), pm.Raw)
				switch {
				case err != nil:
					return err
				case dup:
					continue
				}
				msgs = append(msgs, m)
			}
			// The new queue may deliver the newest of these again (a
			// message sent while it was being registered): remember the
			// last page.
			clear(p.lastPage)
			for _, m := range msgs {
				p.lastPage[m.DedupKey] = struct{}{}
			}
			p.maxMessageID = max(p.maxMessageID, pg.last)
			c := chunk{ctx: sctx, end: func(error) {}, msgs: msgs, confirmed: confirmed(len(msgs), pg.last),
				mark: mark{lastID: lost.OldLastEventID, maxMessageID: p.maxMessageID}}
			select {
			case out <- c:
			case <-sctx.Done():
				return nil
			}
		}
		return nil
	}, nil)
	return published, err
}

// backfillLogEvery paces the progress lines of a long backfill.
const backfillLogEvery = 10 * time.Second

// page is one GET /messages page of a backfill: its messages in (anchor,
// to], and the highest id among them.
type page struct {
	msgs []source.Message
	last int64
	err  error
}

// fetchPages fetches the pages of messages with ids in (from, to] one
// ahead of their consumer; the channel closes after the last page, a
// failure (sent as a page with err), or when ctx ends.
func (p *Pipeline) fetchPages(ctx context.Context, from, to int64) <-chan page {
	out := make(chan page, 1)
	go func() {
		defer close(out)
		for anchor := from; anchor < to; {
			var msgs []source.Message
			var foundNewest bool
			err := p.retry(ctx, "backfill: get messages", func() error {
				var err error
				msgs, foundNewest, err = p.client.GetMessages(ctx, anchor, p.cfg.BackfillPageSize)
				return err
			})
			pg := page{last: anchor, err: err}
			for _, m := range msgs {
				if m.ID > anchor && m.ID <= to {
					pg.msgs = append(pg.msgs, m)
					pg.last = max(pg.last, m.ID)
				}
			}
			select {
			case out <- pg:
			case <-ctx.Done():
				return
			}
			if err != nil || pg.last == anchor || foundNewest {
				return
			}
			anchor = pg.last
		}
	}()
	return out
}
