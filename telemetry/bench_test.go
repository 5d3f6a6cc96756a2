package telemetry

import (
	"context"
	"log/slog"
	"testing"

	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// discardSink confirms everything at once: what remains is the wrapper's cost.
type discardSink struct{}

func (discardSink) Publish(ctx context.Context, _ []*mapping.Message) error { return ctx.Err() }
func (discardSink) Close(context.Context) error                             { return nil }

// BenchmarkPublish compares a 100-message Publish on a bare sink (the
// baseline) with the instrumented one, tracing off and on, including the
// Observer's per-message counting and lag.
func BenchmarkPublish(b *testing.B) {
	batch := make([]*mapping.Message, 100)
	for i := range batch {
		batch[i] = messageEvent(i+1, i+1, epoch.Unix())
	}
	run := func(b *testing.B, s sink.Sink, published func([]*mapping.Message)) {
		ctx := b.Context()
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Publish(ctx, batch); err != nil {
				b.Fatal(err)
			}
			published(batch)
		}
	}
	newTel := func(b *testing.B, opts ...Option) *Telemetry {
		tel, err := New(b.Context(), Config{}, slog.New(slog.DiscardHandler), opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		return tel
	}
	b.Run("baseline", func(b *testing.B) {
		run(b, discardSink{}, func([]*mapping.Message) {})
	})
	b.Run("tracing=off", func(b *testing.B) {
		tel := newTel(b)
		obs := tel.Observer()
		run(b, tel.WrapSink(discardSink{}), func(m []*mapping.Message) { obs.Published(m, nil, 0) })
	})
	b.Run("tracing=on", func(b *testing.B) {
		tel := newTel(b, WithSpanExporter(tracetest.NewNoopExporter()))
		obs := tel.Observer()
		run(b, tel.WrapSink(discardSink{}), func(m []*mapping.Message) { obs.Published(m, nil, 0) })
	})
}
