// Package kubebin is the scratch module that pins the Kubernetes test
// binaries (kube-apiserver, kubectl, etcd) the chart's install tests run;
// scripts/kube-test-bins.sh builds them from it. Its imports are in
// tools.go, behind the tools build tag, so that go vet and ordinary builds
// of this module compile nothing of Kubernetes.
package kubebin
