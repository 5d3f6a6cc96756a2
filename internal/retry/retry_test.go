package retry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
)

func TestSleep(t *testing.T) {
	clock := clockwork.NewFakeClock()
	done := make(chan error, 1)
	go func() { done <- Sleep(context.Background(), clock, time.Minute) }()
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("Sleep returned %v before the clock moved", err)
	default:
	}
	clock.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Errorf("Sleep = %v after the clock moved", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- Sleep(ctx, clock, time.Hour) }()
	if err := clock.BlockUntilContext(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep = %v after cancel, want context.Canceled", err)
	}
	if err := Sleep(ctx, clock, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Sleep(0) on a done context = %v", err)
	}
	if err := Sleep(context.Background(), clock, -time.Second); err != nil {
		t.Errorf("Sleep(negative) = %v", err)
	}
}
