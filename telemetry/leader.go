package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/metric"
)

var (
	specLeader = metricSpec{"zulip_bridge_leader", "gauge", "", "",
		"1 while this replica leads (polls Zulip and publishes), 0 while it stands by; always 1 with BRIDGE_LEADER_ELECTION=off. The sum over replicas is 1 when all is well."}
	specLeaderChanges = metricSpec{"zulip_bridge_leader_changes", "counter", "{change}", "",
		"Leadership changes of this replica: each time it was elected and each time its term ended."}

	leaderSpecs = []metricSpec{specLeader, specLeaderChanges}
)

// ObserveLeader exports whether this replica leads and how often that
// changed, read at every collection. Call it once.
func (t *Telemetry) ObserveLeader(leading func() bool, changes func() uint64) {
	obs := t.observables("leader")
	gauge, counter := obs.intGauge(specLeader), obs.intCounter(specLeaderChanges)
	obs.register(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(gauge, b2i(leading()))
		o.ObserveInt64(counter, int64(changes()))
		return nil
	}, gauge, counter)
}
