package kubeapi

import "syscall"

// procAttr makes the kernel kill a control-plane process when the test
// binary dies without running its cleanups (a panic, or go test's -timeout),
// so that no etcd or kube-apiserver outlives the test run.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
