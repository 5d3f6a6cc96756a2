package leader

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadKubeconfig: the current context's server, CA and credentials,
// inline or from files relative to the kubeconfig; what is not supported
// is refused by name.
func TestLoadKubeconfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("ca.pem", "CA FROM FILE")
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const head = "apiVersion: v1\nkind: Config\ncurrent-context: here\ncontexts:\n- name: other\n  context: {cluster: far, user: nobody}\n- name: here\n  context: {cluster: near, user: bot}\nclusters:\n- name: far\n  cluster: {server: 'https://far:6443'}\n"
	tests := []struct {
		name, config string
		want         Kube
		err          string
	}{
		{"token, inline CA",
			head + "- name: near\n  cluster:\n    server: https://127.0.0.1:6443\n    certificate-authority-data: " + b64("CA INLINE") + "\nusers:\n- name: bot\n  user: {token: s3cret}\n",
			Kube{Server: "https://127.0.0.1:6443", CA: []byte("CA INLINE"), Token: "s3cret"}, ""},
		{"token file and CA file, relative to the kubeconfig",
			head + "- name: near\n  cluster: {server: 'https://n:1', certificate-authority: ca.pem, insecure-skip-tls-verify: true}\nusers:\n- name: bot\n  user: {tokenFile: tok}\n",
			Kube{Server: "https://n:1", CA: []byte("CA FROM FILE"), Insecure: true, TokenFile: filepath.Join(dir, "tok")}, ""},
		{"client certificate",
			head + "- name: near\n  cluster: {server: 'https://n:1'}\nusers:\n- name: bot\n  user: {client-certificate-data: " + b64("CERT") + ", client-key-data: " + b64("KEY") + "}\n",
			Kube{Server: "https://n:1", Cert: []byte("CERT"), Key: []byte("KEY")}, ""},
		{"exec plugin",
			head + "- name: near\n  cluster: {server: 'https://n:1'}\nusers:\n- name: bot\n  user: {exec: {command: gke-gcloud-auth-plugin}}\n",
			Kube{}, "no exec plugin"},
		{"no such context",
			strings.Replace(head, "current-context: here", "current-context: gone", 1), Kube{}, `no context "gone"`},
		{"no such cluster",
			head + "users:\n- name: bot\n  user: {token: x}\n", Kube{}, `no cluster "near"`},
		{"missing CA file",
			head + "- name: near\n  cluster: {server: 'https://n:1', certificate-authority: missing.pem}\n", Kube{}, "missing.pem"},
		{"not YAML", "{", Kube{}, "kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadKubeconfig(write("kubeconfig", tt.config))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the token", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != tt.want.Server || string(got.CA) != string(tt.want.CA) || got.Insecure != tt.want.Insecure ||
				got.Token != tt.want.Token || got.TokenFile != tt.want.TokenFile || string(got.Cert) != string(tt.want.Cert) || string(got.Key) != string(tt.want.Key) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// TestInCluster: outside a pod the in-cluster configuration says why.
func TestInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := inCluster(); err == nil || !strings.Contains(err.Error(), "KUBERNETES_SERVICE_HOST") {
		t.Errorf("inCluster outside a pod: %v", err)
	}
}

// TestKubeClientRefusesBadConnections: a server that is not a URL, a CA
// without a certificate, a broken client key pair.
func TestKubeClientRefusesBadConnections(t *testing.T) {
	for _, k := range []Kube{{Server: "127.0.0.1:6443"}, {Server: "https://a", CA: []byte("junk")}, {Server: "https://a", Cert: []byte("x"), Key: []byte("y")}} {
		if _, err := newKubeClient(&k, 1); err == nil {
			t.Errorf("newKubeClient(%+v) accepted it", k)
		}
	}
}
