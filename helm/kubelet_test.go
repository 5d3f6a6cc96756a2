package helm

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	release "helm.sh/helm/v4/pkg/release/v1"

	"github.com/zulip-bridge/zulip-bridge/internal/kubeapi"
)

// TestChartRunsBridge: the chart configures a working bridge. It installs
// the chart into a real API server with zulip.site pointing at the Zulip
// simulator, takes the Deployment the server stored, and does what a
// kubelet would with it: resolve the container's environment from the
// stored ConfigMap and Secrets, materialise its volumes, run the bridge
// binary with exactly that environment as the pod's user, and probe it at
// the declared paths and ports. A misspelt variable, a key file the pod's
// user cannot read, or a probe on the wrong port fails here, where a render
// alone passes.
func TestChartRunsBridge(t *testing.T) {
	bridgeBin, simBin := buildBinary(t, "bridge"), buildBinary(t, "zulipsim")
	srv := kubeapi.Start(t)
	sim := startSimulator(t, simBin)

	ns := srv.Namespace(t)
	httpPort, natsPort := freeLoopbackPort(t), freeLoopbackPort(t)
	vals := merged(ciCaseValues(t, ciCases(t), "nats-embedded"), map[string]any{
		"zulip": map[string]any{"site": sim.url, "email": sim.email, "apiKey": sim.apiKey},
		"http":  map[string]any{"port": httpPort},
		"nats":  map[string]any{"embedded": map[string]any{"port": natsPort}},
	})
	rel := helmInstall(t, helmConfig(t, srv, ns), ns, vals)
	t.Logf("installed %s revision %d", rel.Name, rel.Version)

	dep := installedDeployment(t, srv, rel)
	if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("pod has %d containers, want the bridge alone", n)
	}
	if n := len(dep.Spec.Template.Spec.InitContainers); n != 0 {
		t.Fatalf("pod has %d init containers, which this test does not run", n)
	}

	pod := newKubelet(t, srv, dep, bridgeBin)

	// The same environment through `bridge env`: a variable the bridge does
	// not read (a typo in the chart, or one the pod gets from elsewhere) is
	// reported there.
	envOut, err := pod.command("env").CombinedOutput()
	if err != nil {
		t.Fatalf("bridge env: %v\n%s", err, envOut)
	}
	if i := strings.Index(string(envOut), "set but not read"); i >= 0 {
		t.Errorf("the pod's environment has variables the bridge does not read: %s", strings.TrimSpace(string(envOut[i:])))
	}
	if strings.Contains(string(envOut), sim.apiKey) {
		t.Error("bridge env shows the API key")
	}

	bridge := pod.start(t)
	c := dep.Spec.Template.Spec.Containers[0]
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"startup", c.StartupProbe}, {"liveness", c.LivenessProbe}, {"readiness", c.ReadinessProbe}} {
		if p.probe == nil {
			if p.name != "startup" {
				t.Errorf("no %s probe", p.name)
			}
			continue
		}
		begin := time.Now()
		target := pod.waitProbe(t, bridge, p.name, p.probe, 60*time.Second)
		t.Logf("%s probe %s answered 200 after %v", p.name, target, time.Since(begin).Round(time.Millisecond))
	}

	// Events flow: a message sent on the simulator is in the embedded
	// NATS server's stream, reached at the container's port named nats.
	natsAddr := "nats://" + net.JoinHostPort(pod.ip, strconv.Itoa(int(namedPort(t, c, "nats"))))
	content := "hello from the kubelet test " + strconv.FormatInt(time.Now().UnixNano(), 36)
	sim.sendStreamMessage(t, "Denmark", "helm", content)
	checkStreamHas(t, natsAddr, pod.getenv("BRIDGE_NATS_STREAM"), content)

	// The kubelet's stop: SIGTERM, then SIGKILL after the pod's grace.
	grace := 30 * time.Second
	if g := dep.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = time.Duration(*g) * time.Second
	}
	begin := time.Now()
	code, killed := bridge.stop(grace)
	t.Logf("bridge stopped in %v, exit code %d", time.Since(begin).Round(time.Millisecond), code)
	if killed || code != 0 {
		t.Errorf("bridge exit after SIGTERM: code %d, killed after the grace period: %v, want a clean 0", code, killed)
	}

	// The checkpoint and the embedded server's stream went to the state
	// volume (the claim), written as the pod's user.
	pod.checkWrote(t, pod.getenv("BRIDGE_STATE_DIR"))
}

// installedDeployment checks what the release stored (checkStored) and
// returns its Deployment, typed, as the API server holds it.
func installedDeployment(t testing.TB, srv *kubeapi.Server, rel *release.Release) *appsv1.Deployment {
	t.Helper()
	o := storedDeployment(t, checkStored(t, srv, rel))
	dep, err := srv.Client.AppsV1().Deployments(o.GetNamespace()).Get(t.Context(), o.GetName(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep
}

// checkWrote checks that the process left files in dir (a host path of the
// container's environment), owned by the pod's user when it ran as that.
func (k *kubelet) checkWrote(t testing.TB, dir string) {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir) // the mount point links to the volume
	must(t, err)
	var files []string
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files = append(files, p)
		if k.cred == nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != k.cred.Uid {
			t.Errorf("%s owned by uid %d, want the pod's %d", p, st.Uid, k.cred.Uid)
		}
		return nil
	}))
	if len(files) == 0 {
		t.Errorf("the bridge wrote nothing under its state directory %s", dir)
	}
	t.Logf("state directory: %d files", len(files))
}

// defaultPodIP is the address the pod's network namespace would have: the
// test has none of its own, so the pod's listeners bind to loopback. Pods
// that run side by side get one loopback address each (127.0.0.0/8 is all
// loopback on Linux), so that each can listen on the container's ports.
const defaultPodIP = "127.0.0.1"

// kubelet turns a stored Deployment's pod template into a process: its
// environment, its files, its user.
type kubelet struct {
	t       testing.TB
	srv     *kubeapi.Server
	ns      string
	spec    corev1.PodSpec
	meta    metav1.ObjectMeta
	ip      string // the pod's address
	c       corev1.Container
	binary  string
	rootfs  string            // the container's file system; read-only below the mounts
	mounts  map[string]string // mountPath -> directory it maps to
	env     []string
	workDir string
	cred    *syscall.Credential
}

func newKubelet(t testing.TB, srv *kubeapi.Server, dep *appsv1.Deployment, binary string) *kubelet {
	return newPod(t, srv, dep, binary, "kblt", defaultPodIP)
}

// newPod is newKubelet for one of several pods of the Deployment: the pod
// name ends in suffix (after the ReplicaSet's hash, as a Deployment names
// its pods), and ip is its address.
func newPod(t testing.TB, srv *kubeapi.Server, dep *appsv1.Deployment, binary, suffix, ip string) *kubelet {
	t.Helper()
	tmpl := dep.Spec.Template
	k := &kubelet{
		t: t, srv: srv, ns: dep.Namespace, spec: tmpl.Spec, c: tmpl.Spec.Containers[0],
		meta:   tmpl.ObjectMeta,
		ip:     ip,
		mounts: map[string]string{},
	}
	k.meta.Name = dep.Name + "-5d8f7c9b4-" + suffix
	k.meta.Namespace = dep.Namespace
	k.meta.UID = types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012x", crc32.ChecksumIEEE([]byte(suffix))))

	// The pod's user must be able to reach its files: the base is
	// world-traversable, unlike t.TempDir's parents.
	base, err := os.MkdirTemp("", "kubelet-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	must(t, os.Chmod(base, 0o755))
	k.rootfs = filepath.Join(base, "rootfs")
	must(t, os.Mkdir(k.rootfs, 0o755))
	k.binary = filepath.Join(base, "bridge")
	copyFile(t, binary, k.binary, 0o755)

	k.cred = k.credential()
	volumes := k.materialiseVolumes(filepath.Join(base, "volumes"))
	for _, m := range k.c.VolumeMounts {
		dir, ok := volumes[m.Name]
		if !ok {
			t.Fatalf("volumeMount %s: no volume of that name", m.Name)
		}
		if m.SubPath != "" {
			dir = filepath.Join(dir, m.SubPath)
		}
		if m.ReadOnly {
			readOnlyTree(t, dir)
		}
		if !filepath.IsAbs(m.MountPath) {
			t.Fatalf("volumeMount %s: mountPath %q is not absolute", m.Name, m.MountPath)
		}
		// The mount point inside the container file system is a link to
		// the volume: paths resolve the same from the root or from a
		// rewritten variable.
		at := filepath.Join(k.rootfs, m.MountPath)
		must(t, os.MkdirAll(filepath.Dir(at), 0o755))
		must(t, os.Symlink(dir, at))
		k.mounts[filepath.Clean(m.MountPath)] = at
	}
	k.workDir = k.rootfs
	if k.c.WorkingDir != "" {
		k.workDir = k.hostPath(k.c.WorkingDir)
	}
	if sc := k.c.SecurityContext; sc != nil && sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		// Only the mounts are writable, as in the container. The
		// directories leading to mount points are the image's.
		must(t, filepath.WalkDir(k.rootfs, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.Type()&os.ModeSymlink != 0 {
				return err
			}
			return os.Chmod(p, 0o555)
		}))
		t.Cleanup(func() {
			_ = filepath.WalkDir(k.rootfs, func(p string, d os.DirEntry, _ error) error { return os.Chmod(p, 0o755) })
		})
	}
	k.env = k.resolveEnv()
	return k
}

// credential returns the user the container runs as, from the pod's and
// the container's security contexts, when this process may switch to it
// (it runs as root, as CI does); otherwise nil, and the bridge runs as the
// test's user, file permissions then proving less.
func (k *kubelet) credential() *syscall.Credential {
	psc := k.spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	uid, gid := psc.RunAsUser, psc.RunAsGroup
	if sc := k.c.SecurityContext; sc != nil {
		uid, gid = cmpOr(sc.RunAsUser, uid), cmpOr(sc.RunAsGroup, gid)
	}
	if uid == nil {
		if psc.RunAsNonRoot != nil && *psc.RunAsNonRoot {
			k.t.Fatal("runAsNonRoot without a numeric runAsUser: the image's USER decides, which this test cannot check")
		}
		return nil
	}
	if os.Geteuid() != 0 {
		k.t.Logf("not root: the bridge runs as uid %d, not as the pod's uid %d", os.Geteuid(), *uid)
		return nil
	}
	cred := &syscall.Credential{Uid: uint32(*uid)}
	if gid != nil {
		cred.Gid = uint32(*gid)
	}
	if psc.FSGroup != nil {
		cred.Groups = append(cred.Groups, uint32(*psc.FSGroup))
	}
	for _, g := range psc.SupplementalGroups {
		cred.Groups = append(cred.Groups, uint32(g))
	}
	return cred
}

func cmpOr[T any](a, b *T) *T {
	if a != nil {
		return a
	}
	return b
}

// fsGroup is the group the kubelet gives volume files, if the pod sets one
// and this process may chown.
func (k *kubelet) fsGroup() (int, bool) {
	if k.spec.SecurityContext == nil || k.spec.SecurityContext.FSGroup == nil || os.Geteuid() != 0 {
		return 0, false
	}
	return int(*k.spec.SecurityContext.FSGroup), true
}

// materialiseVolumes creates each pod volume under dir and returns the
// directory of each by name.
func (k *kubelet) materialiseVolumes(dir string) map[string]string {
	t := k.t
	must(t, os.MkdirAll(dir, 0o755))
	out := map[string]string{}
	for _, v := range k.spec.Volumes {
		vdir := filepath.Join(dir, v.Name)
		must(t, os.Mkdir(vdir, 0o755))
		out[v.Name] = vdir
		switch {
		case v.EmptyDir != nil:
			k.writableVolume(vdir, 0o777)
		case v.PersistentVolumeClaim != nil:
			// A claim the release created, bound by no provisioner here;
			// a fresh directory is what a new volume holds.
			if _, err := k.srv.Client.CoreV1().PersistentVolumeClaims(k.ns).Get(t.Context(), v.PersistentVolumeClaim.ClaimName, metav1.GetOptions{}); err != nil {
				t.Fatalf("volume %s: claim %s: %v", v.Name, v.PersistentVolumeClaim.ClaimName, err)
			}
			k.writableVolume(vdir, 0o775)
		case v.Secret != nil:
			s := v.Secret
			k.writeSecretFiles(vdir, s.SecretName, s.Items, s.DefaultMode, s.Optional)
		case v.ConfigMap != nil:
			c := v.ConfigMap
			k.writeConfigMapFiles(vdir, c.Name, c.Items, c.DefaultMode, c.Optional)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.Secret != nil:
					k.writeSecretFiles(vdir, src.Secret.Name, src.Secret.Items, v.Projected.DefaultMode, src.Secret.Optional)
				case src.ConfigMap != nil:
					k.writeConfigMapFiles(vdir, src.ConfigMap.Name, src.ConfigMap.Items, v.Projected.DefaultMode, src.ConfigMap.Optional)
				case src.DownwardAPI != nil:
					for _, item := range src.DownwardAPI.Items {
						if item.FieldRef == nil {
							t.Fatalf("volume %s: downwardAPI item %s: only fieldRef is supported here", v.Name, item.Path)
						}
						k.writeFile(vdir, item.Path, []byte(k.fieldRef(item.FieldRef)), cmpOr(item.Mode, v.Projected.DefaultMode), true)
					}
				default:
					t.Fatalf("volume %s: a projected source this test does not materialise: %+v", v.Name, src)
				}
			}
		default:
			t.Fatalf("volume %s: a volume type this test does not materialise", v.Name)
		}
	}
	return out
}

// writableVolume sets an emptyDir's or a claim's directory up as the
// kubelet does with an fsGroup: group-owned, setgid.
func (k *kubelet) writableVolume(dir string, mode os.FileMode) {
	if gid, ok := k.fsGroup(); ok {
		must(k.t, os.Chown(dir, 0, gid))
		mode |= 0o770 | os.ModeSetgid
	}
	must(k.t, os.Chmod(dir, mode))
}

func (k *kubelet) writeSecretFiles(dir, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) {
	s, err := k.srv.Client.CoreV1().Secrets(k.ns).Get(k.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return
		}
		k.t.Fatalf("secret volume: %v", err)
	}
	k.writeKeys(dir, "Secret "+name, s.Data, items, defaultMode, optional)
}

func (k *kubelet) writeConfigMapFiles(dir, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) {
	cm, err := k.srv.Client.CoreV1().ConfigMaps(k.ns).Get(k.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		if optional != nil && *optional {
			return
		}
		k.t.Fatalf("configMap volume: %v", err)
	}
	data := map[string][]byte{}
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	k.writeKeys(dir, "ConfigMap "+name, data, items, defaultMode, optional)
}

// writeKeys writes the named items of data (all keys without items) as
// files, failing on a key that is not there unless the source is optional.
func (k *kubelet) writeKeys(dir, source string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional *bool) {
	if len(items) == 0 {
		for key, v := range data {
			k.writeFile(dir, key, v, defaultMode, true)
		}
		return
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional != nil && *optional {
				continue
			}
			k.t.Fatalf("%s has no key %q for volume file %s", source, it.Key, it.Path)
		}
		k.writeFile(dir, it.Path, v, cmpOr(it.Mode, defaultMode), true)
	}
}

// writeFile writes a volume file with its mode, or the API's default 0644.
// With an fsGroup the kubelet gives it to that group and adds group read.
func (k *kubelet) writeFile(dir, rel string, data []byte, mode *int32, readOnly bool) {
	t := k.t
	if filepath.IsAbs(rel) || strings.HasPrefix(filepath.Clean(rel), "..") {
		t.Fatalf("volume file path %q escapes its volume", rel)
	}
	p := filepath.Join(dir, rel)
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	perm := os.FileMode(0o644)
	if mode != nil {
		perm = os.FileMode(*mode) & os.ModePerm
	}
	must(t, os.WriteFile(p, data, perm))
	if gid, ok := k.fsGroup(); ok {
		must(t, os.Chown(p, 0, gid))
		if readOnly {
			perm |= 0o440
		}
	}
	must(t, os.Chmod(p, perm))
}

func readOnlyTree(t testing.TB, dir string) {
	t.Helper()
	must(t, filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return os.Chmod(p, fi.Mode()&^0o222&(os.ModePerm|os.ModeSetgid))
	}))
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, _ error) error { return os.Chmod(p, 0o755) })
	})
}

// resolveEnv builds the container's environment in the kubelet's order:
// service links, then envFrom sources, then env entries (each may refer to
// earlier ones with $(VAR)); values that are paths under a mount are
// rewritten to where the mount is here, and listen addresses to the pod's
// loopback address.
func (k *kubelet) resolveEnv() []string {
	t := k.t
	env := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := env[name]; !ok {
			order = append(order, name)
		}
		env[name] = value
	}
	if k.spec.EnableServiceLinks == nil || *k.spec.EnableServiceLinks {
		for name, value := range k.serviceLinks() {
			set(name, value)
		}
	}
	for _, from := range k.c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := k.srv.Client.CoreV1().ConfigMaps(k.ns).Get(t.Context(), from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				t.Fatalf("envFrom: %v", err)
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := k.srv.Client.CoreV1().Secrets(k.ns).Get(t.Context(), from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				t.Fatalf("envFrom: %v", err)
			}
			data = map[string]string{}
			for key, v := range s.Data {
				data[key] = string(v)
			}
		default:
			t.Fatalf("envFrom entry with neither configMapRef nor secretRef")
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for key := range data {
				if !yield(key) {
					return
				}
			}
		})
		for _, key := range keys {
			set(from.Prefix+key, data[key])
		}
	}
	for _, e := range k.c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expand(e.Value, env))
			continue
		}
		value, ok := k.envSource(e.Name, e.ValueFrom)
		if ok {
			set(e.Name, value)
		}
	}
	out := make([]string, 0, len(order)+2)
	for _, name := range order {
		out = append(out, name+"="+k.rewrite(env[name]))
	}
	// The image's environment: PATH, and a HOME inside the container.
	return append(out, "PATH="+os.Getenv("PATH"), "HOME="+k.rootfs)
}

func (k *kubelet) envSource(name string, src *corev1.EnvVarSource) (string, bool) {
	t := k.t
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := k.srv.Client.CoreV1().Secrets(k.ns).Get(t.Context(), ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := s.Data[ref.Key]; ok {
				return string(v), true
			}
		}
		if ref.Optional != nil && *ref.Optional {
			return "", false
		}
		t.Fatalf("env %s: secret %s key %s: %v", name, ref.Name, ref.Key, err)
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := k.srv.Client.CoreV1().ConfigMaps(k.ns).Get(t.Context(), ref.Name, metav1.GetOptions{})
		if err == nil {
			if v, ok := cm.Data[ref.Key]; ok {
				return v, true
			}
		}
		if ref.Optional != nil && *ref.Optional {
			return "", false
		}
		t.Fatalf("env %s: configMap %s key %s: %v", name, ref.Name, ref.Key, err)
	case src.FieldRef != nil:
		return k.fieldRef(src.FieldRef), true
	case src.ResourceFieldRef != nil:
		return k.resourceFieldRef(name, src.ResourceFieldRef), true
	}
	t.Fatalf("env %s: a valueFrom this test does not resolve", name)
	return "", false
}

var labelRef = regexp.MustCompile(`^metadata\.(labels|annotations)\['(.+)'\]$`)

func (k *kubelet) fieldRef(ref *corev1.ObjectFieldSelector) string {
	switch ref.FieldPath {
	case "metadata.name":
		return k.meta.Name
	case "metadata.namespace":
		return k.meta.Namespace
	case "metadata.uid":
		return string(k.meta.UID)
	case "spec.nodeName":
		return "kubelet-test-node"
	case "spec.serviceAccountName":
		return k.spec.ServiceAccountName
	case "status.podIP", "status.hostIP":
		return k.ip
	}
	if m := labelRef.FindStringSubmatch(ref.FieldPath); m != nil {
		if m[1] == "labels" {
			return k.meta.Labels[m[2]]
		}
		return k.meta.Annotations[m[2]]
	}
	k.t.Fatalf("fieldRef %s: not resolved by this test", ref.FieldPath)
	return ""
}

// resourceFieldRef resolves limits and requests as the kubelet does: in
// units of the divisor, rounded up; an unset limit is the node's capacity,
// taken here as this machine's CPUs and no memory bound.
func (k *kubelet) resourceFieldRef(name string, ref *corev1.ResourceFieldSelector) string {
	kind, res, ok := strings.Cut(ref.Resource, ".")
	if !ok {
		k.t.Fatalf("env %s: resourceFieldRef %q", name, ref.Resource)
	}
	list := k.c.Resources.Limits
	if kind == "requests" {
		list = k.c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(res)]
	if !ok {
		k.t.Fatalf("env %s: resourceFieldRef %s is not set on the container", name, ref.Resource)
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if res == "cpu" {
		return strconv.FormatInt((q.MilliValue()+divisor.MilliValue()-1)/divisor.MilliValue(), 10)
	}
	return strconv.FormatInt((q.Value()+divisor.Value()-1)/divisor.Value(), 10)
}

// serviceLinks are the Docker-link style variables the kubelet adds for
// each Service of the pod's namespace with a cluster IP.
func (k *kubelet) serviceLinks() map[string]string {
	svcs, err := k.srv.Client.CoreV1().Services(k.ns).List(k.t.Context(), metav1.ListOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	out := map[string]string{}
	for _, s := range svcs.Items {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
			continue
		}
		prefix := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		out[prefix+"_SERVICE_HOST"] = ip
		out[prefix+"_SERVICE_PORT"] = strconv.Itoa(int(s.Spec.Ports[0].Port))
		first := s.Spec.Ports[0]
		out[prefix+"_PORT"] = fmt.Sprintf("%s://%s:%d", strings.ToLower(string(first.Protocol)), ip, first.Port)
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				out[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = strconv.Itoa(int(p.Port))
			}
			pp := fmt.Sprintf("%s_PORT_%d_%s", prefix, p.Port, strings.ToUpper(string(p.Protocol)))
			out[pp] = fmt.Sprintf("%s://%s:%d", strings.ToLower(string(p.Protocol)), ip, p.Port)
			out[pp+"_PROTO"] = strings.ToLower(string(p.Protocol))
			out[pp+"_PORT"] = strconv.Itoa(int(p.Port))
			out[pp+"_ADDR"] = ip
		}
	}
	return out
}

// expand replaces $(VAR) with the value of an already defined variable, as
// the kubelet does; $$ is a literal $, and an undefined reference stays.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

var listenAddr = regexp.MustCompile(`^(0\.0\.0\.0)?:([0-9]+)$`)

// rewrite maps a value as seen inside the container to this host: a path
// under a mount to where the mount is here, and an address on every
// interface (":8080", "0.0.0.0:4222") to the pod's loopback address.
func (k *kubelet) rewrite(v string) string {
	if m := listenAddr.FindStringSubmatch(v); m != nil {
		return net.JoinHostPort(k.ip, m[2])
	}
	if !strings.HasPrefix(v, "/") {
		return v
	}
	return k.hostPath(v)
}

// hostPath maps an absolute container path to this host: under the
// longest mount that holds it, or else into the container's root.
func (k *kubelet) hostPath(p string) string {
	p = filepath.Clean(p)
	best := ""
	for mp := range k.mounts {
		if (p == mp || strings.HasPrefix(p, mp+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best != "" {
		return k.mounts[best] + strings.TrimPrefix(p, best)
	}
	return filepath.Join(k.rootfs, p)
}

// command is the container's process with extra arguments in place of its
// args (for `bridge env`): the image's entrypoint is the bridge.
func (k *kubelet) command(args ...string) *exec.Cmd {
	envMap := map[string]string{}
	for _, kv := range k.env {
		name, v, _ := strings.Cut(kv, "=")
		envMap[name] = v
	}
	if len(k.c.Command) > 0 {
		k.t.Fatalf("container command %q overrides the image's entrypoint (/bridge); the test runs the bridge as the entrypoint", k.c.Command)
	}
	if args == nil {
		for _, a := range k.c.Args {
			args = append(args, k.rewrite(expand(a, envMap)))
		}
	}
	cmd := exec.Command(k.binary, args...)
	cmd.Env = k.env
	cmd.Dir = k.workDir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: k.cred, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// process is the running container.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	out  strings.Builder
}

func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *process) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits; after grace it kills. It returns the exit
// code and whether the kill was needed.
func (p *process) stop(grace time.Duration) (int, bool) {
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	killed := false
	select {
	case <-p.done:
	case <-time.After(grace):
		killed = true
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	return p.cmd.ProcessState.ExitCode(), killed
}

func (k *kubelet) start(t testing.TB) *process {
	t.Helper()
	p := &process{cmd: k.command(), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start bridge: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("bridge log:\n%s", p.logs())
		}
	})
	return p
}

// waitProbe runs an httpGet probe as declared (path, port by number or by
// the container's port name, host, scheme, headers) until it answers 200,
// and returns the URL it probed.
func (k *kubelet) waitProbe(t testing.TB, p *process, name string, probe *corev1.Probe, timeout time.Duration) string {
	t.Helper()
	g := probe.HTTPGet
	if g == nil {
		t.Fatalf("%s probe is not an httpGet probe: %+v", name, probe.ProbeHandler)
	}
	host := cmpOrString(g.Host, k.ip)
	scheme := strings.ToLower(string(cmpOrString(string(g.Scheme), "HTTP")))
	port := g.Port.IntVal
	if g.Port.Type == intstr.String {
		port = namedPort(t, k.c, g.Port.StrVal)
	}
	target := (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(int(port))), Path: g.Path}).String()
	probeTimeout := time.Duration(max(probe.TimeoutSeconds, 1)) * time.Second
	client := &http.Client{Timeout: probeTimeout}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		if p.exited() {
			t.Fatalf("%s probe %s: the bridge exited (code %d)", name, target, p.cmd.ProcessState.ExitCode())
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return target
			}
			last = fmt.Sprintf("%s %s", resp.Status, strings.TrimSpace(string(body)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s probe %s: no 200 within %v (last: %s)", name, target, timeout, last)
		}
		select {
		case <-p.done:
		case <-time.After(100 * time.Millisecond): // the probe's period, shortened
		}
	}
}

func cmpOrString[T ~string](v, def T) T {
	if v == "" {
		return def
	}
	return v
}

// namedPort resolves a port name through the container's ports.
func namedPort(t testing.TB, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, name)
	return 0
}

// simulator is a running zulipsim.
type simulator struct {
	url, email, apiKey string
}

var (
	simURL = regexp.MustCompile(`msg="zulipsim listening" url=(\S+)`)
	simBot = regexp.MustCompile(`msg="zulipsim bot" email=(\S+) api_key=(\S+)`)
)

// startSimulator runs zulipsim on a loopback port the OS picks and reads
// its URL and bot credentials from its log.
func startSimulator(t testing.TB, binary string) *simulator {
	t.Helper()
	cmd := exec.Command(binary, "-addr", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start zulipsim: %v", err)
	}
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan simulator, 1)
	go func() {
		defer close(done)
		// Reading the log to its end keeps the simulator from blocking on
		// a full pipe; its exit status is the cleanup's business.
		defer func() { _ = cmd.Wait() }()
		var sim simulator
		sent := false
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := simURL.FindStringSubmatch(sc.Text()); m != nil && sim.url == "" {
				sim.url = m[1]
			}
			if m := simBot.FindStringSubmatch(sc.Text()); m != nil && sim.email == "" {
				sim.email, sim.apiKey = m[1], m[2]
			}
			if !sent && sim.url != "" && sim.email != "" {
				found <- sim
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case sim := <-found:
		return &sim
	case <-done:
		t.Fatal("zulipsim exited before logging its URL and bot")
	case <-time.After(30 * time.Second):
		t.Fatal("zulipsim logged no URL and bot within 30s")
	}
	return nil
}

// sendStreamMessage posts a message as the simulator's bot, as a Zulip
// client does.
func (s *simulator) sendStreamMessage(t testing.TB, stream, topic, content string) {
	t.Helper()
	form := url.Values{"type": {"stream"}, "to": {stream}, "topic": {topic}, "content": {content}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.url+"/api/v1/messages", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(s.email, s.apiKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("send message: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("send message: %s %s", resp.Status, body)
	}
}

// checkStreamHas reads the JetStream stream from the start until a message
// on a message subject carries content.
func checkStreamHas(t testing.TB, natsURL, stream, content string) {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect to the embedded NATS server at %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"zulip.message.>"}})
	if err != nil {
		t.Fatalf("consume stream %s: %v", stream, err)
	}
	var seen []string
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			t.Fatalf("no message with %q in stream %s (%v); subjects seen: %v", content, stream, err, seen)
		}
		seen = append(seen, msg.Subject())
		if strings.Contains(string(msg.Data()), content) {
			t.Logf("message published as %s", msg.Subject())
			return
		}
	}
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// getenv returns a variable of the container's resolved environment.
func (k *kubelet) getenv(name string) string {
	for _, kv := range k.env {
		if n, v, _ := strings.Cut(kv, "="); n == name {
			return v
		}
	}
	k.t.Fatalf("the container's environment has no %s", name)
	return ""
}

func copyFile(t testing.TB, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(to, data, mode))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
