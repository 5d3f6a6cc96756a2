package telemetry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Histogram buckets, in seconds.
var (
	// publishBuckets spans a JetStream or Kafka confirmation on a LAN (a
	// millisecond) to a broker that is failing over (tens of seconds).
	publishBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
	// lagBuckets start at half a second, since Zulip timestamps are whole
	// seconds, and reach a day for messages backfilled after an outage.
	lagBuckets = []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600, 86400}
	// batchBuckets cover a chunk from receipt to confirmation, including
	// publish retries while the broker is down.
	batchBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}
	// zulipBuckets reach past the 90 s long-poll of GET /events.
	zulipBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 90, 120}
)

// metricSpec is one of the bridge's metrics: what creates the instrument
// and what docs/operations.md lists (MetricsMarkdown), from one place.
type metricSpec struct {
	name   string // OpenTelemetry name; Prometheus adds _total or _seconds
	kind   string // counter, histogram or gauge
	unit   string // "s" for histograms
	labels string // comma-separated label names, "" for none
	help   string // the description, one sentence
}

// promName is the name Prometheus renders: counters get _total, unit "s"
// gets _seconds.
func (m metricSpec) promName() string {
	switch {
	case m.kind == "counter":
		return m.name + "_total"
	case m.unit == "s":
		return m.name + "_seconds"
	}
	return m.name
}

var (
	specReceived = metricSpec{"zulip_bridge_events_received", "counter", "{event}", "type",
		"Events polled from Zulip, heartbeats included, by event type."}
	specSkipped = metricSpec{"zulip_bridge_events_skipped", "counter", "{event}", "type, reason",
		"Events acknowledged without publishing, by event type and reason (heartbeat; duplicate: already in the broker)."}
	specPublished = metricSpec{"zulip_bridge_events_published", "counter", "{event}", "type",
		"Messages the broker confirmed, backfilled ones included, by event type (bridge: the bridge's control events)."}
	specPublishErrors = metricSpec{"zulip_bridge_publish_errors", "counter", "{error}", "kind",
		"Failed publish calls, by kind (partial: part of the batch was confirmed; timeout; canceled; error)."}
	specPublishDuration = metricSpec{"zulip_bridge_publish_duration", "histogram", "s", "outcome",
		"Duration of publish calls until the broker confirmed the batch or failed, by outcome (ok or error)."}
	specLag = metricSpec{"zulip_bridge_message_lag", "histogram", "s", "",
		"Time from a message's Zulip timestamp to the broker's confirmation of its message event."}
	specBatchDuration = metricSpec{"zulip_bridge_batch_duration", "histogram", "s", "outcome",
		"Duration of a chunk of a polled response (at most BRIDGE_PUBLISH_BATCH events) from receipt until the broker (with the spool on: the spool) confirmed it, publish retries included, or of a registration until its checkpoint, by outcome."}
	specRegistrations = metricSpec{"zulip_bridge_queue_registrations", "counter", "{registration}", "reason",
		"Zulip event queue registrations, by reason (initial; queue_lost: the previous queue expired or the server lost it)."}
	specBackfilled = metricSpec{"zulip_bridge_backfilled_messages", "counter", "{message}", "",
		"Messages recovered with GET /messages after a queue loss and published."}
	specLastEventID = metricSpec{"zulip_bridge_last_event_id", "gauge", "", "",
		"The last event id acknowledged to Zulip on the current queue (-1 before the first)."}
	specZulipRequests = metricSpec{"zulip_bridge_zulip_requests", "counter", "{request}", "endpoint, method, status",
		"Requests to the Zulip API, by endpoint, method and HTTP status (timeout, canceled or error: no response)."}
	specZulipDuration = metricSpec{"zulip_bridge_zulip_request_duration", "histogram", "s", "endpoint, method",
		"Duration of Zulip API requests until the response headers, by endpoint and method; GET /events long-polls up to 90 s."}

	metricSpecs = append([]metricSpec{specReceived, specSkipped, specPublished, specPublishErrors, specPublishDuration, specLag,
		specBatchDuration, specRegistrations, specBackfilled, specLastEventID, specZulipRequests, specZulipDuration}, append(spoolSpecs, leaderSpecs...)...)
)

// MetricsMarkdown returns the table of the bridge's own metrics, as
// Prometheus renders them, that docs/operations.md holds (a test compares
// the two whole).
func MetricsMarkdown() string {
	var b strings.Builder
	b.WriteString("| metric | type | labels | meaning |\n| --- | --- | --- | --- |\n")
	for _, m := range metricSpecs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.promName(), m.kind, m.labels, m.help)
	}
	return b.String()
}

// instruments are the bridge's metrics, one per metricSpec.
type instruments struct {
	received        metric.Int64Counter
	skipped         metric.Int64Counter
	published       metric.Int64Counter
	publishErrors   metric.Int64Counter
	publishDuration metric.Float64Histogram
	lag             metric.Float64Histogram
	batchDuration   metric.Float64Histogram
	registrations   metric.Int64Counter
	backfilled      metric.Int64Counter
	lastEventID     metric.Int64Gauge
	zulipRequests   metric.Int64Counter
	zulipDuration   metric.Float64Histogram

	// Attribute sets are built once: the per-event paths then allocate
	// nothing for labels.
	byType     map[string]metric.MeasurementOption
	bySkip     map[[2]string]metric.MeasurementOption
	byErrKind  map[string]metric.MeasurementOption
	byOutcome  [2]metric.MeasurementOption // outcomeOK, outcomeError
	byRegister map[string]metric.MeasurementOption
}

const (
	outcomeOK = iota
	outcomeError
)

func newInstruments(meter metric.Meter) (*instruments, error) {
	var (
		in   instruments
		errs []error
	)
	counter := func(m metricSpec) metric.Int64Counter {
		c, err := meter.Int64Counter(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help))
		errs = append(errs, err)
		return c
	}
	histogram := func(m metricSpec, buckets []float64) metric.Float64Histogram {
		h, err := meter.Float64Histogram(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help), metric.WithExplicitBucketBoundaries(buckets...))
		errs = append(errs, err)
		return h
	}
	in.received = counter(specReceived)
	in.skipped = counter(specSkipped)
	in.published = counter(specPublished)
	in.publishErrors = counter(specPublishErrors)
	in.publishDuration = histogram(specPublishDuration, publishBuckets)
	in.lag = histogram(specLag, lagBuckets)
	in.batchDuration = histogram(specBatchDuration, batchBuckets)
	in.registrations = counter(specRegistrations)
	in.backfilled = counter(specBackfilled)
	lastID, err := meter.Int64Gauge(specLastEventID.name, metric.WithDescription(specLastEventID.help))
	errs = append(errs, err)
	in.lastEventID = lastID
	in.zulipRequests = counter(specZulipRequests)
	in.zulipDuration = histogram(specZulipDuration, zulipBuckets)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("telemetry: create instruments: %w", err)
	}

	in.byType = make(map[string]metric.MeasurementOption, len(eventTypes)+1)
	in.bySkip = make(map[[2]string]metric.MeasurementOption)
	for _, t := range slices.Concat(eventTypes, []string{otherLabel}) {
		in.byType[t] = metric.WithAttributeSet(attribute.NewSet(attribute.String("type", t)))
		for _, r := range slices.Concat(skipReasons, []string{otherLabel}) {
			in.bySkip[[2]string{t, r}] = metric.WithAttributeSet(attribute.NewSet(attribute.String("type", t), attribute.String("reason", r)))
		}
	}
	in.byErrKind = make(map[string]metric.MeasurementOption, len(publishErrorKinds))
	for _, k := range publishErrorKinds {
		in.byErrKind[k] = metric.WithAttributeSet(attribute.NewSet(attribute.String("kind", k)))
	}
	in.byOutcome[outcomeOK] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok")))
	in.byOutcome[outcomeError] = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "error")))
	in.byRegister = map[string]metric.MeasurementOption{
		regInitial:   metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", regInitial))),
		regQueueLost: metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", regQueueLost))),
	}

	// Series that alerts are written against exist from the start at 0,
	// so that rate() and increase() see the first error instead of a
	// series appearing out of nowhere.
	ctx := context.Background()
	for _, k := range publishErrorKinds {
		in.publishErrors.Add(ctx, 0, in.byErrKind[k])
	}
	for _, o := range in.byRegister {
		in.registrations.Add(ctx, 0, o)
	}
	in.backfilled.Add(ctx, 0)
	// Each skip reason with the type it comes with: a heartbeat is of type
	// heartbeat; duplicates are mostly messages (any type can be one; the
	// others appear with their first duplicate).
	for _, s := range initialSkips {
		in.skipped.Add(ctx, 0, in.skipAttr(s[0], s[1]))
	}
	return &in, nil
}

// typeAttr returns the label set for an event type, "other" for a type not
// in the allow-list.
func (in *instruments) typeAttr(eventType string) metric.MeasurementOption {
	if o, ok := in.byType[eventType]; ok {
		return o
	}
	return in.byType[otherLabel]
}

func (in *instruments) skipAttr(eventType, reason string) metric.MeasurementOption {
	if _, ok := in.byType[eventType]; !ok {
		eventType = otherLabel
	}
	if o, ok := in.bySkip[[2]string{eventType, reason}]; ok {
		return o
	}
	return in.bySkip[[2]string{eventType, otherLabel}]
}

func outcome(err error) int {
	if err != nil {
		return outcomeError
	}
	return outcomeOK
}
