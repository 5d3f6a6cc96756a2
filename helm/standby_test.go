package helm

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
)

// leaderBackend is leaderElection.backend as the chart reads it: a bare YAML off
// arrives as false.
func leaderBackend(v values) string {
	if b, ok := v.get("leaderElection.backend").(string); ok && b != "" {
		return b
	}
	return "off"
}

// checkStandby checks what leader election renders: the BRIDGE_LEADER_* variables (the
// identity and the Lease's namespace from the downward API), the Role and RoleBinding of
// the lease backend, and the default pod anti-affinity.
func checkStandby(t *testing.T, v values, r rendered, dep *appsv1.Deployment, cfg map[string]string) {
	pod := dep.Spec.Template.Spec
	ctr := pod.Containers[0]
	le := leaderBackend(v)
	if cfg["BRIDGE_LEADER_ELECTION"] != le {
		t.Errorf("BRIDGE_LEADER_ELECTION = %q, want %q", cfg["BRIDGE_LEADER_ELECTION"], le)
	}
	identity, namespace := envNamed(ctr, "BRIDGE_LEADER_IDENTITY"), envNamed(ctr, "BRIDGE_LEADER_LEASE_NAMESPACE")
	for _, k := range []string{"BRIDGE_LEADER_IDENTITY", "BRIDGE_LEADER_LEASE_NAMESPACE"} {
		if _, ok := cfg[k]; ok {
			t.Errorf("%s in the ConfigMap: it is the pod's own, from the downward API", k)
		}
	}
	leaseName := dep.Name // the full name
	if n := v.str("leaderElection.leaseName"); n != "" {
		leaseName = n
	} else if le == "nats-kv" {
		leaseName = releaseNamespace + "." + dep.Name
	}
	if le == "off" {
		for k := range cfg {
			if strings.HasPrefix(k, "BRIDGE_LEADER_") && k != "BRIDGE_LEADER_ELECTION" {
				t.Errorf("%s set without leader election", k)
			}
		}
		if identity != nil || namespace != nil {
			t.Error("downward API leader variables without leader election")
		}
	} else {
		if identity == nil || identity.ValueFrom == nil || identity.ValueFrom.FieldRef == nil || identity.ValueFrom.FieldRef.FieldPath != "metadata.name" {
			t.Errorf("BRIDGE_LEADER_IDENTITY = %+v, want the pod's name (fieldRef metadata.name)", identity)
		}
		for k, want := range map[string]string{
			"BRIDGE_LEADER_LEASE_NAME":     leaseName,
			"BRIDGE_LEADER_LEASE_DURATION": v.str("leaderElection.leaseDuration"),
			"BRIDGE_LEADER_RENEW_DEADLINE": v.str("leaderElection.renewDeadline"),
			"BRIDGE_LEADER_RETRY_PERIOD":   v.str("leaderElection.retryPeriod"),
		} {
			if cfg[k] != want {
				t.Errorf("%s = %q, want %q", k, cfg[k], want)
			}
		}
		if bucket, ok := cfg["BRIDGE_LEADER_NATS_BUCKET"]; ok != (le == "nats-kv") || (ok && bucket != v.str("leaderElection.natsBucket")) {
			t.Errorf("BRIDGE_LEADER_NATS_BUCKET = %q (set %v) with backend %s", bucket, ok, le)
		}
		// What the bridge refuses with an election, the chart must not render.
		if cfg["BRIDGE_CHECKPOINT"] == "file" || cfg["BRIDGE_NATS_EMBEDDED_ADDR"] != "" || cfg["BRIDGE_SPOOL"] == "on" || cfg["BRIDGE_SPOOL"] == "true" {
			t.Errorf("leader election with state in the pod: checkpoint %q, embedded NATS %q, spool %q", cfg["BRIDGE_CHECKPOINT"], cfg["BRIDGE_NATS_EMBEDDED_ADDR"], cfg["BRIDGE_SPOOL"])
		}
	}
	if le == "lease" {
		if namespace == nil || namespace.ValueFrom == nil || namespace.ValueFrom.FieldRef == nil || namespace.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
			t.Errorf("BRIDGE_LEADER_LEASE_NAMESPACE = %+v, want the pod's namespace (fieldRef metadata.namespace)", namespace)
		}
	} else if namespace != nil {
		t.Errorf("BRIDGE_LEADER_LEASE_NAMESPACE set with backend %s", le)
	}
	if v.num("replicaCount") > 1 && (le == "off" || v.on("persistence.enabled")) {
		t.Errorf("%d replicas rendered with election %s, persistence %v", v.num("replicaCount"), le, v.on("persistence.enabled"))
	}

	roles, bindings := all[*rbacv1.Role](r), all[*rbacv1.RoleBinding](r)
	wantRBAC := le == "lease" && v.on("rbac.create")
	if (len(roles) == 1) != wantRBAC || len(bindings) != len(roles) || len(roles) > 1 {
		t.Errorf("Roles %d, RoleBindings %d; want one each: %v (backend %s, rbac.create %v)", len(roles), len(bindings), wantRBAC, le, v.on("rbac.create"))
	}
	for _, role := range roles {
		for _, c := range []struct {
			group, resource, verb, name string
			want                        bool
		}{
			{"coordination.k8s.io", "leases", "get", leaseName, true},
			{"coordination.k8s.io", "leases", "update", leaseName, true},
			{"coordination.k8s.io", "leases", "create", "", true},
			{"coordination.k8s.io", "leases", "get", "another-lease", false},
			{"coordination.k8s.io", "leases", "update", "another-lease", false},
			{"coordination.k8s.io", "leases", "delete", leaseName, false},
			{"coordination.k8s.io", "leases", "patch", leaseName, false},
			{"coordination.k8s.io", "leases", "list", "", false},
			{"coordination.k8s.io", "leases", "watch", "", false},
			{"", "secrets", "get", "", false},
			{"", "configmaps", "get", "", false},
		} {
			if got := roleAllows(role.Rules, c.group, c.resource, c.verb, c.name); got != c.want {
				t.Errorf("Role %s allows %s %s/%s %q: %v, want %v", role.Name, c.verb, c.group, c.resource, c.name, got, c.want)
			}
		}
		for _, rule := range role.Rules {
			if slices.Contains(rule.Verbs, "*") || slices.Contains(rule.Resources, "*") || slices.Contains(rule.APIGroups, "*") || len(rule.NonResourceURLs) > 0 {
				t.Errorf("Role %s rule %+v: wildcards", role.Name, rule)
			}
		}
	}
	for _, b := range bindings {
		if len(roles) == 1 && (b.RoleRef.Kind != "Role" || b.RoleRef.Name != roles[0].Name || b.RoleRef.APIGroup != rbacv1.GroupName) {
			t.Errorf("RoleBinding %s refers to %+v, not the Role %s", b.Name, b.RoleRef, roles[0].Name)
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != rbacv1.ServiceAccountKind || b.Subjects[0].Name != pod.ServiceAccountName || b.Subjects[0].Namespace != releaseNamespace {
			t.Errorf("RoleBinding %s subjects %+v, want the pod's ServiceAccount %s/%s", b.Name, b.Subjects, releaseNamespace, pod.ServiceAccountName)
		}
	}

	// Anti-affinity by default: replicas on different nodes; values.affinity's own
	// podAntiAffinity replaces it, its other keys are kept.
	aff := pod.Affinity
	user, _ := v.get("affinity").(map[string]any)
	if _, ok := user["podAntiAffinity"]; !ok {
		if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 1 ||
			len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) != 0 {
			t.Fatalf("affinity %+v, want one preferred pod anti-affinity term", aff)
		}
		term := aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm
		if term.TopologyKey != corev1.LabelHostname || term.LabelSelector == nil || !selects(term.LabelSelector.MatchLabels, dep.Spec.Template.Labels) {
			t.Errorf("anti-affinity term %+v: want topologyKey %s selecting the bridge's pods", term, corev1.LabelHostname)
		}
	} else if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution) != 0 {
		t.Errorf("affinity %+v: values.affinity's podAntiAffinity not used as given", aff)
	}
	if _, ok := user["nodeAffinity"]; ok != (aff != nil && aff.NodeAffinity != nil) {
		t.Errorf("values.affinity.nodeAffinity given %v, rendered %+v", ok, aff)
	}
}

func envNamed(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// roleAllows evaluates RBAC rules as the authorizer does for a namespaced request.
func roleAllows(rules []rbacv1.PolicyRule, group, resource, verb, name string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || (name != "" && slices.Contains(r.ResourceNames, name))) {
			return true
		}
	}
	return false
}

// checkLeaseAccess asks the API server's authorizer (RBAC, with the release's Role and
// RoleBinding stored) what the pod's ServiceAccount may do with Leases: exactly what
// leader election needs, in the release's namespace, on its one Lease.
func checkLeaseAccess(t *testing.T, srv *kubeapi.Server, ns string, dep *unstructured.Unstructured) {
	t.Helper()
	sa, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "serviceAccountName")
	cm, err := srv.Client.CoreV1().ConfigMaps(ns).Get(t.Context(), dep.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lease := cm.Data["BRIDGE_LEADER_LEASE_NAME"]
	if sa == "" || lease == "" {
		t.Fatalf("ServiceAccount %q, lease %q", sa, lease)
	}
	for _, c := range []struct {
		ns, verb, name string
		want           bool
	}{
		{ns, "get", lease, true},
		{ns, "update", lease, true},
		{ns, "create", "", true},
		{ns, "delete", lease, false},
		{ns, "list", "", false},
		{ns, "get", "another-lease", false},
		{"default", "get", lease, false},
		{"default", "create", "", false},
	} {
		review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:" + ns + ":" + sa,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: c.ns, Verb: c.verb, Group: "coordination.k8s.io", Resource: "leases", Name: c.name,
			},
		}}
		got, err := srv.Client.AuthorizationV1().SubjectAccessReviews().Create(t.Context(), review, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		if got.Status.Allowed != c.want {
			t.Errorf("ServiceAccount %s may %s lease %q in %s: %v (%s), want %v", sa, c.verb, c.name, c.ns, got.Status.Allowed, got.Status.Reason, c.want)
		}
	}
}
