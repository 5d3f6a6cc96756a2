package kubeapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Deadlines of the start-up waits. On two shared cores the API server is
// ready in a few seconds; these only bound a start that went wrong.
const (
	etcdStartTimeout = 30 * time.Second
	readyTimeout     = 90 * time.Second
	stopGrace        = 5 * time.Second
	pollInterval     = 50 * time.Millisecond
)

// AdminUser and AdminGroups are who the Server's credentials authenticate
// as: a member of system:masters, which RBAC lets do anything.
const AdminUser = "kubeapi-admin"

var AdminGroups = []string{"system:masters"}

// Server is a running etcd and kube-apiserver.
type Server struct {
	// Config reaches the API server as the cluster admin. Callers that
	// change it should work on a copy (rest.CopyConfig).
	Config *rest.Config
	// Kubeconfig is a kubeconfig file with the same server and credentials,
	// its context current, for tools that read one (Helm, kubectl).
	Kubeconfig string
	// Client is a typed client built from Config.
	Client kubernetes.Interface
	// BinDir holds the etcd, kube-apiserver and kubectl binaries used.
	BinDir string

	dir        string // the test's temporary directory
	namespaces atomic.Int64
}

// Start runs etcd and kube-apiserver for the test and returns once the API
// server reports ready. Both are stopped, and waited for, when the test
// ends; if it failed, the tail of their logs is in the test's output.
func Start(t testing.TB) *Server {
	t.Helper()
	bins := Bins(t)
	dir := t.TempDir()
	begin := time.Now()

	p, err := newPKI(dir)
	if err != nil {
		t.Fatalf("kubeapi: certificates: %v", err)
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	// token,user,uid,"group1,group2": the format of --token-auth-file.
	line := fmt.Sprintf("%s,%s,%s,%q\n", token, AdminUser, AdminUser, strings.Join(AdminGroups, ","))
	if err := os.WriteFile(tokens, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}

	etcd, etcdURL := startEtcd(t, bins, dir)
	api, port := startAPIServer(t, bins, dir, etcdURL, p, tokens)
	t.Cleanup(func() {
		// In reverse order of start: the API server's last writes go to a
		// live etcd rather than into a retry loop.
		api.stop(stopGrace)
		etcd.stop(stopGrace)
		if t.Failed() {
			t.Logf("kube-apiserver log (tail):\n%s", api.logTail(40))
			t.Logf("etcd log (tail):\n%s", etcd.logTail(20))
		}
	})

	cfg := &rest.Config{
		Host:            "https://127.0.0.1:" + strconv.Itoa(port),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM},
		// The suite's clients are few and short-lived; client-go's
		// default of 5 queries per second would make Helm wait.
		QPS:   200,
		Burst: 400,
	}
	waitReady(t, cfg, api)
	t.Logf("kubeapi: kube-apiserver %s ready in %v", cfg.Host, time.Since(begin).Round(time.Millisecond))

	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubeapi: client: %v", err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := writeKubeconfig(kubeconfig, cfg); err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	return &Server{Config: cfg, Kubeconfig: kubeconfig, Client: client, BinDir: bins, dir: dir}
}

// startEtcd runs a single-member etcd on loopback. It listens on port 0 and
// reports the port the OS picked in its log, which is where this learns it:
// there is no window in which another process could take the port.
func startEtcd(t testing.TB, bins, dir string) (*proc, string) {
	t.Helper()
	addr := make(chan string, 1)
	onLine := func(line string) {
		var entry struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil && entry.Address != "" &&
			strings.HasPrefix(entry.Msg, "serving client traffic") {
			select {
			case addr <- entry.Address:
			default:
			}
		}
	}
	const anyPort = "http://127.0.0.1:0"
	args := []string{
		"--name=kubeapi",
		"--data-dir=" + filepath.Join(dir, "etcd"),
		"--listen-client-urls=" + anyPort,
		"--advertise-client-urls=" + anyPort,
		"--listen-peer-urls=" + anyPort,
		"--initial-advertise-peer-urls=" + anyPort,
		"--initial-cluster=kubeapi=" + anyPort,
		// The data is thrown away with the test: syncing it to disk
		// would only slow every write down.
		"--unsafe-no-fsync",
		"--log-level=info",
	}
	etcd, err := startProc("etcd", filepath.Join(bins, "etcd"), args, filepath.Join(dir, "etcd.log"), onLine)
	if err != nil {
		t.Fatalf("kubeapi: %v", err)
	}
	timer := time.NewTimer(etcdStartTimeout)
	defer timer.Stop()
	select {
	case a := <-addr:
		return etcd, "http://" + a
	case <-etcd.done:
		t.Fatalf("kubeapi: etcd %v before serving: %v\n%s", errExited, etcd.err, etcd.logTail(20))
	case <-timer.C:
		etcd.stop(stopGrace)
		t.Fatalf("kubeapi: etcd not serving after %v\n%s", etcdStartTimeout, etcd.logTail(20))
	}
	return nil, ""
}

// startAPIServer runs kube-apiserver against etcdURL. It cannot listen on
// port 0 (its flag requires a port), so it gets a port the OS just handed
// out and freed; if another process took it in between, the server exits
// at once saying so, and it is started again on another.
func startAPIServer(t testing.TB, bins, dir, etcdURL string, p *pki, tokens string) (*proc, int) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(port),
			"--tls-cert-file=" + p.certFile,
			"--tls-private-key-file=" + p.keyFile,
			"--cert-dir=" + filepath.Join(dir, "certs"),
			"--token-auth-file=" + tokens,
			"--authorization-mode=RBAC",
			"--service-account-key-file=" + p.saPubFile,
			"--service-account-signing-key-file=" + p.saKeyFile,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-cluster-ip-range=10.96.0.0/16",
			// No kubelet or controller manager runs: nothing would answer
			// at the endpoints of the kubernetes Service, and no token
			// controller would create the service-account tokens the
			// ServiceAccount admission plugin waits for.
			"--endpoint-reconciler-type=none",
			"--disable-admission-plugins=ServiceAccount",
			"--profiling=false",
		}
		logPath := filepath.Join(dir, fmt.Sprintf("kube-apiserver-%d.log", attempt))
		api, err := startProc("kube-apiserver", filepath.Join(bins, "kube-apiserver"), args, logPath, nil)
		if err != nil {
			t.Fatalf("kubeapi: %v", err)
		}
		if attempt < 3 && portTaken(api, port) {
			t.Logf("kubeapi: port %d was taken before kube-apiserver bound it; trying another", port)
			continue
		}
		return api, port
	}
}

// portTaken reports whether the API server exited because its port was in
// use. It waits only as long as the server takes to get to binding, which
// comes before the slow part of its start-up.
func portTaken(api *proc, port int) bool {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if done, _ := api.exited(); done {
			return strings.Contains(api.logTail(50), "address already in use")
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if err == nil {
			conn.Close()
			// Someone listens. If it is not our server, it exits shortly
			// and waitReady reports its log.
			return false
		}
		time.Sleep(pollInterval) // polling a port, not synchronising
	}
	return false
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("kubeapi: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitReady polls /readyz until it answers 200: by then the server's
// post-start hooks (RBAC bootstrap roles, priority and fairness, CRD
// discovery) have run.
func waitReady(t testing.TB, cfg *rest.Config, api *proc) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cfg.CAData)
	client := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	var last string
	for {
		if done, err := api.exited(); done {
			t.Fatalf("kubeapi: kube-apiserver %v: %v\n%s", errExited, err, api.logTail(40))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, cfg.Host+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+cfg.BearerToken)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("kubeapi: kube-apiserver not ready after %v (last: %s)\n%s", readyTimeout, last, api.logTail(40))
		case <-time.After(pollInterval):
		}
	}
}

func writeKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kubeapi"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["kubeapi"] = &clientcmdapi.Context{Cluster: "kubeapi", AuthInfo: "admin", Namespace: "default"}
	kc.CurrentContext = "kubeapi"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

var notDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for the test, named after it, and returns
// its name. There is no namespace controller to finish deleting one, so it
// stays until the server is stopped.
func (s *Server) Namespace(t testing.TB) string {
	t.Helper()
	n := s.namespaces.Add(1)
	base := strings.Trim(notDNS.ReplaceAllString(strings.ToLower(t.Name()), "-"), "-")
	suffix := "-" + strconv.FormatInt(n, 10)
	if len(base) > 63-len(suffix) {
		base = strings.TrimRight(base[:63-len(suffix)], "-")
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: base + suffix}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubeapi: create namespace %s: %v", ns.Name, err)
	}
	return ns.Name
}

// Kubectl runs the kubectl binary against the server and returns what it
// printed on stdout; the error includes its stderr.
func (s *Server) Kubectl(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, "kubectl"), append([]string{"--kubeconfig=" + s.Kubeconfig}, args...)...)
	// kubectl keeps its discovery cache under HOME.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir}
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
	}
	return out, err
}
