package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// scriptSink answers Publish and PublishedSince from a script, recording
// each call with the time on the fake clock.
type scriptSink struct {
	fc      *clockwork.FakeClock
	mu      sync.Mutex
	publish []error
	since   []func() (map[string]struct{}, error)
	calls   []string
}

func (s *scriptSink) record(call string) {
	s.calls = append(s.calls, fmt.Sprintf("%s@%v", call, s.fc.Since(retryEpoch)))
}

func (s *scriptSink) Publish(_ context.Context, msgs []*mapping.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, len(msgs))
	for i, m := range msgs {
		keys[i] = m.DedupKey
	}
	s.record("publish " + strings.Join(keys, ","))
	err := s.publish[0]
	s.publish = s.publish[1:]
	return err
}

func (s *scriptSink) PublishedSince(context.Context, json.RawMessage) (map[string]struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record("read back")
	f := s.since[0]
	s.since = s.since[1:]
	return f()
}

func (s *scriptSink) Position(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`1`), nil
}
func (s *scriptSink) Close(context.Context) error { return nil }

func (s *scriptSink) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

var retryEpoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func stored(keys ...string) func() (map[string]struct{}, error) {
	return func() (map[string]struct{}, error) {
		m := map[string]struct{}{}
		for _, k := range keys {
			m[k] = struct{}{}
		}
		return m, nil
	}
}

func readBackFails() (map[string]struct{}, error) { return nil, errors.New("read-back: no answer") }

// publishEnv is a pipeline's publisher toward s, on a fake clock with a
// backoff of n seconds before retry n; reports collects what it tells the
// status.
func publishEnv(s *scriptSink) (*publisher, *[]error, *testutil.SyncBuffer) {
	p, _, logs := retryPipeline()
	p.clock = s.fc
	p.cfg.PublishBatch, p.cfg.PublishTimeout = 100, time.Minute
	var reports []error
	w := newPublisher(p, "broker", s, func(err error) { reports = append(reports, err) }, false)
	w.pos = json.RawMessage(`1`)
	return w, &reports, logs
}

func messages(keys ...string) []*mapping.Message {
	out := make([]*mapping.Message, len(keys))
	for i, k := range keys {
		out[i] = &mapping.Message{DedupKey: k}
	}
	return out
}

// runPublish runs w.publish in the background, advancing the fake clock by
// each of waits once the publisher waits, and returns its result.
func runPublish(t *testing.T, ctx context.Context, w *publisher, fc *clockwork.FakeClock, msgs []*mapping.Message, waits ...time.Duration) error {
	t.Helper()
	bound, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.publish(ctx, msgs) }()
	for _, d := range waits {
		if err := fc.BlockUntilContext(bound, 1); err != nil {
			t.Fatalf("waiting for the publisher to wait %v: %v", d, err)
		}
		fc.Advance(d)
	}
	select {
	case err := <-done:
		return err
	case <-bound.Done():
		t.Fatal("publish did not return")
		return nil
	}
}

// TestPublishRetries: a failed publish is followed, after a wait, by a
// read-back, and only what it shows missing is sent again; a failed
// read-back is retried after the next, longer wait. Publishes and
// read-backs share one backoff. The broker is said down once and up once.
func TestPublishRetries(t *testing.T) {
	fc := clockwork.NewFakeClockAt(retryEpoch)
	down := errors.New("broker unreachable")
	s := &scriptSink{fc: fc,
		publish: []error{&sink.PublishError{Failed: []int{1, 2}, Err: down}, down, nil},
		since:   []func() (map[string]struct{}, error){readBackFails, stored("b"), stored()},
	}
	w, reports, logs := publishEnv(s)
	err := runPublish(t, t.Context(), w, fc, messages("a", "b", "c"), time.Second, 2*time.Second, 3*time.Second)
	if err != nil {
		t.Fatalf("publish = %v", err)
	}
	want := []string{"publish a,b,c@0s", "read back@1s", "read back@3s", "publish c@3s", "read back@6s", "publish c@6s"}
	if got := s.log(); !slices.Equal(got, want) {
		t.Errorf("calls\n%q, want\n%q", got, want)
	}
	if len(*reports) != 3 || (*reports)[0] == nil || (*reports)[1] == nil || (*reports)[2] != nil {
		t.Errorf("status told %v, want the failure twice, then nil", *reports)
	}
	if out := logs.String(); strings.Count(out, "broker down") != 1 || strings.Count(out, "broker up") != 1 {
		t.Errorf("want \"broker down\" and \"broker up\" logged once each:\n%s", out)
	}
}

// TestPublishRetriesEnd: a read-back that shows everything stored ends the
// retries without publishing again; a stop during the wait returns the
// context's error; a fenced term returns the fence's error at once.
func TestPublishRetriesEnd(t *testing.T) {
	down := errors.New("broker unreachable")
	t.Run("all stored", func(t *testing.T) {
		fc := clockwork.NewFakeClockAt(retryEpoch)
		s := &scriptSink{fc: fc, publish: []error{down}, since: []func() (map[string]struct{}, error){readBackFails, stored("a", "b")}}
		w, reports, _ := publishEnv(s)
		if err := runPublish(t, t.Context(), w, fc, messages("a", "b"), time.Second, 2*time.Second); err != nil {
			t.Fatalf("publish = %v", err)
		}
		want := []string{"publish a,b@0s", "read back@1s", "read back@3s"}
		if got := s.log(); !slices.Equal(got, want) {
			t.Errorf("calls %q, want %q", got, want)
		}
		if len(*reports) != 1 || !w.down {
			t.Errorf("status told %v (down %v), want the failure once and no recovery yet", *reports, w.down)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		fc := clockwork.NewFakeClockAt(retryEpoch)
		s := &scriptSink{fc: fc, publish: []error{down}}
		w, _, _ := publishEnv(s)
		ctx, cancel := context.WithCancel(t.Context())
		s.since = []func() (map[string]struct{}, error){func() (map[string]struct{}, error) { cancel(); return readBackFails() }}
		err := runPublish(t, ctx, w, fc, messages("a"), time.Second)
		if !errors.Is(err, context.Canceled) || err.Error() != "publish: context canceled" {
			t.Errorf("publish = %v, want the context's error", err)
		}
	})
	t.Run("fenced", func(t *testing.T) {
		fc := clockwork.NewFakeClockAt(retryEpoch)
		s := &scriptSink{fc: fc, publish: []error{down}}
		w, _, _ := publishEnv(s)
		f := &flipFence{}
		w.p.fence = f
		s.since = []func() (map[string]struct{}, error){func() (map[string]struct{}, error) { f.set(errors.New("term 2 ended")); return stored()() }}
		err := runPublish(t, t.Context(), w, fc, messages("a"), time.Second)
		if !errors.Is(err, ErrFenced) || err.Error() != "no longer the leader: term 2 ended" {
			t.Errorf("publish = %v, want the fence's error as it is", err)
		}
		if got, want := s.log(), []string{"publish a@0s", "read back@1s"}; !slices.Equal(got, want) {
			t.Errorf("calls %q, want %q", got, want)
		}
	})
}

// flipFence is a term that ends when set is called.
type flipFence struct {
	mu  sync.Mutex
	err error
}

func (f *flipFence) set(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }
func (f *flipFence) Check() error  { f.mu.Lock(); defer f.mu.Unlock(); return f.err }
func (f *flipFence) Number() uint64 {
	return 2
}
func (f *flipFence) Done() <-chan struct{} { return nil }
