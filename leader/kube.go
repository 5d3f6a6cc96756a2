package leader

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"
)

// This file is the lease backend's Kubernetes API client: the few requests
// it makes (get, create and update a Lease; a SelfSubjectAccessReview), as
// JSON over HTTPS, with the credentials of a kubeconfig file or of the
// pod's service account. A general client (client-go) would cost the
// bridge about 20 MiB of resident memory and half its binary size, for
// every deployment, standby or not.

// Where a pod finds its service account (the in-cluster configuration).
const (
	serviceAccountDir       = "/var/run/secrets/kubernetes.io/serviceaccount"
	serviceAccountNamespace = serviceAccountDir + "/namespace"
)

// Kube is how the lease backend reaches the API server.
type Kube struct {
	// Server is the API server's URL, e.g. https://10.0.0.1:443.
	Server string
	// CA is the PEM bundle the server's certificate must chain to; empty
	// means the system's roots.
	CA []byte
	// Insecure skips the verification of the server's certificate
	// (insecure-skip-tls-verify).
	Insecure bool
	// Token is a bearer token; TokenFile a file holding one, read again
	// for every request (a projected service-account token is rotated).
	Token     string
	TokenFile string
	// Cert and Key are a PEM client certificate and its key.
	Cert, Key []byte
}

// KubeError is an answer of the API server other than success: its HTTP
// status code and the Status object's reason and message.
type KubeError struct {
	Code    int
	Reason  string
	Message string
}

func (e *KubeError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("Kubernetes API: HTTP %d %s", e.Code, e.Reason)
	}
	return fmt.Sprintf("Kubernetes API: %s (HTTP %d)", e.Message, e.Code)
}

// kubeStatus reports whether err is a KubeError with HTTP status code.
func kubeStatus(err error, code int) bool {
	var ke *KubeError
	return errors.As(err, &ke) && ke.Code == code
}

// inCluster is the pod's service-account configuration.
func inCluster() (*Kube, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: not in a pod")
	}
	ca, err := os.ReadFile(filepath.Join(serviceAccountDir, "ca.crt"))
	if err != nil {
		return nil, fmt.Errorf("service account CA: %w", err)
	}
	token := filepath.Join(serviceAccountDir, "token")
	if _, err := os.Stat(token); err != nil {
		return nil, fmt.Errorf("service account token: %w", err)
	}
	return &Kube{Server: "https://" + net.JoinHostPort(host, port), CA: ca, TokenFile: token}, nil
}

// kubeconfig is the part of a kubeconfig file the backend reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Clusters []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server                   string `yaml:"server"`
			CertificateAuthority     string `yaml:"certificate-authority"`
			CertificateAuthorityData string `yaml:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `yaml:"insecure-skip-tls-verify"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token                 string         `yaml:"token"`
			TokenFile             string         `yaml:"tokenFile"`
			ClientCertificate     string         `yaml:"client-certificate"`
			ClientCertificateData string         `yaml:"client-certificate-data"`
			ClientKey             string         `yaml:"client-key"`
			ClientKeyData         string         `yaml:"client-key-data"`
			Username              string         `yaml:"username"`
			Exec                  map[string]any `yaml:"exec"`
			AuthProvider          map[string]any `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// loadKubeconfig reads the current context of a kubeconfig file: its
// cluster's server and CA, its user's token or client certificate. Paths
// in it are relative to the file's directory. Credentials from an exec
// plugin, an auth provider or a password are not supported: the lease
// backend runs with a service account's token.
func loadKubeconfig(path string) (*Kube, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	file := func(name string) string {
		if name == "" || filepath.IsAbs(name) {
			return name
		}
		return filepath.Join(dir, name)
	}
	// data returns inline base64 data, or the contents of the file named.
	data := func(what, inline, name string) ([]byte, error) {
		if inline != "" {
			d, err := base64.StdEncoding.DecodeString(inline)
			if err != nil {
				return nil, fmt.Errorf("%s: %s-data: %w", path, what, err)
			}
			return d, nil
		}
		if name == "" {
			return nil, nil
		}
		d, err := os.ReadFile(file(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, what, err)
		}
		return d, nil
	}
	if kc.CurrentContext == "" {
		return nil, fmt.Errorf("%s: no current-context", path)
	}
	var cluster, user string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			cluster, user, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: no context %q", path, kc.CurrentContext)
	}
	k := &Kube{}
	found = false
	for _, c := range kc.Clusters {
		if c.Name != cluster {
			continue
		}
		found = true
		k.Server, k.Insecure = c.Cluster.Server, c.Cluster.InsecureSkipTLSVerify
		if k.CA, err = data("certificate-authority", c.Cluster.CertificateAuthorityData, c.Cluster.CertificateAuthority); err != nil {
			return nil, err
		}
	}
	if !found || k.Server == "" {
		return nil, fmt.Errorf("%s: context %q: no cluster %q with a server", path, kc.CurrentContext, cluster)
	}
	for _, u := range kc.Users {
		if u.Name != user {
			continue
		}
		if u.User.Exec != nil || u.User.AuthProvider != nil || u.User.Username != "" {
			return nil, fmt.Errorf("%s: user %q: only a token, a token file or a client certificate is supported (no exec plugin, auth provider or password)", path, user)
		}
		k.Token, k.TokenFile = u.User.Token, file(u.User.TokenFile)
		if k.Cert, err = data("client-certificate", u.User.ClientCertificateData, u.User.ClientCertificate); err != nil {
			return nil, err
		}
		if k.Key, err = data("client-key", u.User.ClientKeyData, u.User.ClientKey); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// kubeClient makes the backend's requests.
type kubeClient struct {
	server    string
	token     string
	tokenFile string
	http      *http.Client
}

// newKubeClient returns a client for k whose requests each take at most
// timeout.
func newKubeClient(k *Kube, timeout time.Duration) (*kubeClient, error) {
	if !strings.HasPrefix(k.Server, "https://") && !strings.HasPrefix(k.Server, "http://") {
		return nil, fmt.Errorf("API server %q: want an https:// URL", k.Server)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.Insecure}
	if len(k.CA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(k.CA) {
			return nil, errors.New("API server CA: no PEM certificate in it")
		}
		tc.RootCAs = pool
	}
	if len(k.Cert) > 0 || len(k.Key) > 0 {
		cert, err := tls.X509KeyPair(k.Cert, k.Key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tc, ForceAttemptHTTP2: true,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout: timeout, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 2,
	}
	return &kubeClient{server: strings.TrimRight(k.Server, "/"), token: k.Token, tokenFile: k.TokenFile,
		http: &http.Client{Transport: t, Timeout: timeout}}, nil
}

// do sends method path with body in (JSON, if not nil) and decodes a
// successful answer into out (if not nil); any other answer is a
// *KubeError.
func (c *kubeClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token := c.token
	if c.tokenFile != "" {
		b, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("token file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		ke := &KubeError{Code: resp.StatusCode, Reason: http.StatusText(resp.StatusCode)}
		var st struct {
			Reason  string `json:"reason"`
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &st) == nil {
			ke.Reason, ke.Message = cmp.Or(st.Reason, ke.Reason), st.Message
		}
		return ke
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the answer is not the object asked for: %w", method, path, err)
	}
	return nil
}

// lease is a coordination.k8s.io/v1 Lease, the fields the backend uses.
type lease struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Metadata   leaseMeta `json:"metadata"`
	Spec       leaseSpec `json:"spec"`
}

type leaseMeta struct {
	Name            string `json:"name"`
	Namespace       string `json:"namespace,omitempty"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
}

type leaseSpec struct {
	HolderIdentity       *string    `json:"holderIdentity,omitempty"`
	LeaseDurationSeconds *int32     `json:"leaseDurationSeconds,omitempty"`
	AcquireTime          *microTime `json:"acquireTime,omitempty"`
	RenewTime            *microTime `json:"renewTime,omitempty"`
	LeaseTransitions     *int32     `json:"leaseTransitions,omitempty"`
}

func (s leaseSpec) holder() string {
	if s.HolderIdentity == nil {
		return ""
	}
	return *s.HolderIdentity
}

func (s leaseSpec) transitions() int32 {
	if s.LeaseTransitions == nil {
		return 0
	}
	return *s.LeaseTransitions
}

// microTime is metav1.MicroTime's JSON: RFC 3339 with microseconds.
type microTime struct{ time.Time }

const microTimeFormat = "2006-01-02T15:04:05.000000Z07:00"

func (t microTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(t.UTC().Format(microTimeFormat))
}

func (t *microTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s == "" {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	t.Time = v
	return err
}

func leasePath(ns, name string) string {
	p := "/apis/coordination.k8s.io/v1/namespaces/" + ns + "/leases"
	if name != "" {
		p += "/" + name
	}
	return p
}

// getLease reads a Lease; found is false when there is none.
func (c *kubeClient) getLease(ctx context.Context, ns, name string) (l *lease, found bool, err error) {
	l = &lease{}
	err = c.do(ctx, http.MethodGet, leasePath(ns, name), nil, l)
	if kubeStatus(err, http.StatusNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return l, true, nil
}

// createLease creates l; it fails with 409 if it exists.
func (c *kubeClient) createLease(ctx context.Context, l *lease) (*lease, error) {
	l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
	out := &lease{}
	if err := c.do(ctx, http.MethodPost, leasePath(l.Metadata.Namespace, ""), l, out); err != nil {
		return nil, err
	}
	return out, nil
}

// updateLease replaces l at its resourceVersion; it fails with 409 if the
// Lease changed since.
func (c *kubeClient) updateLease(ctx context.Context, l *lease) (*lease, error) {
	l.APIVersion, l.Kind = "coordination.k8s.io/v1", "Lease"
	out := &lease{}
	if err := c.do(ctx, http.MethodPut, leasePath(l.Metadata.Namespace, l.Metadata.Name), l, out); err != nil {
		return nil, err
	}
	return out, nil
}

// allowed asks the server whether this identity may verb leases (the one
// named name, or any when name is empty) in ns.
func (c *kubeClient) allowed(ctx context.Context, ns, verb, name string) (bool, error) {
	type attrs struct {
		Namespace string `json:"namespace"`
		Verb      string `json:"verb"`
		Group     string `json:"group"`
		Resource  string `json:"resource"`
		Name      string `json:"name,omitempty"`
	}
	in := map[string]any{
		"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
		"spec": map[string]any{"resourceAttributes": attrs{Namespace: ns, Verb: verb, Group: "coordination.k8s.io", Resource: "leases", Name: name}},
	}
	var out struct {
		Status struct {
			Allowed bool `json:"allowed"`
		} `json:"status"`
	}
	if err := c.do(ctx, http.MethodPost, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", in, &out); err != nil {
		return false, err
	}
	return out.Status.Allowed, nil
}
