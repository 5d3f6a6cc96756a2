package leader

import (
	"context"
	"net/url"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/zulip-bridge/zulip-bridge/internal/faultproxy"
	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
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
		el, err := NewLease(cfg, rc, nil)
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

	// The Lease is what client-go wrote, and its leaseTransitions is the
	// last term granted minus one.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := srv.Client.CoordinationV1().Leases(ns).Get(ctx, "pause", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkLease(t, l)
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
