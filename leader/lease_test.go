package leader

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
	"github.com/zulip-bridge/zulip-bridge/internal/testutil"
)

// leaseConfig: a Lease stores whole seconds; 3s leaves a renew deadline
// below it with a margin, and one that a busy API server meets.
var leaseConfig = Config{
	Election:      Lease,
	LeaseDuration: 3 * time.Second,
	RenewDeadline: 2 * time.Second,
	RetryPeriod:   300 * time.Millisecond,
}

func leaseBackend(t *testing.T, srv *kubeapi.Server, ns string) backend {
	return backend{cfg: leaseConfig, new: func(t *testing.T, lease, identity string, viaProxy bool) (Elector, *faultproxy.Proxy) {
		rc := rest.CopyConfig(srv.Config)
		var proxy *faultproxy.Proxy
		if viaProxy {
			u, err := url.Parse(rc.Host)
			if err != nil {
				t.Fatal(err)
			}
			proxy, err = faultproxy.New(u.Host)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { proxy.Close() })
			// The serving certificate names 127.0.0.1, as the proxy does.
			rc.Host = "https://" + proxy.Addr()
		}
		cfg := leaseConfig
		cfg.LeaseName, cfg.Namespace, cfg.Identity = lease, ns, identity
		el, err := NewLease(cfg, kubeOf(rc), nil)
		if err != nil {
			t.Fatal(err)
		}
		return el, proxy
	}}
}

func TestLease(t *testing.T) {
	srv := kubeapi.Start(t)
	ns := srv.Namespace(t)
	testElection(t, leaseBackend(t, srv, ns))

	// The Lease is as client-go would write it, and its leaseTransitions is the
	// last term granted minus one.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := srv.Client.CoordinationV1().Leases(ns).Get(ctx, "pause", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkLease(t, l)

	t.Run("current refuses an identity without the rights to campaign", func(t *testing.T) {
		testLeaseCurrentRights(t, srv, ns)
	})
}

// testLeaseCurrentRights: Current, with a ServiceAccount's own token, fails
// while the account may not get the Lease, and while it may get but not
// update it, naming what is missing; with get, update and create it
// passes.
func testLeaseCurrentRights(t *testing.T, srv *kubeapi.Server, ns string) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const sa = "standby-rights"
	if _, err := srv.Client.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := rest.AnonymousClientConfig(srv.Config)
	rc.BearerToken = tok.Status.Token
	cfg := leaseConfig
	cfg.LeaseName, cfg.Namespace, cfg.Identity = "rights", ns, "a"
	el, err := NewLease(cfg, kubeOf(rc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := el.Current(ctx); !kubeStatus(err, http.StatusForbidden) {
		t.Errorf("Current without any grant: %v, want forbidden", err)
	}
	grant := func(verbs ...string) {
		t.Helper()
		rules := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{cfg.LeaseName}, Verbs: verbs}}
		if slices.Contains(verbs, "create") {
			rules = []rbacv1.PolicyRule{
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{cfg.LeaseName}, Verbs: []string{"get", "update"}},
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
			}
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa}, Rules: rules}
		if _, err := srv.Client.RbacV1().Roles(ns).Get(ctx, sa, metav1.GetOptions{}); err == nil {
			_, err = srv.Client.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{})
			must(t, err)
			return
		}
		_, err := srv.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{})
		must(t, err)
		_, err = srv.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
		}, metav1.CreateOptions{})
		must(t, err)
	}
	// RBAC changes reach the authorizer's cache within moments: poll.
	currentErr := func(want string) {
		t.Helper()
		var last error
		testutil.WaitFor(t, 30*time.Second, "Current to say "+want, func() bool {
			_, last = el.Current(ctx)
			if want == "" {
				return last == nil
			}
			return last != nil && strings.Contains(last.Error(), want)
		})
		t.Logf("Current: %v", last)
	}
	grant("get")
	currentErr("may not update")
	grant("get", "update", "create")
	currentErr("")
}

// kubeOf is the lease backend's connection for a client-go configuration
// of the test API server.
func kubeOf(rc *rest.Config) *Kube {
	return &Kube{Server: rc.Host, CA: rc.CAData, Token: rc.BearerToken, Cert: rc.CertData, Key: rc.KeyData}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func checkLease(t *testing.T, l *coordinationv1.Lease) {
	t.Helper()
	if l.Spec.LeaseTransitions == nil || *l.Spec.LeaseTransitions < 2 {
		t.Errorf("lease %s: leaseTransitions %v, want at least 2 after two takeovers", l.Name, l.Spec.LeaseTransitions)
	}
	t.Logf("lease %s: holder %v, transitions %v", l.Name, ptrString(l.Spec.HolderIdentity), *l.Spec.LeaseTransitions)
}

func ptrString(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}
