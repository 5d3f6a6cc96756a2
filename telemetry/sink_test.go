package telemetry

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// TestWrapSinkKeepsOptionalInterfaces checks that the wrapper is a
// sink.Recoverer or sink.ReadyChecker exactly when the wrapped sink is, and
// that those calls and Close reach it.
func TestWrapSinkKeepsOptionalInterfaces(t *testing.T) {
	tel, _ := newTelemetry(t, Config{})
	tests := []struct {
		name             string
		sink             sink.Sink
		recoverer, ready bool
	}{
		{"plain", &memorySink{}, false, false},
		{"recoverer", recoveringSink{&memorySink{}}, true, false},
		{"ready checker", readySink{&memorySink{}}, false, true},
		{"both", fullSink{recoveringSink{&memorySink{}}, readySink{&memorySink{}}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tel.WrapSink(tt.sink)
			if u, ok := w.(interface{ Unwrap() sink.Sink }); !ok || u.Unwrap() != tt.sink {
				t.Errorf("Unwrap does not return the wrapped sink")
			}
			rec, isRec := w.(sink.Recoverer)
			if isRec != tt.recoverer {
				t.Fatalf("wrapper is a Recoverer: %v, want %v", isRec, tt.recoverer)
			}
			if isRec {
				pos, err := rec.Position(t.Context())
				if err != nil || string(pos) != `{"seq":7}` {
					t.Errorf("Position = %s, %v; want the sink's", pos, err)
				}
				keys, err := rec.PublishedSince(t.Context(), json.RawMessage(`{"seq":3}`))
				if _, ok := keys[`since:{"seq":3}`]; err != nil || !ok {
					t.Errorf("PublishedSince = %v, %v; want the sink's answer for the position passed", keys, err)
				}
			}
			rc, isReady := w.(sink.ReadyChecker)
			if isReady != tt.ready {
				t.Fatalf("wrapper is a ReadyChecker: %v, want %v", isReady, tt.ready)
			}
			if isReady {
				if err := rc.Ready(t.Context()); !errors.Is(err, errNotReady) {
					t.Errorf("Ready = %v, want the sink's %v", err, errNotReady)
				}
			}
			if err := w.Publish(t.Context(), []*mapping.Message{messageEvent(1, 1, 0)}); err != nil {
				t.Fatalf("Publish: %v", err)
			}
			if err := w.Close(t.Context()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			inner := innerMemorySink(tt.sink)
			if len(inner.batches) != 1 || !inner.closed {
				t.Errorf("wrapped sink got %d batches, closed %v; want 1 and true", len(inner.batches), inner.closed)
			}
		})
	}
}

func innerMemorySink(s sink.Sink) *memorySink {
	switch s := s.(type) {
	case *memorySink:
		return s
	case recoveringSink:
		return s.memorySink
	case readySink:
		return s.memorySink
	case fullSink:
		return s.recoveringSink.memorySink
	}
	panic("unknown test sink")
}
