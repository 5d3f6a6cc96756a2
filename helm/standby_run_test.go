package helm

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
)

// TestChartRunsStandby: the standby values case (two replicas, leader
// election on a Lease, the checkpoint in NATS KV) installs, and its two
// pods, each run as a kubelet would run it with the chart's own environment
// and the ServiceAccount's own token, elect one leader through the API
// server: the Lease names one pod, only that pod reports
// zulip_bridge_leader 1, an event reaches the stream; SIGTERM the leader,
// and the other pod takes the Lease and bridges the next event.
//
// The one thing in the environment the chart does not render is KUBECONFIG:
// a kubelet would mount the token where the in-cluster configuration reads
// it (/var/run/secrets/kubernetes.io/serviceaccount), a path this test
// cannot give a process that is not in a container. The kubeconfig carries
// what that mount would: the API server's address and CA, and a token the
// TokenRequest API issued for the chart's ServiceAccount, so what the bridge
// may do is exactly what the chart's Role grants.
func TestChartRunsStandby(t *testing.T) {
	bridgeBin, simBin := buildBinary(t, "bridge"), buildBinary(t, "zulipsim")
	srv := kubeapi.Start(t)
	sim := startSimulator(t, simBin)
	natsURL := startNATS(t)

	ns := srv.Namespace(t)
	httpPort := freeLoopbackPort(t)
	vals := merged(ciCaseValues(t, ciCases(t), "standby"), map[string]any{
		"zulip": map[string]any{"site": sim.url, "email": sim.email, "apiKey": sim.apiKey},
		"http":  map[string]any{"port": httpPort},
		"nats":  map[string]any{"url": natsURL},
	})
	rel := helmInstall(t, helmConfig(t, srv, ns), ns, vals)
	dep := installedDeployment(t, srv, rel)
	if r := dep.Spec.Replicas; r == nil || *r != 2 {
		t.Fatalf("replicas %v, want the standby case's 2", r)
	}
	kubeconfig := serviceAccountKubeconfig(t, srv, ns, dep.Spec.Template.Spec.ServiceAccountName)

	type pod struct {
		k    *kubelet
		proc *process
	}
	pods := map[string]*pod{}
	var names []string
	for i, suffix := range []string{"x7k2p", "q9m4d"} {
		k := newPod(t, srv, dep, bridgeBin, suffix, fmt.Sprintf("127.0.0.%d", i+1))
		k.env = append(k.env, "KUBECONFIG="+kubeconfig)
		if got := k.getenv("BRIDGE_LEADER_IDENTITY"); got != k.meta.Name {
			t.Fatalf("BRIDGE_LEADER_IDENTITY = %q, want the pod's name %q", got, k.meta.Name)
		}
		pods[k.meta.Name] = &pod{k: k, proc: k.start(t)}
		names = append(names, k.meta.Name)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	// Both ready, the standby too: it must not hold up a rollout.
	for _, name := range names {
		p := pods[name]
		p.k.waitProbe(t, p.proc, "readiness", c.ReadinessProbe, 60*time.Second)
	}

	leaseName := pods[names[0]].k.getenv("BRIDGE_LEADER_LEASE_NAME")
	holder := func() string {
		l, err := srv.Client.CoordinationV1().Leases(ns).Get(t.Context(), leaseName, metav1.GetOptions{})
		if err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		// The holder is the identity (the pod's name) and a suffix that
		// tells one candidacy of a pod from its next: <pod>_<8 hex>.
		h := *l.Spec.HolderIdentity
		if i := strings.LastIndexByte(h, '_'); i > 0 {
			return h[:i]
		}
		return h
	}
	waitHolder := func(not string) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			if h := holder(); h != "" && h != not {
				if pods[h] == nil {
					t.Fatalf("Lease %s held by %q, not one of the pods %v", leaseName, h, names)
				}
				return h
			}
			if time.Now().After(deadline) {
				for _, name := range names {
					t.Logf("%s log:\n%s", name, pods[name].proc.logs())
				}
				t.Fatalf("Lease %s: no holder other than %q within 60s (now %q)", leaseName, not, holder())
			}
			time.Sleep(100 * time.Millisecond) // polling the API server, as a kubectl get -w would
		}
	}
	checkLeaders := func(leader string) {
		t.Helper()
		for _, name := range names {
			if pods[name].proc.exited() {
				continue
			}
			want := "0"
			if name == leader {
				want = "1"
			}
			// The gauge follows the term, which the Lease write starts:
			// poll until it agrees.
			deadline := time.Now().Add(30 * time.Second)
			for got := ""; got != want; got = leaderMetric(t, pods[name].k.ip, c) {
				if time.Now().After(deadline) {
					t.Fatalf("%s: zulip_bridge_leader %q, want %s (Lease holder %s)", name, got, want, leader)
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}

	first := waitHolder("")
	t.Logf("Lease %s held by %s", leaseName, first)
	checkLeaders(first)
	stream := pods[first].k.getenv("BRIDGE_NATS_STREAM")
	content := "standby test, first leader " + strconv.FormatInt(time.Now().UnixNano(), 36)
	sim.sendStreamMessage(t, "Denmark", "helm", content)
	checkStreamHas(t, natsURL, stream, content)

	// The kubelet's stop of the leader: it drains, releases the Lease and
	// exits 0; the standby takes over at its next try.
	grace := 30 * time.Second
	if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	begin := time.Now()
	if code, killed := pods[first].proc.stop(grace); killed || code != 0 {
		t.Errorf("leader exit after SIGTERM: code %d, killed after the grace period: %v, want a clean 0", code, killed)
	}
	second := waitHolder(first)
	t.Logf("Lease taken over by %s %v after the leader's SIGTERM", second, time.Since(begin).Round(time.Millisecond))
	checkLeaders(second)
	content = "standby test, second leader " + strconv.FormatInt(time.Now().UnixNano(), 36)
	sim.sendStreamMessage(t, "Denmark", "helm", content)
	checkStreamHas(t, natsURL, stream, content)
	for _, want := range []string{"leader: elected"} {
		if !strings.Contains(pods[second].proc.logs(), want) {
			t.Errorf("the new leader's log has no %q", want)
		}
	}
}

// startNATS runs a NATS server with JetStream in the test process, on a
// loopback port the OS picks: the external broker the standby case names.
func startNATS(t testing.TB) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready within 10s")
	}
	return s.ClientURL()
}

// serviceAccountKubeconfig writes a kubeconfig, readable by the pod's user,
// that reaches srv with a token issued for the ServiceAccount ns/sa.
func serviceAccountKubeconfig(t testing.TB, srv *kubeapi.Server, ns, sa string) string {
	t.Helper()
	if sa == "" {
		sa = "default"
	}
	hour := int64(3600)
	tok, err := srv.Client.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for ServiceAccount %s/%s: %v", ns, sa, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["in-cluster"] = &clientcmdapi.Cluster{Server: srv.Config.Host, CertificateAuthorityData: srv.Config.CAData}
	kc.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["in-cluster"] = &clientcmdapi.Context{Cluster: "in-cluster", AuthInfo: sa, Namespace: ns}
	kc.CurrentContext = "in-cluster"
	dir, err := os.MkdirTemp("", "kubeconfig-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	path := filepath.Join(dir, "kubeconfig")
	must(t, clientcmd.WriteToFile(*kc, path))
	must(t, os.Chmod(path, 0o644)) // the pod's user, not the test's, reads it
	return path
}

// leaderMetric is the value of zulip_bridge_leader on the pod at ip, read
// from /metrics on the container's http port; "" when it cannot be read.
func leaderMetric(t testing.TB, ip string, c corev1.Container) string {
	t.Helper()
	u := "http://" + net.JoinHostPort(ip, strconv.Itoa(int(namedPort(t, c, "http")))) + "/metrics"
	resp, err := http.Get(u)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "zulip_bridge_leader "); ok {
			return strings.TrimSpace(v)
		}
		if strings.HasPrefix(sc.Text(), "zulip_bridge_leader{") {
			if _, v, ok := strings.Cut(sc.Text(), "} "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}
