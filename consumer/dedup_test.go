package consumer_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/zulip-bridge/zulip-bridge/consumer"
)

func TestWindowBounded(t *testing.T) {
	ctx := context.Background()
	w := consumer.NewWindow(3)
	for i := range 5 {
		if err := w.Mark(ctx, fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Mark(ctx, "4") // again: no eviction
	for i, want := range []bool{false, false, true, true, true} {
		if got, _ := w.Seen(ctx, fmt.Sprint(i)); got != want {
			t.Errorf("Seen(%d) = %v, want %v", i, got, want)
		}
	}
	if w.Len() != 3 {
		t.Errorf("Len = %d, want 3", w.Len())
	}
}
