package helm

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Series that come from Prometheus or kube-state-metrics rather than the bridge. A
// dashboard or rule may use them, nothing else that the bridge does not export.
var standardSeries = map[string]bool{
	"up":                    true, // every scrape target
	"kube_pod_status_ready": true, // kube-state-metrics, only with prometheusRule.kubeStateMetrics
}

// Labels Prometheus attaches to every series of a Kubernetes target (ServiceMonitor or
// PodMonitor), besides those the bridge exports.
var targetLabels = map[string]bool{"namespace": true, "pod": true, "job": true, "instance": true, "service": true, "container": true, "endpoint": true, "condition": true}

// promUse is what one PromQL expression reads.
type promUse struct {
	where     string
	selectors []*parser.VectorSelector
	groupings [][]string // by (...) label lists, with the selectors below each
	groupSels [][]*parser.VectorSelector
}

func parsePromQL(t *testing.T, where, expr string) promUse {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: PromQL %q: %v", where, expr, err)
	}
	u := promUse{where: where}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			u.selectors = append(u.selectors, n)
		case *parser.AggregateExpr:
			if !n.Without && len(n.Grouping) > 0 {
				var below []*parser.VectorSelector
				parser.Inspect(n.Expr, func(m parser.Node, _ []parser.Node) error {
					if vs, ok := m.(*parser.VectorSelector); ok {
						below = append(below, vs)
					}
					return nil
				})
				u.groupings = append(u.groupings, n.Grouping)
				u.groupSels = append(u.groupSels, below)
			}
		}
		return nil
	})
	if len(u.selectors) == 0 {
		t.Errorf("%s: %q reads no series", where, expr)
	}
	return u
}

// checkUse fails for a series the bridge does not export, a label it does not carry, or
// a label value it never has (a typo such as reason="queuelost" would alert never).
func checkUse(t reporter, s scrape, u promUse) {
	t.Helper()
	for _, vs := range u.selectors {
		name := vs.Name
		if standardSeries[name] {
			continue
		}
		exported, ok := s.series[name]
		if !ok {
			t.Errorf("%s: series %s is not exported by the bridge", u.where, name)
			continue
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" || targetLabels[m.Name] {
				continue
			}
			if m.Type == labels.MatchNotEqual || m.Type == labels.MatchNotRegexp {
				// A negative matcher (status!~"2..") selects what is not exported yet.
				continue
			}
			vals, ok := exported[m.Name]
			if !ok {
				t.Errorf("%s: %s has no label %q (has %v)", u.where, name, m.Name, slices.Sorted(maps.Keys(exported)))
				continue
			}
			matched := false
			for v := range vals {
				if m.Matches(v) {
					matched = true
				}
			}
			if !matched {
				t.Errorf("%s: %s{%s} matches none of the exported values %v", u.where, name, m, slices.Sorted(maps.Keys(vals)))
			}
		}
	}
	for i, by := range u.groupings {
		for _, l := range by {
			if targetLabels[l] {
				continue
			}
			for _, vs := range u.groupSels[i] {
				if standardSeries[vs.Name] {
					continue
				}
				if _, ok := s.series[vs.Name][l]; !ok {
					t.Errorf("%s: by (%s): %s has no label %q", u.where, strings.Join(by, ", "), vs.Name, l)
				}
			}
		}
	}
}

// grafanaVars stand in for the dashboard's variables so that its queries parse as
// PromQL: Grafana substitutes them before sending a query.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "$__interval", "1m", "$__range", "6h",
	"${namespace}", "chat", "$namespace", "chat", "${pod}", ".*", "$pod", ".*",
)

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)

// dashboardQueries returns every PromQL query of the dashboard, by panel title, with
// the variable queries (label_values) reduced to their series selector.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []dashPanel `json:"panels"`
	}
	dec := json.NewDecoder(strings.NewReader(readFile(t, "zulip-bridge/dashboards/zulip-bridge.json")))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.UID == "" {
		t.Error("dashboard without uid: Grafana would duplicate it on every sidecar reload")
	}
	out := map[string]string{}
	ids := map[int]bool{}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			if p.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
			}
			for i, tg := range p.Targets {
				out[fmt.Sprintf("panel %q target %d", p.Title, i)] = grafanaVars.Replace(tg.Expr)
			}
		}
	}
	walk(dash.Panels)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(map[string]any)["query"].(string)
		m := labelValuesQuery.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(series, label)", v.Name, q)
			continue
		}
		out["variable "+v.Name] = grafanaVars.Replace(m[1])
	}
	return out
}

type dashPanel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []dashPanel `json:"panels"`
}

// TestDashboardUsesExportedMetrics: every query of the Grafana dashboard parses as
// PromQL and reads only series, labels and label values the running bridge exports;
// and every zulip_bridge_* family is on the dashboard.
func TestDashboardUsesExportedMetrics(t *testing.T) {
	s := exportedMetrics(t)
	used := map[string]bool{}
	for where, q := range dashboardQueries(t) {
		u := parsePromQL(t, where, q)
		checkUse(t, s, u)
		for _, vs := range u.selectors {
			used[family(s, vs.Name)] = true
		}
	}
	for f := range s.families {
		if strings.HasPrefix(f, "zulip_bridge_") && !used[f] {
			t.Errorf("metric %s is exported but not on the dashboard", f)
		}
	}
}

// TestAlertsUseExportedMetrics: every expression of the PrometheusRule (kube-state-metrics
// alert included) parses and reads only what the bridge exports, and the alerts an
// operator needs read the metrics they are about.
func TestAlertsUseExportedMetrics(t *testing.T) {
	s := exportedMetrics(t)
	// With leader election on, so that the alerts about it render too.
	vals := merged(readValues(t, credentials), readValues(t, `prometheusRule: {enabled: true, kubeStateMetrics: true}
serviceMonitor: {enabled: true}
leaderElection: {backend: lease}
nats: {url: "nats://nats:4222"}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}`))
	pr := one[*monitoringv1.PrometheusRule](t, mustRender(t, vals, renderOpts{monitoring: true}))
	reads := map[string][]string{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			u := parsePromQL(t, rule.Alert, rule.Expr.String())
			checkUse(t, s, u)
			for _, vs := range u.selectors {
				reads[rule.Alert] = append(reads[rule.Alert], vs.Name)
				if !standardSeries[vs.Name] || vs.Name == "up" {
					// The chart's selector: this release's series only.
					if !hasMatcher(vs, "namespace", releaseNamespace) || !hasMatcher(vs, "job", releaseName+"-zulip-bridge") {
						t.Errorf("%s: %s does not select this release's job and namespace: %s", rule.Alert, vs.Name, vs)
					}
				}
			}
		}
	}
	for alert, want := range map[string][]string{
		"ZulipBridgeDown":          {"up"},
		"ZulipBridgeNotReady":      {"kube_pod_status_ready"},
		"ZulipBridgeQueueLost":     {"zulip_bridge_queue_registrations_total"},
		"ZulipBridgePublishErrors": {"zulip_bridge_publish_errors_total"},
		"ZulipBridgeStalled":       {"zulip_bridge_last_event_id", "zulip_bridge_zulip_requests_total", "zulip_bridge_leader"},
		"ZulipBridgeNoLeader":      {"zulip_bridge_leader"},
		"ZulipBridgeZulipErrors":   {"zulip_bridge_zulip_requests_total"},
		"ZulipBridgeBackfilling":   {"zulip_bridge_backfilled_messages_total"},
	} {
		for _, w := range want {
			if !slices.Contains(reads[alert], w) {
				t.Errorf("alert %s does not read %s (reads %v)", alert, w, reads[alert])
			}
		}
	}
}

func hasMatcher(vs *parser.VectorSelector, name, value string) bool {
	for _, m := range vs.LabelMatchers {
		if m.Name == name && m.Matches(value) {
			return true
		}
	}
	return false
}

// family maps a series name to its metric family (histograms export _bucket, _sum and
// _count series).
func family(s scrape, series string) string {
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, suffix); ok && s.families[f] == "histogram" {
			return f
		}
	}
	return series
}

// TestPromQLCheckFails proves the checks above can fail: a misspelt series, label and
// label value are each reported.
func TestPromQLCheckFails(t *testing.T) {
	s := parseMetrics(`# TYPE zulip_bridge_queue_registrations_total counter
zulip_bridge_queue_registrations_total{reason="initial"} 1
zulip_bridge_queue_registrations_total{reason="queue_lost"} 0
`)
	for _, tc := range []struct{ expr, want string }{
		{`zulip_bridge_queue_registration_total`, "not exported"},
		{`zulip_bridge_queue_registrations_total{reasons="x"}`, `has no label "reasons"`},
		{`zulip_bridge_queue_registrations_total{reason="queuelost"}`, "matches none"},
		{`sum by (kind) (zulip_bridge_queue_registrations_total)`, `has no label "kind"`},
	} {
		ft := &fakeT{}
		checkUse(ft, s, parsePromQL(t, "case", tc.expr))
		if !strings.Contains(strings.Join(ft.errs, "\n"), tc.want) {
			t.Errorf("%s: errors %q, want %q", tc.expr, ft.errs, tc.want)
		}
	}
}

// reporter is the part of testing.T the checks report through.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type fakeT struct{ errs []string }

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
