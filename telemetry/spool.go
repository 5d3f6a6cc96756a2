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
	obs := t.observables("spool")
	pending, size, limit, full := obs.intGauge(specSpoolPending), obs.intGauge(specSpoolBytes), obs.intGauge(specSpoolLimit), obs.intGauge(specSpoolFull)
	oldest, forwarded := obs.floatGauge(specSpoolOldest), obs.intCounter(specSpoolForwarded)
	obs.register(func(_ context.Context, o metric.Observer) error {
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
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
