package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"

	"github.com/zulip-bridge/zulip-bridge/spool"
)

var (
	specSpoolPending = metricSpec{"zulip_bridge_spool_pending_events", "gauge", "", "",
		"Events in the spool not yet confirmed by the broker (with BRIDGE_SPOOL on)."}
	specSpoolBytes = metricSpec{"zulip_bridge_spool_bytes", "gauge", "", "",
		"Bytes the spool's entries take, against zulip_bridge_spool_limit_bytes."}
	specSpoolLimit = metricSpec{"zulip_bridge_spool_limit_bytes", "gauge", "", "",
		"The spool's size limit, BRIDGE_SPOOL_MAX_BYTES."}
	specSpoolFull = metricSpec{"zulip_bridge_spool_full", "gauge", "", "",
		"1 while the spool is full and nothing more is acknowledged to Zulip, else 0."}
	specSpoolOldest = metricSpec{"zulip_bridge_spool_oldest_age", "gauge", "s", "",
		"Age of the oldest event in the spool not yet forwarded to the broker; 0 when none waits."}
	specSpoolForwarded = metricSpec{"zulip_bridge_spool_forwarded_events", "counter", "{event}", "",
		"Events forwarded from the spool to the broker (the rate is the forward rate); it counts on across restarts."}

	spoolSpecs = []metricSpec{specSpoolPending, specSpoolBytes, specSpoolLimit, specSpoolFull, specSpoolOldest, specSpoolForwarded}
)

// ObserveSpool exports the spool's figures, read from stats at every
// collection. Call it once, when the spool is on.
func (t *Telemetry) ObserveSpool(stats func() spool.Stats) {
	meter := t.meters.Meter(scope)
	gauge := func(m metricSpec) metric.Int64ObservableGauge {
		g, err := meter.Int64ObservableGauge(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help))
		if err != nil {
			t.log.Error("telemetry: spool metric", "metric", m.name, "error", err)
		}
		return g
	}
	pending, size, limit, full := gauge(specSpoolPending), gauge(specSpoolBytes), gauge(specSpoolLimit), gauge(specSpoolFull)
	oldest, err := meter.Float64ObservableGauge(specSpoolOldest.name, metric.WithUnit(specSpoolOldest.unit), metric.WithDescription(specSpoolOldest.help))
	if err != nil {
		t.log.Error("telemetry: spool metric", "metric", specSpoolOldest.name, "error", err)
	}
	forwarded, err := meter.Int64ObservableCounter(specSpoolForwarded.name, metric.WithUnit(specSpoolForwarded.unit), metric.WithDescription(specSpoolForwarded.help))
	if err != nil {
		t.log.Error("telemetry: spool metric", "metric", specSpoolForwarded.name, "error", err)
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		st := stats()
		o.ObserveInt64(pending, int64(st.Pending))
		o.ObserveInt64(size, st.Bytes)
		o.ObserveInt64(limit, st.Limit)
		o.ObserveInt64(full, b2i(st.Full))
		age := 0.0
		if !st.Oldest.IsZero() {
			age = max(0, t.clock.Since(st.Oldest).Seconds())
		}
		o.ObserveFloat64(oldest, age)
		o.ObserveInt64(forwarded, int64(st.Forwarded))
		return nil
	}, pending, size, limit, full, oldest, forwarded)
	if err != nil {
		t.log.Error("telemetry: spool metrics callback", "error", err)
	}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
