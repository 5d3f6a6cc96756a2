package helm

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "zulip-bridge"
	// The release every render uses; the Kubernetes version is the one the install
	// tests run.
	releaseName      = "zb"
	releaseNamespace = "chat"
	kubeVersion      = "v1.37.2"
	monitoringAPI    = "monitoring.coreos.com/v1"
)

// objectScheme knows exactly the groups the chart may render. The decoder built on it
// is strict: an unknown kind, an unknown or duplicate field fails.
var objectScheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		networkingv1.AddToScheme, rbacv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

var strictDecoder = json.NewSerializerWithOptions(json.DefaultMetaFactory, objectScheme, objectScheme,
	json.SerializerOptions{Yaml: true, Strict: true})

var loadChart = sync.OnceValues(func() (*chartv2.Chart, error) { return loader.Load(chartDir) })

// capabilities of the cluster a render targets: Kubernetes 1.37 with its built-in
// APIs, and the prometheus-operator's when monitoring is true.
func capabilities(t testing.TB, monitoring bool) *common.Capabilities {
	t.Helper()
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	caps.APIVersions = slices.Clone(common.DefaultVersionSet)
	if monitoring {
		caps.APIVersions = append(caps.APIVersions, monitoringAPI,
			monitoringAPI+"/ServiceMonitor", monitoringAPI+"/PodMonitor", monitoringAPI+"/PrometheusRule")
	}
	return caps
}

// renderOpts chooses how a render runs.
type renderOpts struct {
	monitoring bool // the cluster serves monitoring.coreos.com/v1
	skipSchema bool // like helm install --skip-schema-validation
}

// renderChart renders the chart as helm install would, with the values over the
// chart's defaults; it returns every rendered file by template name (NOTES.txt included).
func renderChart(t testing.TB, vals map[string]any, o renderOpts) (map[string]string, error) {
	t.Helper()
	chrt, err := loadChart()
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	// The engine and the coalescing may modify the values: give each render its own copy.
	vals, err = deepCopy(vals)
	if err != nil {
		t.Fatal(err)
	}
	top, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals,
		common.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true},
		capabilities(t, o.monitoring), o.skipSchema)
	if err != nil {
		return nil, err
	}
	return engine.Engine{Strict: true}.Render(chrt, top)
}

func deepCopy(vals map[string]any) (map[string]any, error) {
	b, err := yaml.Marshal(vals)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	return out, yaml.Unmarshal(b, &out)
}

// rendered is one render of the chart, every object decoded strictly.
type rendered struct {
	files   map[string]string
	objects []runtime.Object
	notes   string
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// mustRender renders and decodes; any error fails the test.
func mustRender(t testing.TB, vals map[string]any, o renderOpts) rendered {
	t.Helper()
	files, err := renderChart(t, vals, o)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	r := rendered{files: files}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if strings.HasSuffix(name, "NOTES.txt") {
			r.notes = files[name]
			continue
		}
		for _, doc := range docSeparator.Split(files[name], -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			obj, gvk, err := strictDecoder.Decode([]byte(doc), nil, nil)
			if err != nil {
				t.Fatalf("%s: strict decode: %v\n%s", name, err, doc)
			}
			if gvk.Kind == "" {
				t.Fatalf("%s: object without kind:\n%s", name, doc)
			}
			r.objects = append(r.objects, obj)
		}
	}
	return r
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// kinds lists the kinds rendered, sorted, e.g. "ConfigMap/zb-zulip-bridge".
func (r rendered) kinds() []string {
	var out []string
	for _, o := range r.objects {
		out = append(out, kindOf(o)+"/"+nameOf(o))
	}
	sort.Strings(out)
	return out
}

func kindOf(o runtime.Object) string {
	gvks, _, err := objectScheme.ObjectKinds(o)
	if err != nil || len(gvks) == 0 {
		return fmt.Sprintf("%T", o)
	}
	return gvks[0].Kind
}

func nameOf(o runtime.Object) string {
	if m, ok := o.(interface{ GetName() string }); ok {
		return m.GetName()
	}
	return "?"
}

// one returns the only object of type T, failing unless there is exactly one.
func one[T runtime.Object](t testing.TB, r rendered) T {
	t.Helper()
	all := all[T](r)
	if len(all) != 1 {
		var zero T
		t.Fatalf("want exactly one %T, got %d (%v)", zero, len(all), r.kinds())
	}
	return all[0]
}

func all[T runtime.Object](r rendered) []T {
	var out []T
	for _, o := range r.objects {
		if v, ok := o.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// ciCase is one values file under zulip-bridge/ci.
type ciCase struct {
	name string
	vals map[string]any
}

func ciCases(t testing.TB) []ciCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no ci values files: %v", err)
	}
	var out []ciCase
	for _, p := range paths {
		vals, err := common.ReadValuesFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, ciCase{strings.TrimSuffix(filepath.Base(p), "-values.yaml"), vals.AsMap()})
	}
	return out
}

// readValues parses YAML values written in a test.
func readValues(t testing.TB, s string) map[string]any {
	t.Helper()
	v, err := common.ReadValues([]byte(s))
	if err != nil {
		t.Fatalf("values: %v\n%s", err, s)
	}
	return v.AsMap()
}

// merged returns base with over merged in (maps recursively, the rest replaced).
func merged(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		if vm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok {
				out[k] = merged(bm, vm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
