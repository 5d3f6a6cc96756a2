//go:build tools

package kubebin

// The binaries scripts/kube-test-bins.sh builds: kube-apiserver and kubectl
// from k8s.io/kubernetes, and etcd from the etcd server module at the
// version k8s.io/kubernetes itself requires. Importing them here keeps go
// mod tidy from dropping them; the build tag keeps them out of go vet.
import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
