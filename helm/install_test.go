package helm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/kube"
	rcommon "helm.sh/helm/v4/pkg/release/common"
	release "helm.sh/helm/v4/pkg/release/v1"
	"helm.sh/helm/v4/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
	"k8s.io/kubectl/pkg/validation"
	"sigs.k8s.io/yaml"

	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
)

// The install tests run the chart through the Helm SDK into a real
// kube-apiserver (helm/internal/kubeapi): what the server refuses, a cluster
// would refuse. There is no kubelet or controller manager, so pods never run
// (kubelet_test.go runs the bridge the stored Deployment describes) and no
// controller finishes deletions: a PersistentVolumeClaim keeps its
// kubernetes.io/pvc-protection finalizer after an uninstall.

// monitoringCRDs are the prometheus-operator CRDs whose kinds the chart
// renders, generated from the operator's Go types (testdata/crds/README.md).
var monitoringCRDs = []string{
	"monitoring.coreos.com_servicemonitors.yaml",
	"monitoring.coreos.com_podmonitors.yaml",
	"monitoring.coreos.com_prometheusrules.yaml",
}

const installTimeout = time.Minute

// TestInstall installs, upgrades and uninstalls every values case of
// zulip-bridge/ci with the Helm SDK, and checks that the API server stored
// each object the chart rendered, as rendered.
func TestInstall(t *testing.T) {
	srv := kubeapi.Start(t)
	cases := ciCases(t)

	// Before the operator's API exists the chart must leave its kinds out,
	// as the guard on .Capabilities.APIVersions promises, and install.
	t.Run("monitoring without monitoring.coreos.com", func(t *testing.T) {
		vals := ciCaseValues(t, cases, "monitoring")
		ns := srv.Namespace(t)
		rel := helmInstall(t, helmConfig(t, srv, ns), ns, vals)
		for _, obj := range manifestObjects(t, rel.Manifest) {
			if obj.GroupVersionKind().Group == "monitoring.coreos.com" {
				t.Errorf("%s/%s rendered though the cluster does not serve monitoring.coreos.com/v1", obj.GetKind(), obj.GetName())
			}
		}
		checkStored(t, srv, rel)
	})

	installCRDs(t, srv, monitoringCRDs...)
	t.Run("rejected", func(t *testing.T) {
		t.Parallel()
		testRejected(t, srv, ciCaseValues(t, cases, "nats-embedded"))
	})

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := srv.Namespace(t)
			createPrerequisites(t, srv, ns, c.vals)
			cfg := helmConfig(t, srv, ns)

			rel := helmInstall(t, cfg, ns, c.vals)
			if rel.Version != 1 || rel.Info.Status != rcommon.StatusDeployed {
				t.Fatalf("install: revision %d status %s, want 1 deployed", rel.Version, rel.Info.Status)
			}
			stored := checkStored(t, srv, rel)
			var kinds []string
			for _, o := range stored {
				kinds = append(kinds, o.GetKind())
			}
			t.Logf("stored %v", kinds)
			if c.name == "monitoring" {
				for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
					if !slices.ContainsFunc(stored, func(o *unstructured.Unstructured) bool { return o.GetKind() == kind }) {
						t.Errorf("monitoring case: no %s stored", kind)
					}
				}
			}
			before := storedDeployment(t, stored)
			if b, _, _ := unstructured.NestedFieldNoCopy(c.vals, "leaderElection", "backend"); b == "lease" {
				checkLeaseAccess(t, srv, ns, before)
			}

			// An upgrade that changes the pod template: the server must
			// store the new template under a new generation.
			upgraded := merged(c.vals, map[string]any{
				"podAnnotations": map[string]any{"zulip-bridge.test/revision": "2"},
			})
			up := action.NewUpgrade(cfg)
			up.Namespace = ns
			up.WaitStrategy = kube.HookOnlyStrategy
			up.Timeout = installTimeout
			rr, err := up.RunWithContext(t.Context(), releaseName, loadFreshChart(t), upgraded)
			if err != nil {
				t.Fatalf("upgrade: %v", err)
			}
			rel2 := rr.(*release.Release)
			if rel2.Version != 2 || rel2.Info.Status != rcommon.StatusDeployed {
				t.Fatalf("upgrade: revision %d status %s, want 2 deployed", rel2.Version, rel2.Info.Status)
			}
			after := storedDeployment(t, checkStored(t, srv, rel2))
			if after.GetGeneration() <= before.GetGeneration() {
				t.Errorf("upgrade: Deployment generation %d, was %d", after.GetGeneration(), before.GetGeneration())
			}
			if got, _, _ := unstructured.NestedString(after.Object, "spec", "template", "metadata", "annotations", "zulip-bridge.test/revision"); got != "2" {
				t.Errorf("upgrade: stored pod annotation %q, want 2", got)
			}

			un := action.NewUninstall(cfg)
			un.WaitStrategy = kube.HookOnlyStrategy
			un.Timeout = installTimeout
			if _, err := un.Run(releaseName); err != nil {
				t.Fatalf("uninstall: %v", err)
			}
			checkDeleted(t, srv, rel2)
			if _, err := action.NewHistory(cfg).Run(releaseName); !errors.Is(err, driver.ErrReleaseNotFound) {
				t.Errorf("history after uninstall: %v, want release not found", err)
			}
		})
	}
}

// testRejected proves the server, not only the chart's schema, stands
// between bad input and the cluster: manifests the schema cannot see (a post
// renderer's edits, values with the schema skipped) are refused by the API
// server, and the release fails.
func testRejected(t *testing.T, srv *kubeapi.Server, base map[string]any) {
	tests := []struct {
		name       string
		vals       map[string]any
		skipSchema bool
		edit       func(obj map[string]any) // applied to the Deployment
		wantErr    *regexp.Regexp
	}{{
		name:    "negative replicas",
		vals:    base,
		edit:    func(obj map[string]any) { obj["spec"].(map[string]any)["replicas"] = -1 },
		wantErr: regexp.MustCompile(`spec\.replicas: Invalid value: -1: must be greater than or equal to 0`),
	}, {
		name: "unknown field",
		vals: base,
		edit: func(obj map[string]any) { obj["spec"].(map[string]any)["replicaz"] = 1 },
		// Strict field validation, which Helm asks for, as the server words it
		// for server-side apply or for an update.
		wantErr: regexp.MustCompile(`(field not declared in schema|unknown field).*replicaz|replicaz.*(field not declared in schema|unknown field)`),
	}, {
		name:       "port out of range (schema skipped)",
		vals:       merged(base, map[string]any{"http": map[string]any{"port": 70000}}),
		skipSchema: true,
		wantErr:    regexp.MustCompile(`Invalid value: 70000: must be between 1 and 65535`),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ns := srv.Namespace(t)
			in := action.NewInstall(helmConfig(t, srv, ns))
			in.ReleaseName = releaseName
			in.Namespace = ns
			in.WaitStrategy = kube.HookOnlyStrategy
			in.Timeout = installTimeout
			in.SkipSchemaValidation = tt.skipSchema
			if tt.edit != nil {
				in.PostRenderer = editDeployment(tt.edit)
			}
			_, err := in.RunWithContext(t.Context(), loadFreshChart(t), tt.vals)
			if err == nil || !tt.wantErr.MatchString(err.Error()) {
				t.Fatalf("install: %v, want the API server's error matching %s", err, tt.wantErr)
			}
			t.Logf("refused: %v", err)
			deployments, lerr := srv.Client.AppsV1().Deployments(ns).List(t.Context(), metav1.ListOptions{})
			if lerr != nil {
				t.Fatal(lerr)
			}
			if len(deployments.Items) != 0 {
				t.Errorf("a refused Deployment was stored: %s", deployments.Items[0].Name)
			}
		})
	}
}

// helmConfig returns a Helm action configuration for namespace ns of srv,
// keeping releases in Secrets as the helm CLI does. Helm's log goes to the
// test's at warning level and above.
func helmConfig(t testing.TB, srv *kubeapi.Server, ns string) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &srv.Kubeconfig
	flags.Namespace = &ns
	cacheDir := t.TempDir()
	flags.CacheDir = &cacheDir
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(
		slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		t.Fatalf("helm configuration: %v", err)
	}
	kc := cfg.KubeClient.(*kube.Client)
	kc.Factory = &validatorOnce{Factory: kc.Factory}
	return cfg
}

// validatorOnce keeps the first validator the factory makes for each field
// validation directive. Helm asks for a new one for every manifest it
// builds, and each new one checks again whether the server supports
// server-side field validation for each kind, parsing the server's OpenAPI
// document to find out: most of these tests' CPU under the race detector.
// The answer cannot change while a test's server runs; the directive Helm
// sends, and so what the server validates, stays the same.
type validatorOnce struct {
	kube.Factory
	mu         sync.Mutex
	validators map[string]validation.Schema
}

func (f *validatorOnce) Validator(directive string) (validation.Schema, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.validators[directive]; ok {
		return v, nil
	}
	v, err := f.Factory.Validator(directive)
	if err != nil {
		return nil, err
	}
	if f.validators == nil {
		f.validators = map[string]validation.Schema{}
	}
	f.validators[directive] = v
	return v, nil
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// loadFreshChart loads the chart for one Helm action: the actions set
// fields of the chart they are given, and the cases run in parallel.
func loadFreshChart(t testing.TB) *chartv2.Chart {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return chrt
}

func helmInstall(t testing.TB, cfg *action.Configuration, ns string, vals map[string]any) *release.Release {
	t.Helper()
	in := action.NewInstall(cfg)
	in.ReleaseName = releaseName
	in.Namespace = ns
	// Helm's default waits for readiness, which never comes without a
	// kubelet; hooks (the chart has none) would still be waited for.
	in.WaitStrategy = kube.HookOnlyStrategy
	in.Timeout = installTimeout
	r, err := in.RunWithContext(t.Context(), loadFreshChart(t), vals)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	return r.(*release.Release)
}

func ciCaseValues(t testing.TB, cases []ciCase, name string) map[string]any {
	t.Helper()
	for _, c := range cases {
		if c.name == name {
			return c.vals
		}
	}
	t.Fatalf("no values case %s-values.yaml", name)
	return nil
}

// createPrerequisites creates what a values case names but expects to
// exist: the Secrets of the existingSecret values (each key the case names,
// with a placeholder value) and an existing claim.
func createPrerequisites(t testing.TB, srv *kubeapi.Server, ns string, vals map[string]any) {
	t.Helper()
	secrets := map[string]map[string][]byte{}
	add := func(name string, keys ...string) {
		if name == "" {
			return
		}
		if secrets[name] == nil {
			secrets[name] = map[string][]byte{}
		}
		for _, k := range keys {
			if k != "" {
				secrets[name][k] = []byte("placeholder-" + k)
			}
		}
	}
	str := func(path ...string) string {
		s, _, _ := unstructured.NestedString(vals, path...)
		return s
	}
	keyOr := func(def string, path ...string) string {
		if s := str(path...); s != "" {
			return s
		}
		return def
	}
	add(str("zulip", "existingSecret"), keyOr("zulip-api-key", "zulip", "existingSecretKey"))
	add(str("nats", "auth", "existingSecret"), str("nats", "auth", "existingSecretPasswordKey"),
		str("nats", "auth", "existingSecretTokenKey"), str("nats", "auth", "existingSecretCredsKey"),
		str("nats", "auth", "existingSecretNkeyKey"))
	add(str("kafka", "sasl", "existingSecret"), keyOr("kafka-password", "kafka", "sasl", "existingSecretPasswordKey"))
	for _, broker := range []string{"nats", "kafka"} {
		add(str(broker, "tls", "existingSecret"), keyOr("ca.crt", broker, "tls", "caKey"),
			str(broker, "tls", "certKey"), str(broker, "tls", "keyKey"))
	}
	for name, data := range secrets {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}
		if _, err := srv.Client.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Secret %s: %v", name, err)
		}
	}
	if claim := str("persistence", "existingClaim"); claim != "" {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				},
			},
		}
		if _, err := srv.Client.CoreV1().PersistentVolumeClaims(ns).Create(t.Context(), pvc, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create PersistentVolumeClaim %s: %v", claim, err)
		}
	}
}

var docSplit = regexp.MustCompile(`(?m)^---\s*$`)

// manifestObjects decodes a release manifest, one object per document.
func manifestObjects(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range docSplit.Split(manifest, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("manifest document: %v\n%s", err, doc)
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
	if len(out) == 0 {
		t.Fatal("release manifest has no objects")
	}
	return out
}

// restMapping resolves objects' kinds to resources through the server's
// discovery, as Helm does.
func restMapping(t testing.TB, srv *kubeapi.Server) (meta.RESTMapper, dynamic.Interface) {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	return restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), dyn
}

func resourceFor(t testing.TB, mapper meta.RESTMapper, dyn dynamic.Interface, obj *unstructured.Unstructured, releaseNS string) dynamic.ResourceInterface {
	t.Helper()
	gvk := obj.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s %s: %v", gvk, obj.GetName(), err)
	}
	if m.Scope.Name() != meta.RESTScopeNameNamespace {
		return dyn.Resource(m.Resource)
	}
	ns := obj.GetNamespace()
	if ns == "" {
		ns = releaseNS
	}
	return dyn.Resource(m.Resource).Namespace(ns)
}

// checkStored gets back every object of the release's manifest and checks
// that the server kept each rendered field with its rendered value (it may
// add defaults and status, but drop or change nothing). It returns the
// stored objects.
func checkStored(t testing.TB, srv *kubeapi.Server, rel *release.Release) []*unstructured.Unstructured {
	t.Helper()
	mapper, dyn := restMapping(t, srv)
	var stored []*unstructured.Unstructured
	for _, want := range manifestObjects(t, rel.Manifest) {
		id := want.GetKind() + "/" + want.GetName()
		got, err := resourceFor(t, mapper, dyn, want, rel.Namespace).Get(t.Context(), want.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s rendered but not stored: %v", id, err)
			continue
		}
		if got.GetUID() == "" {
			t.Errorf("%s: stored without a UID", id)
		}
		if by := got.GetLabels()["app.kubernetes.io/managed-by"]; by != "Helm" {
			t.Errorf("%s: label app.kubernetes.io/managed-by %q, want Helm", id, by)
		}
		if rn := got.GetAnnotations()["meta.helm.sh/release-name"]; rn != rel.Name {
			t.Errorf("%s: annotation meta.helm.sh/release-name %q, want %q", id, rn, rel.Name)
		}
		for _, diff := range subsetDiff(id, want.Object, got.Object) {
			t.Errorf("stored differently from rendered: %s", diff)
		}
		stored = append(stored, got)
	}
	return stored
}

// checkDeleted checks that every object of the release is gone, or, for a
// claim, waits only on the finalizer that the controller manager (which
// does not run here) removes.
func checkDeleted(t testing.TB, srv *kubeapi.Server, rel *release.Release) {
	t.Helper()
	mapper, dyn := restMapping(t, srv)
	for _, want := range manifestObjects(t, rel.Manifest) {
		id := want.GetKind() + "/" + want.GetName()
		got, err := resourceFor(t, mapper, dyn, want, rel.Namespace).Get(t.Context(), want.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			t.Errorf("%s after uninstall: %v", id, err)
		case got.GetDeletionTimestamp() != nil && slices.Equal(got.GetFinalizers(), []string{"kubernetes.io/pvc-protection"}):
		default:
			t.Errorf("%s still stored after uninstall (finalizers %v)", id, got.GetFinalizers())
		}
	}
}

func storedDeployment(t testing.TB, stored []*unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	for _, o := range stored {
		if o.GetKind() == "Deployment" {
			return o
		}
	}
	t.Fatal("no Deployment stored")
	return nil
}

// subsetDiff lists where got lacks, or differs from, a value of want.
// Lists must match element by element; numbers compare by value; strings
// that are both quantities compare as quantities (the server writes
// quantities canonically); a null, a zero value or an empty map or list in
// want may be absent from got (the API types omit empty optional fields, so
// absent and zero mean the same).
func subsetDiff(path string, want, got any) []string {
	switch w := want.(type) {
	case nil:
		return nil
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return nil
			}
			return []string{fmt.Sprintf("%s: rendered a map, stored %T", path, got)}
		}
		var diffs []string
		for _, k := range slices.Sorted(maps.Keys(w)) {
			gv, present := g[k]
			if !present {
				if !isEmpty(w[k]) {
					diffs = append(diffs, fmt.Sprintf("%s.%s: dropped (rendered %v)", path, k, w[k]))
				}
				continue
			}
			diffs = append(diffs, subsetDiff(path+"."+k, w[k], gv)...)
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return nil
			}
			return []string{fmt.Sprintf("%s: rendered a list, stored %T", path, got)}
		}
		if len(g) != len(w) {
			return []string{fmt.Sprintf("%s: rendered %d elements, stored %d", path, len(w), len(g))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, subsetDiff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i])...)
		}
		return diffs
	}
	if wn, ok := number(want); ok {
		if gn, ok := number(got); ok && wn == gn {
			return nil
		}
	} else if ws, ok := want.(string); ok {
		if gs, ok := got.(string); ok && (ws == gs || sameQuantity(ws, gs)) {
			return nil
		}
	} else if want == got {
		return nil
	}
	return []string{fmt.Sprintf("%s: rendered %v, stored %v", path, want, got)}
}

func isEmpty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	case string:
		return v == ""
	case bool:
		return !v
	}
	n, ok := number(v)
	return ok && n == 0
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func sameQuantity(a, b string) bool {
	qa, err1 := resource.ParseQuantity(a)
	qb, err2 := resource.ParseQuantity(b)
	return err1 == nil && err2 == nil && qa.Cmp(qb) == 0
}

// installCRDs creates the CRDs from testdata/crds and waits until the
// server serves their kinds (discovery lists them), so that Helm's
// capabilities, read from discovery, include them.
func installCRDs(t testing.TB, srv *kubeapi.Server, files ...string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	crdResource := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	want := map[string][]string{} // group/version -> kinds
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join("testdata", "crds", f))
		if err != nil {
			t.Fatal(err)
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal(data, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crd := &unstructured.Unstructured{Object: obj}
		if _, err := dyn.Resource(crdResource).Create(t.Context(), crd, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
			t.Fatalf("create CRD %s: %v", crd.GetName(), err)
		}
		group, _, _ := unstructured.NestedString(obj, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj, "spec", "names", "kind")
		versions, _, _ := unstructured.NestedSlice(obj, "spec", "versions")
		for _, v := range versions {
			if served, _, _ := unstructured.NestedBool(v.(map[string]any), "served"); served {
				name, _, _ := unstructured.NestedString(v.(map[string]any), "name")
				want[group+"/"+name] = append(want[group+"/"+name], kind)
			}
		}
	}
	dc, err := discovery.NewDiscoveryClientForConfig(srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for gv, kinds := range want {
		for {
			list, err := dc.ServerResourcesForGroupVersion(gv)
			if err == nil && slices.IndexFunc(kinds, func(k string) bool {
				return !slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Kind == k })
			}) < 0 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the server does not serve %v of %s (last: %v)", kinds, gv, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
}

// editDeployment is a Helm post renderer that applies edit to the
// Deployment of the rendered stream: a way to hand the server a manifest
// that the chart's schema never saw.
type editDeployment func(obj map[string]any)

func (e editDeployment) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	var out bytes.Buffer
	for _, doc := range docSplit.Split(in.String(), -1) {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		obj := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, err
		}
		if obj["kind"] == "Deployment" {
			e(obj)
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return &out, nil
}
