package kubeapi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// BinsEnv names the directory holding kube-apiserver, kubectl and etcd, as
// printed by scripts/kube-test-bins.sh.
const BinsEnv = "KUBE_TEST_BINS"

var binNames = []string{"etcd", "kube-apiserver", "kubectl"}

// errNoGo says that the binaries could not even be looked for: KUBE_TEST_BINS
// is unset and there is no go command to find the repository with.
var errNoGo = errors.New("no go command")

// binsOnce finds the binaries once per test process: the script's cold build
// takes minutes, and every test of a package would otherwise wait on its lock.
var binsOnce = sync.OnceValues(findBins)

// Bins returns the directory holding the Kubernetes test binaries. Without
// KUBE_TEST_BINS it runs scripts/kube-test-bins.sh from the repository that
// holds the current module (building on first use). The test is skipped only
// when there is no go command to find the repository with, and never when
// CI=true: there a missing binary fails the test.
func Bins(t testing.TB) string {
	t.Helper()
	dir, err := binsOnce()
	switch {
	case errors.Is(err, errNoGo) && os.Getenv("CI") != "true":
		t.Skipf("kubeapi: %v; set %s to the directory scripts/kube-test-bins.sh prints", err, BinsEnv)
	case err != nil:
		t.Fatalf("kubeapi: %v", err)
	}
	return dir
}

func findBins() (string, error) {
	dir := os.Getenv(BinsEnv)
	if dir == "" {
		var err error
		if dir, err = runScript(); err != nil {
			return "", err
		}
	}
	for _, name := range binNames {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w (build them with scripts/kube-test-bins.sh)", BinsEnv, dir, err)
		}
		if fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s=%s: %s is not executable", BinsEnv, dir, name)
		}
	}
	return dir, nil
}

// runScript runs scripts/kube-test-bins.sh of the repository that holds
// the current module (the bridge's at the root, or the chart's under helm/:
// the first directory up from its go.mod with the script), with its build
// log on this process's stderr so that a cold build shows progress, and
// returns the directory it printed.
func runScript() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s unset and go env GOMOD: %v", errNoGo, BinsEnv, err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("%s unset and the current directory is in no module", BinsEnv)
	}
	var script string
	for dir := filepath.Dir(gomod); ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "scripts", "kube-test-bins.sh")); err == nil {
			script = filepath.Join(dir, "scripts", "kube-test-bins.sh")
			break
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("%s unset and no scripts/kube-test-bins.sh above %s", BinsEnv, gomod)
		}
	}
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err = cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s: %w", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}
