package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/source/zuliptest"
)

// chunkEventIDs returns the lowest and highest Zulip-Event-Id of msgs.
func chunkEventIDs(t *testing.T, msgs []*mapping.Message) (lo, hi int64) {
	lo = -1
	for _, m := range msgs {
		v, ok := m.Get(mapping.HeaderEventID)
		if !ok {
			continue
		}
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Errorf("Zulip-Event-Id %q", v)
		}
		if lo < 0 {
			lo = id
		}
		hi = id
	}
	return lo, hi
}

// TestStreamedBacklog: a backlog many times BRIDGE_ZULIP_MAX_RESPONSE_BYTES
// comes in one response and drains without a queue loss, chunk by chunk:
// each confirmed chunk is checkpointed while the response is still being
// read, no checkpoint ever names an event whose message is not confirmed,
// and the one event over the limit is set aside as a notice under its own
// dedup key.
func TestStreamedBacklog(t *testing.T) {
	w := newWorld(t)
	b1 := w.start(options{})
	q := b1.queueID()
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	const limit = 16 << 10
	var ids []int64
	for i := range 120 {
		ids = append(ids, w.send(1, fmt.Sprintf("t%d %s", i, strings.Repeat("x", 900)))...)
	}
	big, err := w.sim.SendMessage(zuliptest.SendRequest{To: "Denmark", Topic: "big", Content: strings.Repeat("y", 2*limit)})
	if err != nil {
		t.Fatal(err)
	}
	ids = append(ids, w.send(5, "after")...)

	var (
		mu     sync.Mutex
		chunks int
		prevHi int64 = -1 // last event of the chunk before
	)
	b2 := w.start(options{
		maxResponse: limit,
		cfg:         pipeline.Config{PublishBatch: 10},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			lo, hi := chunkEventIDs(t, msgs)
			if lo < 0 {
				return next(ctx, msgs) // a control event
			}
			// The previous chunk's checkpoint is written while this one
			// is published: wait for it (the response is still being
			// read), and it must not name this chunk.
			deadline := time.Now().Add(waitLimit)
			for {
				cp := readCheckpoint(t, w.stateDir)
				if cp.QueueID == q && cp.LastEventID >= lo {
					t.Errorf("checkpoint names event %d while the chunk from event %d is not confirmed", cp.LastEventID, lo)
				}
				if cp.QueueID == q && cp.LastEventID >= prevHi {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("the chunk ending at event %d was not checkpointed while the response went on", prevHi)
					return fmt.Errorf("no checkpoint")
				}
				time.Sleep(time.Millisecond) // polling a file another goroutine writes
			}
			mu.Lock()
			chunks++
			mu.Unlock()
			err := next(ctx, msgs)
			prevHi = hi
			return err
		},
	})
	w.waitAcked(q)
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}
	if qs := w.sim.Queues(); len(qs) != 1 || qs[0].ID != q {
		t.Fatalf("queues %+v, want %s kept (a large backlog is no queue loss)", qs, q)
	}
	if h, _ := w.sim.History(q); len(h.Delivered) == 0 {
		t.Fatal("nothing delivered")
	}
	mu.Lock()
	if chunks < 12 {
		t.Errorf("%d chunks published; want the backlog in chunks of 10", chunks)
	}
	mu.Unlock()

	byKey := map[string][]stored{}
	for _, m := range w.readStream() {
		k := m.h(mapping.HeaderDedupKey)
		byKey[k] = append(byKey[k], m)
	}
	for _, id := range ids {
		got := byKey[fmt.Sprintf("%s/message/%d", w.host, id)]
		wantSubject := id != big
		if len(got) != 1 || (got[0].subject != "zulip.bridge.invalid") == !wantSubject {
			t.Errorf("message %d: %v, want it once (the large one as zulip.bridge.invalid)", id, got)
		}
	}
	var notice struct {
		Reason   string `json:"reason"`
		Type     string `json:"type"`
		DedupKey string `json:"dedup_key"`
		Bytes    int    `json:"bytes"`
		Limit    int    `json:"limit"`
	}
	n := byKey[fmt.Sprintf("%s/message/%d", w.host, big)]
	if len(n) != 1 {
		t.Fatalf("no notice for the large message")
	}
	if err := json.Unmarshal(n[0].data, &notice); err != nil {
		t.Fatal(err)
	}
	if notice.Limit != limit || notice.Bytes <= limit || notice.Type != "message" || notice.DedupKey != fmt.Sprintf("%s/message/%d", w.host, big) ||
		!strings.Contains(notice.Reason, "BRIDGE_ZULIP_MAX_RESPONSE_BYTES") {
		t.Errorf("notice %s", n[0].data)
	}
	if lines := w.logs.String(); !strings.Contains(lines, "event larger than BRIDGE_ZULIP_MAX_RESPONSE_BYTES") {
		t.Error("the set-aside event was not logged")
	}
}

// TestStopMidResponse: a bridge stopped (its broker no longer confirming)
// in the middle of a large response keeps the checkpoint of the last
// confirmed chunk; the next one resumes after it, and every message is
// stored once.
func TestStopMidResponse(t *testing.T) {
	w := newWorld(t)
	b1 := w.start(options{})
	q := b1.queueID()
	if err := b1.stop(); err != nil {
		t.Fatal(err)
	}
	ids := w.send(100, "backlog")

	held := make(chan struct{})
	var once sync.Once
	calls := 0
	b2 := w.start(options{
		cfg: pipeline.Config{PublishBatch: 10, ShutdownTimeout: 50 * time.Millisecond},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if calls++; calls < 5 {
				return next(ctx, msgs)
			}
			// The fifth chunk is stored but never confirmed.
			if err := next(ctx, msgs); err != nil {
				return err
			}
			once.Do(func() { close(held) })
			<-ctx.Done()
			return ctx.Err()
		},
	})
	waitClosed(t, held, "the fifth chunk")
	if err := b2.stop(); err != nil {
		t.Fatal(err)
	}
	cp := readCheckpoint(t, w.stateDir)
	h, _ := w.sim.History(q)
	if cp.QueueID != q || cp.LastEventID < 0 || cp.LastEventID >= h.Info.LastEventID {
		t.Fatalf("checkpoint at event %d of queue %s; want one inside the response (queue %s, last event %d)", cp.LastEventID, cp.QueueID, q, h.Info.LastEventID)
	}
	b3 := w.start(options{cfg: pipeline.Config{PublishBatch: 10}})
	w.waitAcked(q)
	if err := b3.stop(); err != nil {
		t.Fatal(err)
	}
	_ = ids
	w.checkStream(w.readStream(), expectation{queues: []string{q}})
}
