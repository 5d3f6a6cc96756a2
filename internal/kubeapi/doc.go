// Package kubeapi runs a real Kubernetes control plane for tests: etcd and
// kube-apiserver as subprocesses on 127.0.0.1, on ports the OS picks, with
// a token-authenticated cluster admin, RBAC authorization and a
// service-account signing key, so that what a test sends is validated,
// defaulted and stored exactly as a cluster does. There is no kubelet and
// no controller manager: objects are stored, pods never run.
//
// The binaries come from scripts/kube-test-bins.sh (the directory it prints,
// passed as KUBE_TEST_BINS, or the script is run on first use). Everything a
// server writes lives in the test's temporary directory, and the processes
// are stopped and waited for when the test ends.
//
// The bridge's tests (leader, cmd/bridge) and the Helm chart's (its own
// module under helm/, which requires this one through a replace of ../)
// share it.
package kubeapi
