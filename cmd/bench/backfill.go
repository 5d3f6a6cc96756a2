package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// backfillPage is the bridge's default BRIDGE_BACKFILL_PAGE_SIZE, which the
// bench leaves unset.
const backfillPage = 1000

// backfill measures how fast the bridge recovers the messages of a lost
// queue: -events messages are sent while the bridge is stopped, the
// queue expires, and the bridge is started again. The baseline is the
// simulator serving the same GET /messages pages to a plain HTTP client.
func (b *bench) backfill(ctx context.Context, sink string) (*backfillResult, error) {
	sim, err := newSimulator()
	if err != nil {
		return nil, err
	}
	defer sim.Close()
	n := max(1, b.cfg.events)
	lanes, err := b.prepare(ctx, sim, "backfill", []string{sink}, n, true, spoolOff)
	if err != nil {
		return nil, err
	}
	l := lanes[0]
	defer l.close()
	if !sim.ExpireQueue(l.queueID) {
		return nil, fmt.Errorf("%s: queue %s vanished before it was expired", sink, l.queueID)
	}

	// The baseline runs just before and just after the bridge, and
	// counts their average, so that a burst of load from elsewhere
	// weighs on both sides alike.
	// Its CPU time (this process's: the simulator and the client) is
	// counted the same way.
	var walkCPU time.Duration
	walk := func() (time.Duration, int, error) {
		began, cpu := time.Now(), selfCPU()
		served, pages, err := walkMessages(ctx, sim)
		if err != nil {
			return 0, 0, err
		}
		if int64(served) != l.backlog {
			return 0, 0, fmt.Errorf("%s: GET /messages served %d messages, the queue had %d", sink, served, l.backlog)
		}
		walkCPU += selfCPU() - cpu
		return time.Since(began), pages, nil
	}
	before, pages, err := walk()
	if err != nil {
		return nil, err
	}

	// The messages, then the resync control event that ends the backfill.
	o, err := b.drain(ctx, sim, l, l.backlog+1, "backfill")
	if err != nil {
		return nil, err
	}
	if !o.finished {
		return nil, fmt.Errorf("%s: the broker holds %d of %d backfilled messages and the resync event after %s", sink, o.inBroker, l.backlog, b.cfg.timeout)
	}
	after, _, err := walk()
	if err != nil {
		return nil, err
	}
	baseline := (before + after) / 2
	stored, err := l.broker.readBack(ctx)
	if err != nil {
		return nil, err
	}
	if got := stored.withHeader("Zulip-Backfill", "true"); int64(got) != l.backlog {
		return nil, fmt.Errorf("%s: %d backfilled messages in the broker, want %d", sink, got, l.backlog)
	}
	r := &backfillResult{
		Messages: l.backlog, Pages: pages,
		BridgeSeconds: o.took.Seconds(), BaselineSeconds: baseline.Seconds(),
		BridgeCPUMicros:   micros(o.bridgeCPU, int(l.backlog)),
		ServerCPUMicros:   micros(o.benchCPU, int(l.backlog)),
		BaselineCPUMicros: micros(walkCPU/2, int(l.backlog)),
	}
	r.BridgeMPS = float64(r.Messages) / r.BridgeSeconds
	r.BaselineMPS = float64(r.Messages) / r.BaselineSeconds
	r.Ratio = r.BridgeMPS / r.BaselineMPS
	b.logf("backfill %s: %d messages, bridge %.0f/s, GET /messages %.0f/s, ratio %.3f; CPU µs per message: bridge %.1f + broker,simulator %.1f, GET /messages %.1f",
		sink, r.Messages, r.BridgeMPS, r.BaselineMPS, r.Ratio, r.BridgeCPUMicros, r.ServerCPUMicros, r.BaselineCPUMicros)
	return r, nil
}

// walkMessages fetches every message the bot can see, oldest first, in
// pages of backfillPage, as the bridge's backfill asks for them: anchor
// walking forward from 0, include_anchor false.
func walkMessages(ctx context.Context, sim *zuliptest.Server) (messages, pages int, err error) {
	for anchor := int64(0); ; {
		q := url.Values{
			"anchor": {strconv.FormatInt(anchor, 10)}, "num_before": {"0"}, "num_after": {strconv.Itoa(backfillPage)},
			"include_anchor": {"false"}, "apply_markdown": {"false"}, "client_gravatar": {"false"},
		}
		var page struct {
			Messages []struct {
				ID int64 `json:"id"`
			} `json:"messages"`
			FoundNewest bool `json:"found_newest"`
		}
		if err := simCall(ctx, sim, http.MethodGet, "messages", q, &page); err != nil {
			return 0, 0, err
		}
		pages++
		messages += len(page.Messages)
		if len(page.Messages) > 0 {
			anchor = page.Messages[len(page.Messages)-1].ID
		}
		if page.FoundNewest || len(page.Messages) == 0 {
			return messages, pages, nil
		}
	}
}
