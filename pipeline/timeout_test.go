package pipeline_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// TestPublishThatNeverAnswers: a publish that neither confirms nor fails
// is abandoned after PublishTimeout and retried, instead of holding the
// loop (and the queue) forever; the retry stores each message once.
func TestPublishThatNeverAnswers(t *testing.T) {
	w := newWorld(t)
	var swallowed atomic.Int32
	var abandoned atomic.Value
	b := w.start(options{
		cfg: pipeline.Config{PublishTimeout: 200 * time.Millisecond},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if !hasSubject(msgs, "zulip.message.stream.1") || !swallowed.CompareAndSwap(0, 1) {
				return next(ctx, msgs)
			}
			// The broker took the batch and went silent.
			if err := next(context.WithoutCancel(ctx), msgs); err != nil {
				return err
			}
			<-ctx.Done()
			abandoned.Store(ctx.Err())
			return ctx.Err()
		},
	})
	q := b.queueID()
	ids := w.send(5, "silent broker")
	w.waitAcked(q)
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err, _ := abandoned.Load().(error); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the silent publish was not abandoned by the timeout: %v", err)
	}
	counts := map[string]int{}
	for _, m := range w.readStream() {
		counts[m.h(mapping.HeaderMessageID)]++
	}
	for _, id := range ids {
		if n := counts[strconv.FormatInt(id, 10)]; n != 1 {
			t.Errorf("message %d stored %d times, want once", id, n)
		}
	}
}
