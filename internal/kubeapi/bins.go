package kubeapi

import (
	"os"
	"path/filepath"
	"testing"
)

// BinsEnv names the directory holding kube-apiserver and etcd, as printed
// by scripts/kube-test-bins.sh.
const BinsEnv = "KUBE_TEST_BINS"

// Bins returns the directory holding the Kubernetes test binaries. The test
// is skipped when KUBE_TEST_BINS is unset (the bridge module's `make
// test-bridge` does not set it yet); a directory without the binaries fails
// it.
func Bins(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(BinsEnv)
	if dir == "" {
		t.Skipf("kubeapi: %s is unset: skipping the test against a real kube-apiserver; run with %s=\"$(scripts/kube-test-bins.sh)\"", BinsEnv, BinsEnv)
	}
	for _, name := range []string{"etcd", "kube-apiserver"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("kubeapi: %s=%s: %v (build them with scripts/kube-test-bins.sh)", BinsEnv, dir, err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Fatalf("kubeapi: %s=%s: %s is not executable", BinsEnv, dir, name)
		}
	}
	return dir
}
