package telemetry

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/zulip-bridge/zulip-bridge/spool"
)

// TestMetricsTable: docs/operations.md lists the bridge's metrics exactly
// as MetricsMarkdown renders them, and what /metrics exports matches that
// table: every metric, its type, its help and its label names.
func TestMetricsTable(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- metrics-table:begin -->\n", "<!-- metrics-table:end -->"
	s := string(doc)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatal("docs/operations.md has no metrics-table markers")
	}
	if got, want := s[i+len(begin):j], MetricsMarkdown(); got != want {
		t.Errorf("docs/operations.md metrics table:\n%s\nwant (MetricsMarkdown):\n%s", got, want)
	}

	tel, _ := newTelemetry(t, Config{})
	ctx := context.Background()
	in := tel.m
	in.received.Add(ctx, 1, in.typeAttr("message"))
	in.skipped.Add(ctx, 1, in.skipAttr("message", "duplicate"))
	in.published.Add(ctx, 1, in.typeAttr("message"))
	in.publishDuration.Record(ctx, 0.1, in.byOutcome[outcomeOK])
	in.lag.Record(ctx, 1)
	in.batchDuration.Record(ctx, 0.1, in.byOutcome[outcomeOK])
	in.lastEventID.Record(ctx, 5)
	tel.ObserveSpool(func() spool.Stats { return spool.Stats{Pending: 2, Bytes: 100, Limit: 1000, Forwarded: 7} })
	tel.ObserveLeader(func() bool { return true }, func() uint64 { return 1 })
	got := scrapeMetrics(t, tel)
	for _, m := range metricSpecs {
		f := got.families[m.promName()]
		if f == nil {
			if m.name != specZulipRequests.name && m.name != specZulipDuration.name {
				t.Errorf("%s is not exported", m.promName())
			}
			continue
		}
		if typ := strings.ToLower(f.GetType().String()); typ != m.kind {
			t.Errorf("%s is a %s, the table says %s", m.promName(), typ, m.kind)
		}
		if f.GetHelp() != m.help {
			t.Errorf("%s help %q, the table says %q", m.promName(), f.GetHelp(), m.help)
		}
		want := strings.Split(m.labels, ", ")
		if m.labels == "" {
			want = nil
		}
		slices.Sort(want)
		for _, series := range f.GetMetric() {
			if names := labelNames(series); !slices.Equal(names, want) {
				t.Errorf("%s has labels %v, the table says %v", m.promName(), names, want)
			}
		}
	}
	for name := range got.families {
		if strings.HasPrefix(name, "zulip_bridge_") && !slices.ContainsFunc(metricSpecs, func(m metricSpec) bool { return m.promName() == name }) {
			t.Errorf("%s is exported but not in the table", name)
		}
	}
}

// labelNames lists a series' label names, sorted, leaving out the
// exporter's otel_scope_* labels.
func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		if !strings.HasPrefix(l.GetName(), "otel_scope_") {
			out = append(out, l.GetName())
		}
	}
	slices.Sort(out)
	return out
}
