package telemetry

import "go.opentelemetry.io/otel/metric"

// observables makes the observable instruments of one Observe* call and
// registers their callback. A failure is logged ("telemetry: <what>
// metric") and the instrument the meter returned is used as it is, so the
// other metrics still work.
type observables struct {
	t     *Telemetry
	meter metric.Meter
	what  string
}

func (t *Telemetry) observables(what string) observables {
	return observables{t: t, meter: t.meters.Meter(scope), what: what}
}

func (o observables) check(m metricSpec, err error) {
	if err != nil {
		o.t.log.Error("telemetry: "+o.what+" metric", "metric", m.name, "error", err)
	}
}

func (o observables) intGauge(m metricSpec) metric.Int64ObservableGauge {
	g, err := o.meter.Int64ObservableGauge(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help))
	o.check(m, err)
	return g
}

func (o observables) floatGauge(m metricSpec) metric.Float64ObservableGauge {
	g, err := o.meter.Float64ObservableGauge(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help))
	o.check(m, err)
	return g
}

func (o observables) intCounter(m metricSpec) metric.Int64ObservableCounter {
	c, err := o.meter.Int64ObservableCounter(m.name, metric.WithUnit(m.unit), metric.WithDescription(m.help))
	o.check(m, err)
	return c
}

// register has f called at every collection, observing instruments.
func (o observables) register(f metric.Callback, instruments ...metric.Observable) {
	if _, err := o.meter.RegisterCallback(f, instruments...); err != nil {
		o.t.log.Error("telemetry: "+o.what+" metrics callback", "error", err)
	}
}
