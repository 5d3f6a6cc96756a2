package telemetry_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/telemetry"
)

// TestReplaceLogAttrDurations logs durations (top level, in a group, given
// as slog.Duration and as slog.Any) through the JSON and the text handler
// and wants them as Go duration strings, other values untouched.
func TestReplaceLogAttrDurations(t *testing.T) {
	d := 402882171 * time.Nanosecond
	logTo := func(h slog.Handler) {
		slog.New(h).With("since", 90*time.Second).Info("retrying",
			slog.Duration("retry_in", d), slog.Any("backoff", 2*time.Second),
			slog.Group("batch", slog.Duration("took", 1500*time.Microsecond)),
			slog.Int64("count", 402882171))
	}
	opts := &slog.HandlerOptions{ReplaceAttr: telemetry.ReplaceLogAttr}

	var js bytes.Buffer
	logTo(slog.NewJSONHandler(&js, opts))
	var got map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, js.String())
	}
	want := map[string]any{"retry_in": "402.882171ms", "backoff": "2s", "since": "1m30s", "count": float64(402882171)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("JSON %s = %#v, want %#v (line %s)", k, got[k], v, js.String())
		}
	}
	if b, _ := got["batch"].(map[string]any); b["took"] != "1.5ms" {
		t.Errorf("JSON batch.took = %#v, want \"1.5ms\" (line %s)", b["took"], js.String())
	}

	var txt bytes.Buffer
	logTo(slog.NewTextHandler(&txt, opts))
	for _, w := range []string{"retry_in=402.882171ms", "backoff=2s", "since=1m30s", "batch.took=1.5ms", "count=402882171"} {
		if !strings.Contains(txt.String(), w) {
			t.Errorf("text line lacks %s: %s", w, txt.String())
		}
	}
}
