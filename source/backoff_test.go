package source

import (
	"errors"
	"testing"
	"time"

	"github.com/zulip-bridge/zulip-bridge/internal/retry"
)

func TestBackoffCeiling(t *testing.T) {
	base, max := 500*time.Millisecond, 30*time.Second
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, w := range want {
		if got := retry.Ceiling(base, max, i+1); got != w {
			t.Errorf("attempt %d: ceiling %v, want %v", i+1, got, w)
		}
	}
	if got := retry.Ceiling(base, max, 10_000); got != max {
		t.Errorf("attempt 10000: ceiling %v, want the cap %v", got, max)
	}
	if got := retry.Ceiling(time.Duration(1<<62), time.Duration(1<<62+1), 3); got != time.Duration(1<<62+1) {
		t.Errorf("overflowing ceiling %v, want the cap", got)
	}
}

func TestExponentialBackoffFullJitter(t *testing.T) {
	fracs := []float64{0, 0.5, 0.999}
	for _, f := range fracs {
		b := ExponentialBackoff(time.Second, 8*time.Second, func() float64 { return f })
		for attempt := 1; attempt <= 6; attempt++ {
			ceil := retry.Ceiling(time.Second, 8*time.Second, attempt)
			want := time.Duration(f * float64(ceil))
			if got := b(attempt); got != want {
				t.Errorf("rnd %v attempt %d: %v, want %v", f, attempt, got, want)
			}
		}
	}
	// With the real source, every delay stays under its ceiling and they
	// are not all equal.
	b := ExponentialBackoff(time.Second, 8*time.Second, nil)
	seen := map[time.Duration]bool{}
	for range 50 {
		d := b(3)
		if d < 0 || d >= 4*time.Second {
			t.Fatalf("delay %v outside [0, 4s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatal("50 jittered delays were all equal")
	}
}

func TestRetryDelayHonoursRetryAfter(t *testing.T) {
	b := func(int) time.Duration { return time.Second }
	rl := &RateLimitError{RetryAfter: 2500 * time.Millisecond, Err: &APIError{Status: 429}}
	tests := []struct {
		name string
		err  error
		want time.Duration
	}{
		{"plain error", errors.New("x"), time.Second},
		{"rate limit longer than backoff", rl, 2500 * time.Millisecond},
		{"wrapped rate limit", errorsJoin(rl), 2500 * time.Millisecond},
		{"503 retry-after shorter than backoff", &APIError{Status: 503, RetryAfter: 100 * time.Millisecond}, time.Second},
	}
	for _, tt := range tests {
		if got := retryDelay(b, 1, tt.err); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func errorsJoin(err error) error { return errors.Join(errors.New("context"), err) }
