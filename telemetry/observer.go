package telemetry

import (
	"context"
	"errors"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/zulip-bridge/zulip-bridge/mapping"
	"github.com/zulip-bridge/zulip-bridge/pipeline"
	"github.com/zulip-bridge/zulip-bridge/sink"
)

// SpanBatch is the name of the span around every polled batch, from
// receipt to checkpoint; the publish spans of the batch are its children.
const SpanBatch = "zulip_bridge.batch"

// Observer returns the pipeline hooks that feed the metrics of doc.go and
// start one span per batch. Publish errors and durations are not counted
// here but by WrapSink, which sees every Publish call; use both.
func (t *Telemetry) Observer() pipeline.Observer {
	m := t.m
	bg := context.Background()
	return pipeline.Observer{
		OnBatch: t.batch,
		OnReceived: func(eventType string) {
			m.received.Add(bg, 1, m.typeAttr(eventType))
		},
		OnSkipped: func(eventType, reason string) {
			m.skipped.Add(bg, 1, m.skipAttr(eventType, reason))
		},
		OnPublished: func(msgs []*mapping.Message, err error, _ time.Duration) {
			t.published(msgs, err)
		},
		OnRegistered: func(lost bool) {
			reason := regInitial
			if lost {
				reason = regQueueLost
			}
			m.registrations.Add(bg, 1, m.byRegister[reason])
		},
		OnBackfilled: func(n int) {
			if n > 0 {
				m.backfilled.Add(bg, int64(n))
			}
		},
		OnLastEventID: func(id int64) {
			m.lastEventID.Record(bg, id)
		},
	}
}

func (t *Telemetry) batch(ctx context.Context, queueID string, events int) (context.Context, func(error)) {
	began := t.clock.Now()
	ctx, span := t.tracer.Start(ctx, SpanBatch,
		trace.WithTimestamp(began),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingBatchMessageCount(events),
			attribute.String("zulip.queue_id", queueID),
		))
	return ctx, func(err error) {
		ended := t.clock.Now()
		t.m.batchDuration.Record(ctx, ended.Sub(began).Seconds(), t.m.byOutcome[outcome(err)])
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, "batch failed")
		}
		span.End(trace.WithTimestamp(ended))
	}
}

// maxTimestamp is the end of year 9999: a later message timestamp is not a
// time, and gives no lag.
const maxTimestamp = 253402300799

// published counts the messages of a Publish call that the broker
// confirmed, and the lag of the message events among them.
func (t *Telemetry) published(msgs []*mapping.Message, err error) {
	failed, all := unconfirmed(err)
	if all {
		return
	}
	m := t.m
	bg := context.Background()
	now := t.clock.Now()
	// Counted per type, then added once per type: a batch holds few types,
	// and an Add costs far more than a comparison.
	var counts []typeCount
	next := 0 // index into failed, which is ascending
	for i, msg := range msgs {
		if next < len(failed) && failed[next] == i {
			for next < len(failed) && failed[next] == i {
				next++
			}
			continue
		}
		eventType, _ := msg.Get(mapping.HeaderEventType)
		counts = addCount(counts, eventType)
		if eventType != "message" {
			continue
		}
		// The mapper read the message's timestamp when it parsed the
		// event (also inside a structured CloudEvent, and for backfilled
		// messages): no second pass over the payload. 0: none.
		if ts := msg.Event.Timestamp; ts > 0 && ts <= maxTimestamp {
			lag := now.Sub(time.Unix(ts, 0)).Seconds()
			// A server clock ahead of ours would make the lag negative.
			m.lag.Record(bg, max(0, lag))
		}
	}
	for _, c := range counts {
		m.published.Add(bg, c.n, m.typeAttr(c.eventType))
	}
}

type typeCount struct {
	eventType string
	n         int64
}

func addCount(counts []typeCount, eventType string) []typeCount {
	for i := range counts {
		if counts[i].eventType == eventType {
			counts[i].n++
			return counts
		}
	}
	return append(counts, typeCount{eventType, 1})
}

// unconfirmed returns the indexes of the batch that err says were not
// confirmed, or all=true when none of it may be taken as confirmed
// (the contract of sink.Sink.Publish).
func unconfirmed(err error) (failed []int, all bool) {
	if err == nil {
		return nil, false
	}
	var pe *sink.PublishError
	if !errors.As(err, &pe) {
		return nil, true
	}
	if !slices.IsSorted(pe.Failed) {
		return slices.Sorted(slices.Values(pe.Failed)), false
	}
	return pe.Failed, false
}
