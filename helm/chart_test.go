package helm

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// credentials every values case needs; the ci files carry the same placeholders.
const credentials = `
zulip:
  site: https://zulip.example.com
  email: bridge-bot@zulip.example.com
  apiKey: placeholder-zulip-api-key
`

// extraCases reach what the ci files do not: every credential file and TLS file the
// chart can mount, a digest, an existing claim, overrides of names and timeouts.
var extraCases = []struct{ name, values string }{
	{"nats-tls-creds", credentials + `
fullnameOverride: bridge
image: {repository: registry.example.com/zulip-bridge, tag: "1.2.3", digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
nats:
  url: tls://nats.nats.svc:4222
  auth:
    existingSecret: nats-user
    existingSecretCredsKey: user.creds
    existingSecretNkeyKey: user.nk
    existingSecretPasswordKey: password
    existingSecretTokenKey: token
    user: zulip-bridge
  tls: {existingSecret: nats-client-tls, caKey: ca.crt, certKey: tls.crt, keyKey: tls.key}
shutdownTimeout: 1m30s
terminationGracePeriodSeconds: 120
persistence: {existingClaim: zulip-bridge-state}
serviceAccount: {create: false, name: bridge-sa}
`},
	{"kafka-tls-existing", credentials + `
nameOverride: zb2
sink: kafka
kafka:
  brokers: [kafka.kafka.svc:9093]
  sasl: {mechanism: plain, username: bridge, existingSecret: kafka-user, existingSecretPasswordKey: pw}
  tls: {existingSecret: kafka-client-tls, caKey: ca.pem, certKey: cert.pem, keyKey: key.pem}
checkpoint: {kind: kafka}
persistence: {enabled: false}
shutdownTimeout: 2500ms
config:
  BRIDGE_ZULIP_MAX_RESPONSE_BYTES: 67108864
  BRIDGE_KAFKA_TLS_SERVER_NAME: kafka.example.com
extraEnv:
  - name: OTEL_EXPORTER_OTLP_ENDPOINT
    value: http://otel-collector.monitoring.svc:4318
  - name: BRIDGE_NATS_PASSWORD
    valueFrom: {secretKeyRef: {name: unused, key: unused}}
extraVolumes:
  - name: zuliprc
    secret: {secretName: zuliprc}
extraVolumeMounts:
  - {name: zuliprc, mountPath: /etc/zuliprc, readOnly: true}
podMonitor: {enabled: true}
prometheusRule:
  enabled: true
  additionalRules:
    - alert: ZulipBridgeLagHigh
      expr: histogram_quantile(0.99, sum by (le) (rate(zulip_bridge_message_lag_seconds_bucket[5m]))) > 300
      for: 15m
      labels: {severity: warning}
      annotations: {summary: lag}
`},
	{"pdb-min-http-port", credentials + `
http: {port: 9090}
nats: {embedded: {port: 4333}, jetstream: false}
podDisruptionBudget: {enabled: true, minAvailable: 1, maxUnavailable: ""}
networkPolicy: {enabled: true, allowExternalEgress: false, extraEgress: [{to: [{ipBlock: {cidr: 203.0.113.0/24}}], ports: [{port: 443, protocol: TCP}]}]}
serviceAccount: {automount: true}
persistence: {storageClass: "-", size: 5Gi}
`},
	{"standby-nats-kv", credentials + `
replicaCount: 3
leaderElection: {backend: nats-kv, natsBucket: bridge-leaders, leaseDuration: 20s, renewDeadline: 15s, retryPeriod: 3s}
nats: {url: nats://nats.nats.svc:4222}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}
podDisruptionBudget: {minAvailable: 2, maxUnavailable: ""}
affinity:
  nodeAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/arch, operator: In, values: [amd64]}]}]
`},
	{"standby-kafka-own-rbac", credentials + `
replicaCount: 2
leaderElection: {backend: lease, leaseName: chat-bridge.leader, leaseDuration: 1m, renewDeadline: 40s, retryPeriod: 5s}
sink: kafka
kafka: {brokers: [kafka.kafka.svc:9092]}
checkpoint: {kind: kafka}
persistence: {enabled: false}
rbac: {create: false}
serviceAccount: {create: false, name: bridge-sa}
podDisruptionBudget: {enabled: false}
config: {BRIDGE_SPOOL: "off"}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: topology.kubernetes.io/zone
        labelSelector: {matchLabels: {app.kubernetes.io/name: zulip-bridge}}
`},
	{"lease-one-replica", credentials + `
leaderElection: {backend: lease}
nats: {url: nats://nats.nats.svc:4222}
checkpoint: {kind: nats-kv}
podDisruptionBudget: {enabled: true}
`},
}

type valuesCase struct {
	name string
	vals map[string]any
}

func allCases(t *testing.T) []valuesCase {
	var out []valuesCase
	for _, c := range ciCases(t) {
		out = append(out, valuesCase{"ci/" + c.name, c.vals})
	}
	for _, c := range extraCases {
		out = append(out, valuesCase{c.name, readValues(t, c.values)})
	}
	return out
}

func TestLint(t *testing.T) {
	kv, err := common.ParseKubeVersion(kubeVersion)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range allCases(t) {
		t.Run(c.name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = releaseNamespace
			lint.KubeVersion = kv
			res := lint.Run([]string{chartDir}, c.vals)
			for _, m := range res.Messages {
				t.Logf("lint: %s", m)
			}
			if len(res.Errors) > 0 || res.TotalChartsLinted != 1 {
				t.Fatalf("lint (strict) failed, %d charts linted: %v", res.TotalChartsLinted, res.Errors)
			}
		})
	}
}

// TestRender renders every case, with and without the prometheus-operator's API, and
// checks what an operator relies on.
func TestRender(t *testing.T) {
	env := knownEnv(t)
	chrt, err := loadChart()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range allCases(t) {
		for _, monitoring := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/monitoring=%v", c.name, monitoring), func(t *testing.T) {
				coalesced, err := chartutil.CoalesceValues(chrt, c.vals)
				if err != nil {
					t.Fatal(err)
				}
				v := values{coalesced}
				r := mustRender(t, c.vals, renderOpts{monitoring: monitoring})
				checkRender(t, v, r, env, monitoring)
			})
		}
	}
}

// values reads the coalesced values of a case by path.
type values struct{ common.Values }

func (v values) get(p string) any {
	if x, err := v.PathValue(p); err == nil {
		return x
	}
	// PathValue refuses maps: read those as tables.
	if tbl, err := v.Table(p); err == nil {
		return tbl.AsMap()
	}
	return nil
}

func (v values) str(p string) string {
	s, _ := v.get(p).(string)
	return s
}

func (v values) on(p string) bool {
	b, _ := v.get(p).(bool)
	return b
}

func (v values) num(p string) int {
	switch n := v.get(p).(type) {
	case float64:
		return int(n)
	case int64:
		return int(n)
	case int:
		return n
	}
	return 0
}

func checkRender(t *testing.T, v values, r rendered, env bridgeEnv, monitoring bool) {
	dep := one[*appsv1.Deployment](t, r)
	cm := configMapNamed(t, r, dep)
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	ctr := pod.Containers[0]
	cfg := cm.Data

	replicas := v.num("replicaCount")
	t.Run("deployment", func(t *testing.T) {
		if dep.Spec.Replicas == nil || int(*dep.Spec.Replicas) != replicas {
			t.Errorf("replicas = %v, want %d", dep.Spec.Replicas, replicas)
		}
		if replicas > 1 {
			// A standby is up before an old pod stops: none is unavailable, one surges.
			s := dep.Spec.Strategy
			if s.Type != appsv1.RollingUpdateDeploymentStrategyType || s.RollingUpdate == nil ||
				s.RollingUpdate.MaxUnavailable == nil || s.RollingUpdate.MaxUnavailable.String() != "0" ||
				s.RollingUpdate.MaxSurge == nil || s.RollingUpdate.MaxSurge.String() != "1" {
				t.Errorf("strategy = %+v, want RollingUpdate maxSurge 1 maxUnavailable 0", s)
			}
		} else if dep.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || dep.Spec.Strategy.RollingUpdate != nil {
			t.Errorf("strategy = %+v, want Recreate", dep.Spec.Strategy)
		}
		for k, want := range dep.Spec.Selector.MatchLabels {
			if got := dep.Spec.Template.Labels[k]; got != want {
				t.Errorf("pod label %s = %q, selector wants %q", k, got, want)
			}
		}
		if len(ctr.Args) != 1 || ctr.Args[0] != "run" {
			t.Errorf("args = %q, want [run]", ctr.Args)
		}
	})

	t.Run("image", func(t *testing.T) {
		img := ctr.Image
		repo, digest, hasDigest := strings.Cut(img, "@")
		if want := v.str("image.digest"); want != "" {
			if !hasDigest || digest != want || repo != v.str("image.repository") {
				t.Errorf("image = %q, want %s@%s", img, v.str("image.repository"), want)
			}
			return
		}
		i := strings.LastIndex(repo, ":")
		if i < 0 || strings.Contains(repo[i:], "/") {
			t.Fatalf("image %q has neither tag nor digest", img)
		}
		if tag := repo[i+1:]; tag == "latest" || tag == "" {
			t.Errorf("image %q: tag %q", img, tag)
		} else if want := cmp.Or(v.str("image.tag"), "0.1.0"); tag != want {
			t.Errorf("image tag = %q, want %q", tag, want)
		}
	})

	t.Run("security", func(t *testing.T) {
		psc, sc := pod.SecurityContext, ctr.SecurityContext
		if psc == nil || sc == nil {
			t.Fatal("missing security context")
		}
		if !isTrue(psc.RunAsNonRoot) || !isTrue(sc.RunAsNonRoot) {
			t.Error("runAsNonRoot not true")
		}
		for _, id := range []*int64{psc.RunAsUser, psc.RunAsGroup, sc.RunAsUser, sc.RunAsGroup, psc.FSGroup} {
			if id == nil || *id != 65532 {
				t.Errorf("user/group id = %v, want 65532", id)
			}
		}
		if !isTrue(sc.ReadOnlyRootFilesystem) {
			t.Error("root filesystem writable")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || isTrue(sc.Privileged) {
			t.Error("privilege escalation allowed or privileged")
		}
		if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("capabilities = %+v, want drop [ALL]", sc.Capabilities)
		}
		for _, p := range []*corev1.SeccompProfile{psc.SeccompProfile, sc.SeccompProfile} {
			if p == nil || p.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("seccomp = %+v, want RuntimeDefault", p)
			}
		}
		// The lease backend needs the token; nothing else talks to the API server.
		wantToken := v.on("serviceAccount.automount") || leaderBackend(v) == "lease"
		if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken != wantToken {
			t.Errorf("automountServiceAccountToken = %v, want %v", pod.AutomountServiceAccountToken, wantToken)
		}
		saToken := v.on("serviceAccount.automount")
		sas := all[*corev1.ServiceAccount](r)
		if v.on("serviceAccount.create") {
			if len(sas) != 1 || sas[0].Name != pod.ServiceAccountName {
				t.Errorf("ServiceAccounts %v, pod runs as %q", r.kinds(), pod.ServiceAccountName)
			} else if sas[0].AutomountServiceAccountToken == nil || *sas[0].AutomountServiceAccountToken != saToken {
				t.Errorf("ServiceAccount automount = %v, want %v", sas[0].AutomountServiceAccountToken, saToken)
			}
		} else if len(sas) != 0 || pod.ServiceAccountName != v.str("serviceAccount.name") {
			t.Errorf("serviceAccount.create=false: %v, pod runs as %q", r.kinds(), pod.ServiceAccountName)
		}
		req, lim := ctr.Resources.Requests, ctr.Resources.Limits
		if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
			t.Errorf("resources = %+v, want cpu and memory requests and a memory limit", ctr.Resources)
		}
		tmp := mountAt(ctr, "/tmp")
		if tmp == nil || volumeNamed(pod, tmp.Name) == nil || volumeNamed(pod, tmp.Name).EmptyDir == nil {
			t.Error("/tmp is not an emptyDir (the root filesystem is read-only)")
		}
	})

	t.Run("env", func(t *testing.T) {
		names := slices.Collect(maps.Keys(cfg))
		for _, e := range ctr.Env {
			names = append(names, e.Name)
		}
		for _, n := range names {
			if !env.names[n] {
				t.Errorf("env %s: `bridge env` does not know it", n)
			}
		}
		for _, from := range ctr.EnvFrom {
			if from.SecretRef != nil {
				t.Errorf("envFrom secretRef %s: secrets reach the bridge only as files", from.SecretRef.Name)
			}
		}
		for n := range env.secrets {
			if _, ok := cfg[n]; ok {
				t.Errorf("secret variable %s in the ConfigMap", n)
			}
			for _, e := range ctr.Env {
				if e.Name == n && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("secret variable %s is not a secretKeyRef", n)
				}
			}
		}
		for k, want := range map[string]string{
			"ZULIP_SITE": v.str("zulip.site"), "ZULIP_EMAIL": v.str("zulip.email"),
			"BRIDGE_SINK": v.str("sink"), "BRIDGE_CHECKPOINT": v.str("checkpoint.kind"),
			"BRIDGE_STATE_DIR": "/var/lib/zulip-bridge", "BRIDGE_SHUTDOWN_TIMEOUT": v.str("shutdownTimeout"),
		} {
			if cfg[k] != want {
				t.Errorf("%s = %q, want %q", k, cfg[k], want)
			}
		}
		if c, ok := v.get("config").(map[string]any); ok {
			for k, val := range c {
				want := fmt.Sprint(val)
				if f, ok := val.(float64); ok {
					want = strconv.FormatFloat(f, 'f', -1, 64)
				}
				if cfg[k] != want {
					t.Errorf("config %s = %q, want %q", k, cfg[k], want)
				}
			}
		}
	})

	t.Run("secrets", func(t *testing.T) {
		checkSecrets(t, v, r, dep, cfg)
	})

	t.Run("standby", func(t *testing.T) {
		checkStandby(t, v, r, dep, cfg)
	})

	t.Run("probes", func(t *testing.T) {
		_, port, err := net.SplitHostPort(cfg["BRIDGE_HTTP_ADDR"])
		if err != nil {
			t.Fatalf("BRIDGE_HTTP_ADDR %q: %v", cfg["BRIDGE_HTTP_ADDR"], err)
		}
		httpPort, _ := strconv.Atoi(port)
		if httpPort != v.num("http.port") {
			t.Errorf("BRIDGE_HTTP_ADDR port %d, http.port %d", httpPort, v.num("http.port"))
		}
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"startup", ctr.StartupProbe, "/healthz"}, {"liveness", ctr.LivenessProbe, "/healthz"}, {"readiness", ctr.ReadinessProbe, "/readyz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: not an HTTP GET", p.name)
				continue
			}
			g := p.probe.HTTPGet
			if g.Path != p.path {
				t.Errorf("%s probe path %q, want %q", p.name, g.Path, p.path)
			}
			if got := containerPort(t, ctr, g.Port); got != httpPort {
				t.Errorf("%s probe on port %d, the bridge listens on %d", p.name, got, httpPort)
			}
			if g.Scheme != "" && g.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s probe scheme %s", p.name, g.Scheme)
			}
		}
		svc := one[*corev1.Service](t, r)
		if !svc.Spec.PublishNotReadyAddresses {
			t.Error("Service drops not-ready pods: metrics and the embedded NATS server would vanish with readiness")
		}
		for k, want := range svc.Spec.Selector {
			if dep.Spec.Template.Labels[k] != want {
				t.Errorf("Service selector %s=%s does not match the pod", k, want)
			}
		}
		ports := map[string]corev1.ServicePort{}
		for _, p := range svc.Spec.Ports {
			ports[p.Name] = p
		}
		if p, ok := ports["http"]; !ok || containerPort(t, ctr, p.TargetPort) != httpPort {
			t.Errorf("Service http port %+v does not reach %d", p, httpPort)
		}
		embedded := v.str("sink") == "nats" && v.str("nats.url") == ""
		p, ok := ports["nats"]
		if embedded != ok {
			t.Errorf("Service nats port %v, embedded NATS %v", ok, embedded)
		}
		if embedded {
			_, np, err := net.SplitHostPort(cfg["BRIDGE_NATS_EMBEDDED_ADDR"])
			if err != nil {
				t.Fatalf("BRIDGE_NATS_EMBEDDED_ADDR %q: %v", cfg["BRIDGE_NATS_EMBEDDED_ADDR"], err)
			}
			if n, _ := strconv.Atoi(np); n != containerPort(t, ctr, p.TargetPort) || n != v.num("nats.embedded.port") {
				t.Errorf("embedded NATS listens on %s, Service targets %s", np, p.TargetPort.String())
			}
			if strings.HasPrefix(cfg["BRIDGE_NATS_EMBEDDED_ADDR"], "127.") {
				t.Error("embedded NATS on loopback: consumers in the cluster cannot reach it")
			}
		} else if _, ok := cfg["BRIDGE_NATS_EMBEDDED_ADDR"]; ok {
			t.Error("BRIDGE_NATS_EMBEDDED_ADDR set without the embedded server")
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		d, err := time.ParseDuration(cfg["BRIDGE_SHUTDOWN_TIMEOUT"])
		if err != nil {
			t.Fatal(err)
		}
		grace := pod.TerminationGracePeriodSeconds
		if grace == nil {
			t.Fatal("no terminationGracePeriodSeconds")
		}
		if time.Duration(*grace)*time.Second <= d {
			t.Errorf("terminationGracePeriodSeconds %d is not above BRIDGE_SHUTDOWN_TIMEOUT %s", *grace, d)
		}
		if want := v.num("terminationGracePeriodSeconds"); want != 0 && int(*grace) != want {
			t.Errorf("terminationGracePeriodSeconds = %d, want %d", *grace, want)
		}
	})

	t.Run("state", func(t *testing.T) {
		m := mountAt(ctr, cfg["BRIDGE_STATE_DIR"])
		if m == nil || m.ReadOnly {
			t.Fatalf("nothing writable mounted at BRIDGE_STATE_DIR %q", cfg["BRIDGE_STATE_DIR"])
		}
		vol := volumeNamed(pod, m.Name)
		pvcs := all[*corev1.PersistentVolumeClaim](r)
		switch {
		case !v.on("persistence.enabled"):
			if vol.EmptyDir == nil || len(pvcs) != 0 {
				t.Errorf("persistence off: state volume %+v, claims %v", vol.VolumeSource, r.kinds())
			}
			if v.str("checkpoint.kind") == "file" || (v.str("sink") == "nats" && v.str("nats.url") == "") {
				t.Error("persistence off rendered for a file checkpoint or the embedded NATS server")
			}
		case v.str("persistence.existingClaim") != "":
			if vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != v.str("persistence.existingClaim") || len(pvcs) != 0 {
				t.Errorf("existing claim: state volume %+v, claims %v", vol.VolumeSource, r.kinds())
			}
		default:
			if vol.PersistentVolumeClaim == nil || len(pvcs) != 1 || pvcs[0].Name != vol.PersistentVolumeClaim.ClaimName {
				t.Fatalf("state volume %+v, claims %v", vol.VolumeSource, r.kinds())
			}
			pvc := pvcs[0]
			if got := pvc.Spec.Resources.Requests.Storage().String(); got != v.str("persistence.size") {
				t.Errorf("claim size %s, want %s", got, v.str("persistence.size"))
			}
			switch sc := v.str("persistence.storageClass"); sc {
			case "":
				if pvc.Spec.StorageClassName != nil {
					t.Errorf("storageClassName %q, want the default (unset)", *pvc.Spec.StorageClassName)
				}
			case "-":
				if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "" {
					t.Errorf("storageClassName %v, want \"\"", pvc.Spec.StorageClassName)
				}
			}
		}
	})

	t.Run("monitoring", func(t *testing.T) {
		sms, pms, prs := all[*monitoringv1.ServiceMonitor](r), all[*monitoringv1.PodMonitor](r), all[*monitoringv1.PrometheusRule](r)
		want := func(kind string, got int, enabled bool) {
			if w := enabled && monitoring; (got == 1) != w || got > 1 {
				t.Errorf("%d %s rendered; enabled %v, cluster serves %s: %v", got, kind, enabled, monitoringAPI, monitoring)
			}
		}
		want("ServiceMonitor", len(sms), v.on("serviceMonitor.enabled"))
		want("PodMonitor", len(pms), v.on("podMonitor.enabled"))
		want("PrometheusRule", len(prs), v.on("prometheusRule.enabled"))
		svc := one[*corev1.Service](t, r)
		for _, sm := range sms {
			if !selects(sm.Spec.Selector.MatchLabels, svc.Labels) {
				t.Errorf("ServiceMonitor selector %v does not select the Service %v", sm.Spec.Selector.MatchLabels, svc.Labels)
			}
			if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http" || svcPort(svc, "http") == nil {
				t.Errorf("ServiceMonitor endpoints %+v", sm.Spec.Endpoints)
			}
		}
		for _, pm := range pms {
			if !selects(pm.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
				t.Errorf("PodMonitor selector %v does not select the pod", pm.Spec.Selector.MatchLabels)
			}
			if len(pm.Spec.PodMetricsEndpoints) != 1 || pm.Spec.PodMetricsEndpoints[0].Port == nil || *pm.Spec.PodMetricsEndpoints[0].Port != "http" {
				t.Errorf("PodMonitor endpoints %+v", pm.Spec.PodMetricsEndpoints)
			}
		}
		for _, pr := range prs {
			checkRules(t, v, pr)
		}
		dash := all[*corev1.ConfigMap](r)
		var found bool
		for _, c := range dash {
			if c.Labels["grafana_dashboard"] == "" {
				continue
			}
			found = true
			if c.Labels["grafana_dashboard"] != "1" {
				t.Errorf("dashboard label %q", c.Labels["grafana_dashboard"])
			}
			if got, want := c.Data["zulip-bridge.json"], readFile(t, "zulip-bridge/dashboards/zulip-bridge.json"); strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Error("dashboard ConfigMap differs from dashboards/zulip-bridge.json")
			}
		}
		if found != v.on("grafanaDashboard.enabled") {
			t.Errorf("dashboard ConfigMap %v, enabled %v", found, v.on("grafanaDashboard.enabled"))
		}
		if !monitoring && v.on("prometheusRule.enabled") && !strings.Contains(r.notes, "does not serve monitoring.coreos.com/v1") {
			t.Error("NOTES do not warn that the monitoring objects were skipped")
		}
	})

	t.Run("optional", func(t *testing.T) {
		pdbs := all[*policyv1.PodDisruptionBudget](r)
		// null (the default): a PDB comes with a standby.
		wantPDB := v.on("podDisruptionBudget.enabled") || (v.get("podDisruptionBudget.enabled") == nil && replicas > 1)
		if (len(pdbs) == 1) != wantPDB {
			t.Errorf("PodDisruptionBudgets %d, want %v (enabled %v, replicas %d)", len(pdbs), wantPDB, v.get("podDisruptionBudget.enabled"), replicas)
		}
		for _, pdb := range pdbs {
			if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
				t.Errorf("PDB needs exactly one of minAvailable, maxUnavailable: %+v", pdb.Spec)
			}
			// With a standby, a drain may take one pod at a time and never all of them.
			if replicas > 1 {
				if m := pdb.Spec.MaxUnavailable; m != nil && m.Type == intstr.Int && (m.IntValue() < 1 || m.IntValue() >= replicas) {
					t.Errorf("PDB maxUnavailable %d with %d replicas", m.IntValue(), replicas)
				}
				if m := pdb.Spec.MinAvailable; m != nil && m.Type == intstr.Int && (m.IntValue() < 1 || m.IntValue() >= replicas) {
					t.Errorf("PDB minAvailable %d with %d replicas", m.IntValue(), replicas)
				}
			}
			if !selects(pdb.Spec.Selector.MatchLabels, dep.Spec.Template.Labels) {
				t.Error("PDB does not select the pod")
			}
		}
		nps := all[*networkingv1.NetworkPolicy](r)
		if (len(nps) == 1) != v.on("networkPolicy.enabled") {
			t.Errorf("NetworkPolicies %d, enabled %v", len(nps), v.on("networkPolicy.enabled"))
		}
		for _, np := range nps {
			checkNetworkPolicy(t, v, np, ctr)
		}
	})

	t.Run("labels", func(t *testing.T) {
		for _, o := range r.objects {
			m, ok := o.(interface{ GetLabels() map[string]string })
			if !ok {
				continue
			}
			l := m.GetLabels()
			for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart"} {
				if l[k] == "" {
					t.Errorf("%s %s: no label %s", kindOf(o), nameOf(o), k)
				}
			}
			if ns, ok := o.(interface{ GetNamespace() string }); ok && ns.GetNamespace() != releaseNamespace {
				t.Errorf("%s %s in namespace %q", kindOf(o), nameOf(o), ns.GetNamespace())
			}
		}
		if r.notes == "" || !strings.Contains(r.notes, "/readyz") {
			t.Error("NOTES.txt does not say how to check readiness")
		}
	})
}

// checkSecrets follows every credential variable to the file the kubelet would mount:
// a read-only secret volume, the right Secret and key, and for the chart's own Secret
// the value given. No credential value appears anywhere else.
func checkSecrets(t *testing.T, v values, r rendered, dep *appsv1.Deployment, cfg map[string]string) {
	ctr := dep.Spec.Template.Spec.Containers[0]
	secrets := map[string]*corev1.Secret{}
	for _, s := range all[*corev1.Secret](r) {
		secrets[s.Name] = s
	}
	type source struct{ secret, key string }
	resolve := func(name string) (source, bool) {
		p := cfg[name]
		for _, m := range ctr.VolumeMounts {
			rel, ok := strings.CutPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/")
			if !ok {
				continue
			}
			if !m.ReadOnly {
				t.Errorf("%s: volume %s is writable", name, m.Name)
			}
			vol := volumeNamed(dep.Spec.Template.Spec, m.Name)
			var srcs []corev1.VolumeProjection
			switch {
			case vol.Secret != nil:
				srcs = []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: vol.Secret.SecretName}, Items: vol.Secret.Items}}}
				checkMode(t, name, vol.Secret.DefaultMode)
			case vol.Projected != nil:
				srcs = vol.Projected.Sources
				checkMode(t, name, vol.Projected.DefaultMode)
			default:
				t.Errorf("%s: %s is not a secret volume", name, p)
				return source{}, false
			}
			for _, s := range srcs {
				if s.Secret == nil {
					t.Errorf("%s: projected source other than a secret", name)
					continue
				}
				for _, it := range s.Secret.Items {
					if it.Path == rel {
						return source{s.Secret.Name, it.Key}, true
					}
				}
			}
			t.Errorf("%s=%s: no item %q in volume %s", name, p, rel, m.Name)
			return source{}, false
		}
		t.Errorf("%s=%s: no volume mounted there", name, p)
		return source{}, false
	}

	given := map[string]string{ // variable -> the value the chart's Secret must hold
		"ZULIP_API_KEY_FILE":         v.str("zulip.apiKey"),
		"BRIDGE_NATS_PASSWORD_FILE":  v.str("nats.auth.password"),
		"BRIDGE_NATS_TOKEN_FILE":     v.str("nats.auth.token"),
		"BRIDGE_KAFKA_PASSWORD_FILE": v.str("kafka.sasl.password"),
	}
	existing := map[string][2]string{ // variable -> existing Secret and key named in the values
		"ZULIP_API_KEY_FILE":         {v.str("zulip.existingSecret"), v.str("zulip.existingSecretKey")},
		"BRIDGE_NATS_PASSWORD_FILE":  {v.str("nats.auth.existingSecret"), v.str("nats.auth.existingSecretPasswordKey")},
		"BRIDGE_NATS_TOKEN_FILE":     {v.str("nats.auth.existingSecret"), v.str("nats.auth.existingSecretTokenKey")},
		"BRIDGE_NATS_CREDS":          {v.str("nats.auth.existingSecret"), v.str("nats.auth.existingSecretCredsKey")},
		"BRIDGE_NATS_NKEY":           {v.str("nats.auth.existingSecret"), v.str("nats.auth.existingSecretNkeyKey")},
		"BRIDGE_KAFKA_PASSWORD_FILE": {v.str("kafka.sasl.existingSecret"), v.str("kafka.sasl.existingSecretPasswordKey")},
		"BRIDGE_NATS_TLS_CA":         {v.str("nats.tls.existingSecret"), v.str("nats.tls.caKey")},
		"BRIDGE_NATS_TLS_CERT":       {v.str("nats.tls.existingSecret"), v.str("nats.tls.certKey")},
		"BRIDGE_NATS_TLS_KEY":        {v.str("nats.tls.existingSecret"), v.str("nats.tls.keyKey")},
		"BRIDGE_KAFKA_TLS_CA":        {v.str("kafka.tls.existingSecret"), v.str("kafka.tls.caKey")},
		"BRIDGE_KAFKA_TLS_CERT":      {v.str("kafka.tls.existingSecret"), v.str("kafka.tls.certKey")},
		"BRIDGE_KAFKA_TLS_KEY":       {v.str("kafka.tls.existingSecret"), v.str("kafka.tls.keyKey")},
	}
	if _, ok := cfg["ZULIP_API_KEY_FILE"]; !ok {
		t.Fatal("no ZULIP_API_KEY_FILE: the bridge has no API key")
	}
	for name := range existing {
		if _, ok := cfg[name]; !ok {
			continue
		}
		src, ok := resolve(name)
		if !ok {
			continue
		}
		if ex := existing[name]; ex[0] != "" && ex[1] != "" {
			if src != (source{ex[0], ex[1]}) {
				t.Errorf("%s from %v, want the existing Secret %v", name, src, ex)
			}
			continue
		}
		s := secrets[src.secret]
		if s == nil {
			t.Errorf("%s from Secret %q, which the chart does not render", name, src.secret)
			continue
		}
		if got, ok := s.Data[src.key]; !ok || string(got) != given[name] {
			t.Errorf("%s: Secret %s key %s holds %d bytes, not the value given", name, src.secret, src.key, len(got))
		}
	}
	// Every credential set in the values has its variable.
	for name, val := range given {
		if _, ok := cfg[name]; val != "" && !ok {
			t.Errorf("a credential is given but %s is not set", name)
		}
	}

	// No credential value outside the Secrets: not in the ConfigMap, env values, annotations,
	// NOTES or any other object.
	var creds []string
	for _, val := range given {
		if val != "" {
			creds = append(creds, val)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(r.files)) {
		if strings.HasSuffix(name, "/secret.yaml") {
			continue
		}
		for _, c := range creds {
			if strings.Contains(r.files[name], c) {
				t.Errorf("%s contains a credential value", name)
			}
		}
	}
	for _, s := range secrets {
		if s.Type != corev1.SecretTypeOpaque || len(s.StringData) > 0 {
			t.Errorf("Secret %s: type %s, stringData %d", s.Name, s.Type, len(s.StringData))
		}
	}
	if len(secrets) > 0 && dep.Spec.Template.Annotations["checksum/secret"] == "" {
		t.Error("no checksum/secret annotation: a changed key would not roll the pod")
	}
	if dep.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("no checksum/config annotation")
	}
}

func checkMode(t *testing.T, name string, mode *int32) {
	if mode == nil {
		t.Errorf("%s: secret files mode unset (0644: readable by others)", name)
	} else if *mode&0o007 != 0 {
		t.Errorf("%s: secret files mode %#o readable by others", name, *mode)
	}
}

func checkRules(t *testing.T, v values, pr *monitoringv1.PrometheusRule) {
	alerts := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, rule := range g.Rules {
			if rule.Alert == "" {
				continue
			}
			alerts[rule.Alert] = true
			if rule.Labels["severity"] == "" {
				t.Errorf("%s: no severity", rule.Alert)
			}
			if strings.HasPrefix(rule.Alert, "ZulipBridge") && rule.Alert != "ZulipBridgeLagHigh" {
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if rule.Annotations[a] == "" {
						t.Errorf("%s: no %s", rule.Alert, a)
					}
				}
				if want := "#" + strings.ToLower(rule.Alert); !strings.HasSuffix(rule.Annotations["runbook_url"], want) {
					t.Errorf("%s: runbook_url %q does not end in %s", rule.Alert, rule.Annotations["runbook_url"], want)
				}
				ruleLabels, _ := v.get("prometheusRule.ruleLabels").(map[string]any)
				for k, val := range ruleLabels {
					if rule.Labels[k] != val {
						t.Errorf("%s: label %s = %q, want %v", rule.Alert, k, rule.Labels[k], val)
					}
				}
			}
		}
	}
	for _, a := range []string{"ZulipBridgeDown", "ZulipBridgeQueueLost", "ZulipBridgePublishErrors", "ZulipBridgeStalled", "ZulipBridgeBackfilling", "ZulipBridgeZulipErrors"} {
		if !alerts[a] {
			t.Errorf("alert %s missing", a)
		}
	}
	if election := v.str("leaderElection.backend"); alerts["ZulipBridgeNoLeader"] != (election == "lease" || election == "nats-kv") {
		t.Errorf("ZulipBridgeNoLeader %v, leader election %q", alerts["ZulipBridgeNoLeader"], election)
	}
	if alerts["ZulipBridgeNotReady"] != v.on("prometheusRule.kubeStateMetrics") {
		t.Errorf("ZulipBridgeNotReady %v, kubeStateMetrics %v", alerts["ZulipBridgeNotReady"], v.on("prometheusRule.kubeStateMetrics"))
	}
}

func checkNetworkPolicy(t *testing.T, v values, np *networkingv1.NetworkPolicy, ctr corev1.Container) {
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policy types %v", np.Spec.PolicyTypes)
	}
	ingressPorts := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Error("ingress rule for every port")
				continue
			}
			containerPort(t, ctr, *p.Port) // must name a container port
			ingressPorts[p.Port.String()] = true
		}
	}
	embedded := v.str("sink") == "nats" && v.str("nats.url") == ""
	if !ingressPorts["http"] || ingressPorts["nats"] != embedded {
		t.Errorf("ingress ports %v, embedded NATS %v", ingressPorts, embedded)
	}
	var dns, any bool
	for _, rule := range np.Spec.Egress {
		if len(rule.To) == 0 && len(rule.Ports) == 0 {
			any = true
		}
		for _, p := range rule.Ports {
			if p.Port != nil && p.Port.IntValue() == 53 {
				dns = true
			}
		}
	}
	if !dns || any != v.on("networkPolicy.allowExternalEgress") {
		t.Errorf("egress: DNS %v, allow all %v (allowExternalEgress %v)", dns, any, v.on("networkPolicy.allowExternalEgress"))
	}
}

// TestChecksumAnnotations: a changed setting or credential rolls the pod; a change of
// neither keeps the checksums.
func TestChecksumAnnotations(t *testing.T) {
	base := readValues(t, credentials)
	sums := func(vals map[string]any) (string, string) {
		dep := one[*appsv1.Deployment](t, mustRender(t, vals, renderOpts{}))
		return dep.Spec.Template.Annotations["checksum/config"], dep.Spec.Template.Annotations["checksum/secret"]
	}
	c0, s0 := sums(base)
	if c0 == "" || s0 == "" {
		t.Fatalf("checksums %q %q", c0, s0)
	}
	for _, tc := range []struct {
		name             string
		over             string
		config, secretCh bool
	}{
		{"config value", `config: {BRIDGE_EVENT_TYPES: "*"}`, true, false},
		{"site", `zulip: {site: https://other.example.com}`, true, false},
		{"api key", `zulip: {apiKey: another-key}`, false, true},
		{"pod label only", `podLabels: {a: b}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, s := sums(merged(base, readValues(t, tc.over)))
			if (c != c0) != tc.config || (s != s0) != tc.secretCh {
				t.Errorf("config checksum changed %v (want %v), secret checksum changed %v (want %v)", c != c0, tc.config, s != s0, tc.secretCh)
			}
		})
	}
}

// TestSchemaRejects: values.schema.json refuses bad values before anything renders,
// with an error naming the value.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"no credentials", `{}`, "at '/zulip/site'"},
		{"no api key", `zulip: {apiKey: ""}`, "at '/zulip/apiKey'"},
		{"unknown top-level key", `replicas: 1`, "additional properties 'replicas' not allowed"},
		{"unknown nested key", `nats: {urls: nats://x:4222}`, "additional properties 'urls' not allowed"},
		{"unknown key in a probe", `livenessProbe: {path: /x}`, "additional properties 'path' not allowed"},
		{"bad sink", `sink: rabbitmq`, "at '/sink'"},
		{"bad checkpoint", `checkpoint: {kind: redis}`, "at '/checkpoint/kind'"},
		{"replicaCount 2 with leader election off", `replicaCount: 2
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}`, "at '/leaderElection/backend'"},
		{"replicaCount 2 with the file checkpoint", `replicaCount: 2
leaderElection: {backend: lease}
nats: {url: nats://nats:4222}
persistence: {enabled: false}`, "at '/checkpoint/kind'"},
		{"replicaCount 2 with the embedded NATS server", `replicaCount: 2
leaderElection: {backend: lease}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}`, "at '/nats/url'"},
		{"replicaCount 2 with a persistent volume", `replicaCount: 2
leaderElection: {backend: lease}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, "at '/persistence/enabled'"},
		{"leader election with the spool", `leaderElection: {backend: nats-kv}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}
config: {BRIDGE_SPOOL: "on"}`, "at '/config/BRIDGE_SPOOL'"},
		{"leader election with a file checkpoint, one replica", `leaderElection: {backend: lease}
nats: {url: nats://nats:4222}`, "at '/checkpoint/kind'"},
		{"nats-kv election with kafka", `leaderElection: {backend: nats-kv}
sink: kafka
kafka: {brokers: ["k:9092"]}
checkpoint: {kind: kafka}`, "at '/sink'"},
		{"unknown election backend", `leaderElection: {backend: etcd}`, "at '/leaderElection/backend'"},
		{"bad lease name", `leaderElection: {leaseName: Zulip_Bridge}`, "at '/leaderElection/leaseName'"},
		{"bad lease duration", `leaderElection: {leaseDuration: 15}`, "at '/leaderElection/leaseDuration'"},
		{"negative replicaCount", `replicaCount: -1`, "at '/replicaCount'"},
		{"persistence off with the file checkpoint", `persistence: {enabled: false}
nats: {url: nats://nats:4222}`, "at '/checkpoint/kind'"},
		{"persistence off with the embedded NATS server", `persistence: {enabled: false}
checkpoint: {kind: nats-kv}`, "at '/nats/url'"},
		{"nats-kv checkpoint with kafka", `sink: kafka
kafka: {brokers: ["k:9092"]}
checkpoint: {kind: nats-kv}`, "at '/sink'"},
		{"kafka checkpoint with nats", `checkpoint: {kind: kafka}`, "at '/sink'"},
		{"kafka without brokers", `sink: kafka`, "at '/kafka/brokers'"},
		{"bad duration", `shutdownTimeout: 30`, "at '/shutdownTimeout'"},
		{"bad duration unit", `shutdownTimeout: 30sec`, "at '/shutdownTimeout'"},
		{"bad scrape interval", `serviceMonitor: {interval: 1.5m}`, "at '/serviceMonitor/interval'"},
		{"latest tag", `image: {tag: latest}`, "at '/image/tag'"},
		{"bad digest", `image: {digest: "sha256:abc"}`, "at '/image/digest'"},
		{"unknown config variable", `config: {BRIDGE_EVENTTYPES: message}`, "additional properties 'BRIDGE_EVENTTYPES' not allowed"},
		{"secret in config", `config: {ZULIP_API_KEY: hunter2}`, "additional properties 'ZULIP_API_KEY' not allowed"},
		{"chart-managed variable in config", `config: {BRIDGE_HTTP_ADDR: ":9"}`, "additional properties 'BRIDGE_HTTP_ADDR' not allowed"},
		{"config value not a scalar", `config: {BRIDGE_EVENT_TYPES: [message]}`, "at '/config/BRIDGE_EVENT_TYPES'"},
		{"secret as a plain extraEnv value", `extraEnv: [{name: BRIDGE_KAFKA_PASSWORD, value: hunter2}]`, "at '/extraEnv/0'"},
		{"both monitors", `serviceMonitor: {enabled: true}
podMonitor: {enabled: true}`, "at '/podMonitor/enabled'"},
		{"pdb with both bounds", `podDisruptionBudget: {enabled: true, minAvailable: 1, maxUnavailable: 1}`, "at '/podDisruptionBudget/maxUnavailable'"},
		{"pdb without bounds", `podDisruptionBudget: {enabled: true, maxUnavailable: ""}`, "at '/podDisruptionBudget/maxUnavailable'"},
		{"client cert without key", `nats: {tls: {existingSecret: t, certKey: tls.crt}}`, "at '/nats/tls/keyKey'"},
		{"TLS Secret without keys", `kafka: {tls: {existingSecret: t, caKey: ""}}`, "at '/kafka/tls/caKey'"},
		{"http port out of range", `http: {port: 70000}`, "at '/http/port'"},
		{"bad kafka broker", `sink: kafka
kafka: {brokers: ["kafka"]}`, "at '/kafka/brokers/0'"},
		{"bad sasl mechanism", `kafka: {sasl: {mechanism: gssapi}}`, "at '/kafka/sasl/mechanism'"},
		{"grace period as a string", `terminationGracePeriodSeconds: "40"`, "at '/terminationGracePeriodSeconds'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := readValues(t, tc.values)
			if tc.name != "no credentials" {
				vals = merged(readValues(t, credentials), vals)
			}
			_, err := renderChart(t, vals, renderOpts{})
			if err == nil {
				t.Fatal("rendered; want a schema error")
			}
			if !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not contain %q:\n%v", tc.want, err)
			}
		})
	}
}

// TestTemplateRefuses: with --skip-schema-validation the templates still refuse what
// would lose data or run two bridges.
func TestTemplateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, values, want string
	}{
		{"persistence off with the file checkpoint", `persistence: {enabled: false}
nats: {url: nats://nats:4222}`, "persistence.enabled=false needs checkpoint.kind nats-kv or kafka"},
		{"persistence off with the embedded NATS server", `persistence: {enabled: false}
checkpoint: {kind: nats-kv}`, "persistence.enabled=false needs an external broker"},
		{"replicaCount 2 with leader election off", `replicaCount: 2
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}`, "replicaCount=2 needs leaderElection.backend lease or nats-kv"},
		{"replicaCount 2 with the file checkpoint", `replicaCount: 2
leaderElection: {backend: lease}
nats: {url: nats://nats:4222}
persistence: {enabled: false}`, "leaderElection.backend=lease needs checkpoint.kind nats-kv or kafka"},
		{"replicaCount 2 with the embedded NATS server", `replicaCount: 2
leaderElection: {backend: lease}
checkpoint: {kind: nats-kv}
persistence: {enabled: false}`, "leaderElection.backend=lease needs an external broker"},
		{"replicaCount 2 with a persistent volume", `replicaCount: 2
leaderElection: {backend: lease}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, "replicaCount=2 needs persistence.enabled=false"},
		{"leader election with the spool", `leaderElection: {backend: nats-kv}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}
config: {BRIDGE_SPOOL: true}`, "cannot run with config.BRIDGE_SPOOL=on"},
		{"nats-kv election with kafka", `leaderElection: {backend: nats-kv}
sink: kafka
kafka: {brokers: ["k:9092"]}
checkpoint: {kind: kafka}`, "leaderElection.backend=nats-kv needs sink=nats"},
		{"renew deadline not below the lease duration", `leaderElection: {backend: lease, leaseDuration: 10s, renewDeadline: 10s}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, "leaderElection.renewDeadline (10s) must be shorter than leaderElection.leaseDuration (10s)"},
		{"retry period too long for the renew deadline", `leaderElection: {backend: nats-kv, retryPeriod: 9s}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, "leaderElection.retryPeriod (9s) must be below leaderElection.renewDeadline (10s) / 1.2"},
		{"lease duration in fractions of a second", `leaderElection: {backend: lease, leaseDuration: 15500ms}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, "must be a whole number of seconds with the lease backend"},
		{"latest tag", `image: {tag: latest}`, "image.tag: latest is not allowed"},
		{"no api key", `zulip: {apiKey: ""}`, "zulip.apiKey or zulip.existingSecret is required"},
		{"kafka checkpoint with nats", `checkpoint: {kind: kafka}`, "checkpoint.kind=kafka needs sink=kafka"},
		{"grace period below the shutdown timeout", `shutdownTimeout: 1m
terminationGracePeriodSeconds: 60`, "must be above shutdownTimeout"},
		{"bad duration", `shutdownTimeout: soon`, `"soon" is not a duration`},
		{"both monitors", `serviceMonitor: {enabled: true}
podMonitor: {enabled: true}`, "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vals := merged(readValues(t, credentials), readValues(t, tc.values))
			_, err := renderChart(t, vals, renderOpts{skipSchema: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	// The same refusals must not trip on the opt-out done right.
	ok := merged(readValues(t, credentials), readValues(t, `persistence: {enabled: false}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`))
	if _, err := renderChart(t, ok, renderOpts{skipSchema: true}); err != nil {
		t.Fatalf("explicit opt-out refused: %v", err)
	}
	// Nor on a standby done right, with a bare YAML off elsewhere (false) or fractional
	// seconds where the backend allows them.
	for _, s := range []string{`replicaCount: 2
leaderElection: {backend: lease}
persistence: {enabled: false}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`, `leaderElection: {backend: false}`, `leaderElection: {backend: nats-kv, leaseDuration: 2500ms, renewDeadline: 2s, retryPeriod: 500ms}
nats: {url: nats://nats:4222}
checkpoint: {kind: nats-kv}`} {
		vals := merged(readValues(t, credentials), readValues(t, s))
		for _, skip := range []bool{true, false} {
			if _, err := renderChart(t, vals, renderOpts{skipSchema: skip}); err != nil {
				t.Errorf("refused (schema skipped %v): %v\n%s", skip, err, s)
			}
		}
	}
}

// TestGracePeriodFollowsShutdownTimeout: the default grace period is derived from any
// Go duration.
func TestGracePeriodFollowsShutdownTimeout(t *testing.T) {
	for _, tc := range []struct {
		timeout string
		want    int64
	}{{"30s", 40}, {"1m30s", 100}, {"2500ms", 13}, {"1h", 3610}, {"1.5m", 100}} {
		vals := merged(readValues(t, credentials), map[string]any{"shutdownTimeout": tc.timeout})
		dep := one[*appsv1.Deployment](t, mustRender(t, vals, renderOpts{}))
		if got := *dep.Spec.Template.Spec.TerminationGracePeriodSeconds; got != tc.want {
			t.Errorf("shutdownTimeout %s: grace period %d, want %d", tc.timeout, got, tc.want)
		}
	}
}

// TestConfigNamesMatchBridgeEnv: the variables values.schema.json accepts under config,
// the ones the chart sets itself and the secrets are, together, exactly what `bridge
// env` lists, and do not overlap.
func TestConfigNamesMatchBridgeEnv(t *testing.T) {
	env := knownEnv(t)
	var schema struct {
		Properties struct {
			Config struct {
				Properties map[string]any `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	if err := json.Unmarshal([]byte(readFile(t, "zulip-bridge/values.schema.json")), &schema); err != nil {
		t.Fatal(err)
	}
	allowed := slices.Collect(maps.Keys(schema.Properties.Config.Properties))
	managed := map[string]bool{}
	for _, c := range allCases(t) {
		r := mustRender(t, c.vals, renderOpts{})
		cm := configMapNamed(t, r, nil)
		for k := range cm.Data {
			if cfg, _ := c.vals["config"].(map[string]any); cfg[k] == nil {
				managed[k] = true
			}
		}
		// The chart's own env entries (the downward API's), not the case's extraEnv.
		extra, _ := c.vals["extraEnv"].([]any)
		for _, e := range one[*appsv1.Deployment](t, r).Spec.Template.Spec.Containers[0].Env {
			if !slices.ContainsFunc(extra, func(x any) bool { m, _ := x.(map[string]any); return m["name"] == e.Name }) {
				managed[e.Name] = true
			}
		}
	}
	seen := map[string]string{}
	add := func(n, what string) {
		if prev, ok := seen[n]; ok {
			t.Errorf("%s is both %s and %s", n, prev, what)
		}
		seen[n] = what
	}
	for _, n := range allowed {
		add(n, "allowed in config")
	}
	for n := range managed {
		add(n, "set by the chart")
	}
	for n := range env.secrets {
		add(n, "a secret")
	}
	for n := range env.names {
		if _, ok := seen[n]; !ok {
			t.Errorf("%s (bridge env) is neither allowed in config, set by the chart, nor a secret", n)
		}
	}
	for n, what := range seen {
		if !env.names[n] {
			t.Errorf("%s (%s) is unknown to bridge env", n, what)
		}
	}
}

// configMapNamed returns the ConfigMap the Deployment's envFrom names (or, with no
// Deployment given, the chart's ConfigMap of settings).
func configMapNamed(t testing.TB, r rendered, dep *appsv1.Deployment) *corev1.ConfigMap {
	t.Helper()
	if dep == nil {
		dep = one[*appsv1.Deployment](t, r)
	}
	var name string
	for _, from := range dep.Spec.Template.Spec.Containers[0].EnvFrom {
		if from.ConfigMapRef != nil {
			if name != "" {
				t.Fatal("more than one envFrom ConfigMap")
			}
			name = from.ConfigMapRef.Name
		}
	}
	for _, cm := range all[*corev1.ConfigMap](r) {
		if cm.Name == name {
			return cm
		}
	}
	t.Fatalf("envFrom ConfigMap %q not rendered: %v", name, r.kinds())
	return nil
}

func containerPort(t testing.TB, c corev1.Container, p intstr.IntOrString) int {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntValue()
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort)
		}
	}
	t.Errorf("no container port named %q", p.StrVal)
	return -1
}

func svcPort(s *corev1.Service, name string) *corev1.ServicePort {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

func mountAt(c corev1.Container, p string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if path.Clean(c.VolumeMounts[i].MountPath) == path.Clean(p) {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func volumeNamed(pod corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func isTrue(b *bool) bool { return b != nil && *b }
