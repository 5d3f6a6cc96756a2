// Package kubeapi runs a real Kubernetes control plane for the leader
// package's tests: etcd and kube-apiserver as subprocesses on 127.0.0.1, on
// ports the OS picks, with a token-authenticated cluster admin and RBAC.
//
// It is a copy of helm/internal/kubeapi (the Helm chart's own module cannot
// be imported from this one), without kubectl and without building the
// binaries: the tests that need it are skipped unless KUBE_TEST_BINS names
// the directory scripts/kube-test-bins.sh prints.
package kubeapi
