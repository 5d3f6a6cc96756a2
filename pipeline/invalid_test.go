package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
)

// TestUnmappableEvents: events that cannot become a valid message (a
// template renders a subject over the NATS limit for a stream with a very
// long name; a type that cannot be a subject token) are published as
// <prefix>.bridge.invalid with the reason and the event, acknowledged, and
// the queue moves on. A restart after they were stored but not confirmed
// does not publish them twice.
func TestUnmappableEvents(t *testing.T) {
	w := newWorld(t)
	mcfg := mapping.Config{SubjectTemplate: "{prefix}.{type}.{op}.{scope}.{stream}"}
	fc := clockwork.NewFakeClock()
	entered := make(chan struct{})
	var hung []*mapping.Message
	b := w.start(options{
		mapping: mcfg,
		clock:   fc,
		cfg:     pipeline.Config{ShutdownTimeout: shutdownTimeout},
		publish: func(ctx context.Context, msgs []*mapping.Message, next func(context.Context, []*mapping.Message) error) error {
			if err := next(ctx, msgs); err != nil || hung != nil || !hasSubject(msgs, "zulip.bridge.invalid") {
				return err
			}
			// Stored, never confirmed: the next start must find them.
			hung = msgs
			close(entered)
			<-ctx.Done()
			return ctx.Err()
		},
	})
	q := b.queueID()
	w.send(1, "before")
	w.waitAcked(q)

	longName := strings.Repeat("Long stream name ", 150) // 2550 bytes, over the subject limit
	// HTML-sensitive characters catch a payload that re-encodes the event.
	invalid := []int64{
		w.inject(fmt.Sprintf(`{"type":"stream","op":"update","stream_id":1,"name":%q,"property":"description","value":"<p>R&D</p>","rendered_description":"<p>R&amp;D</p>"}`, longName))[q],
		w.inject(`{"type":"no such type!","detail":"a < b && c > d"}`)[q],
	}
	waitClosed(t, entered, "the unmappable events to reach the broker")
	b.cancel()
	if err := fc.BlockUntilContext(w.ctx, 1); err != nil {
		t.Fatal(err)
	}
	fc.Advance(shutdownTimeout)
	if err := b.wait(); err != nil {
		t.Fatalf("Run: %v", err)
	}

	b2 := w.start(options{mapping: mcfg})
	w.send(2, "after")
	w.waitAcked(q)
	if err := b2.stop(); err != nil {
		t.Fatalf("Run after restart: %v", err)
	}
	// The two events may have come in one batch or two; those of the
	// batch stored but not confirmed are found by reading back.
	if n := b2.obs.duplicates.Load(); n != int64(len(hung)) {
		t.Errorf("restart skipped %d duplicates, want the %d messages stored but not confirmed", n, len(hung))
	}

	control := w.checkStream(w.readStream(), expectation{queues: []string{q}, invalid: invalid, customSubjects: true})
	stored := controlEvents(control, "invalid")
	if len(stored) != len(invalid) || len(control) != len(invalid) {
		t.Fatalf("control events %v, want %d invalid", control, len(invalid))
	}
	for i, want := range []error{mapping.ErrInvalidName, mapping.ErrInvalidEvent} {
		var p struct {
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(stored[i].data, &p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.Reason, want.Error()) {
			t.Errorf("invalid event %d: reason %q, want it to say %q", invalid[i], p.Reason, want)
		}
	}
}

func hasSubject(msgs []*mapping.Message, subject string) bool {
	for _, m := range msgs {
		if m.Subject == subject {
			return true
		}
	}
	return false
}
