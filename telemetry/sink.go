package telemetry

import (
	"context"
	"errors"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// SpanPublish is the name of the span around every Publish.
const SpanPublish = "zulip_bridge.publish"

// WrapSink returns s instrumented: a span per Publish (a child of the batch
// span in ctx), the publish error counter and the publish duration
// histogram, and, when tracing is on, the publish span's context in every
// message's traceparent and tracestate headers.
//
// Messages are never modified: a message that gets trace headers is a copy
// with its own header slice, every other header unchanged and in order, a
// traceparent or tracestate it already had replaced. Indexes in a returned
// *sink.PublishError therefore still refer to the caller's batch.
//
// The result implements sink.Recoverer and sink.ReadyChecker exactly when s
// does, so type assertions on it answer as they would on s; Unwrap returns s.
func (t *Telemetry) WrapSink(s sink.Sink) sink.Sink {
	base := &instrumentedSink{next: s, t: t}
	rec, isRec := s.(sink.Recoverer)
	ready, isReady := s.(sink.ReadyChecker)
	switch {
	case isRec && isReady:
		return &struct {
			*instrumentedSink
			sink.Recoverer
			sink.ReadyChecker
		}{base, rec, ready}
	case isRec:
		return &struct {
			*instrumentedSink
			sink.Recoverer
		}{base, rec}
	case isReady:
		return &struct {
			*instrumentedSink
			sink.ReadyChecker
		}{base, ready}
	default:
		return base
	}
}

type instrumentedSink struct {
	next sink.Sink
	t    *Telemetry
}

// Unwrap returns the sink that WrapSink instrumented.
func (s *instrumentedSink) Unwrap() sink.Sink { return s.next }

func (s *instrumentedSink) Close(ctx context.Context) error { return s.next.Close(ctx) }

func (s *instrumentedSink) Publish(ctx context.Context, msgs []*mapping.Message) error {
	t := s.t
	began := t.clock.Now()
	// Span times come from the same clock as the metrics, so that both
	// tell the same story (and tests can check them with a fake clock).
	ctx, span := t.tracer.Start(ctx, SpanPublish,
		trace.WithTimestamp(began),
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingBatchMessageCount(len(msgs)),
		))

	out := msgs
	if t.spans != nil && span.SpanContext().IsValid() {
		out = t.withTraceContext(ctx, msgs)
	}
	err := s.next.Publish(ctx, out)
	ended := t.clock.Now()
	took := ended.Sub(began).Seconds()

	t.m.publishDuration.Record(ctx, took, t.m.byOutcome[outcome(err)])
	if err != nil {
		t.m.publishErrors.Add(ctx, 1, t.m.byErrKind[publishErrorKind(err)])
		var pe *sink.PublishError
		if errors.As(err, &pe) {
			span.SetAttributes(attribute.Int("zulip_bridge.publish.unconfirmed", len(pe.Failed)))
		}
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
	}
	span.End(trace.WithTimestamp(ended))
	return err
}

// withTraceContext returns copies of msgs carrying the trace context of ctx.
func (t *Telemetry) withTraceContext(ctx context.Context, msgs []*mapping.Message) []*mapping.Message {
	// Every message of the batch carries the same context: render it once.
	var traceHeaders []mapping.Header
	t.propagator.Inject(ctx, headerCarrier{&traceHeaders})
	out := make([]*mapping.Message, len(msgs))
	copies := make([]mapping.Message, len(msgs))
	for i, m := range msgs {
		c := &copies[i]
		*c = *m
		// A stale traceparent, tracestate or baggage is dropped rather
		// than updated, since the new context may have no state.
		c.Headers = make([]mapping.Header, 0, len(m.Headers)+len(traceHeaders))
		for _, h := range m.Headers {
			if !slices.ContainsFunc(t.propFields, func(f string) bool { return strings.EqualFold(h.Key, f) }) {
				c.Headers = append(c.Headers, h)
			}
		}
		c.Headers = append(c.Headers, traceHeaders...)
		out[i] = c
	}
	return out
}

func publishErrorKind(err error) string {
	var pe *sink.PublishError
	switch {
	case errors.As(err, &pe):
		return errPartial
	case errors.Is(err, context.DeadlineExceeded):
		return errTimeout
	case errors.Is(err, context.Canceled):
		return errCanceled
	default:
		return errOther
	}
}
