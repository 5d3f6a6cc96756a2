#!/bin/sh
# Builds the Kubernetes test binaries that the Helm chart's install tests run
# (kube-apiserver and kubectl from k8s.io/kubernetes, etcd from the etcd server
# module) from the scratch module helm/kubebin, into a cache directory outside
# the source tree, and prints that directory as the last line on stdout:
#
#   KUBE_TEST_BINS=$(scripts/kube-test-bins.sh) go -C helm test ./...
#
# The directory is $ZULIP_BRIDGE_KUBE_BIN, or else
# ${XDG_CACHE_HOME:-$HOME/.cache}/zulip-bridge/kube-v1.37.2. A build is keyed
# by helm/kubebin's go.mod and go.sum and the Go version: when the binaries
# are there with the same key, the script only prints the directory (about a
# second). A cold build takes several minutes of CPU and about 2.5 GiB of
# memory while linking kube-apiserver; its output goes to stderr.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
mod=$root/helm/kubebin
k8s_version=v1.37.2
dir=${ZULIP_BRIDGE_KUBE_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/zulip-bridge/kube-$k8s_version}
bins="kube-apiserver kubectl etcd"

export GOTOOLCHAIN=local CGO_ENABLED=0
key=$( (cat "$mod/go.mod" "$mod/go.sum" && go env GOVERSION GOOS GOARCH) | sha256sum | cut -d' ' -f1)

fresh() {
	[ "$(cat "$dir/.key" 2>/dev/null)" = "$key" ] || return 1
	for b in $bins; do
		[ -x "$dir/$b" ] || return 1
	done
}

mkdir -p "$dir"
if fresh; then
	echo "$dir"
	exit 0
fi

# Two runs at once (make test in two shells) build once: the second waits for
# the first and then finds the binaries fresh.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/.lock"
	flock 9
	if fresh; then
		echo "$dir"
		exit 0
	fi
fi

echo "kube-test-bins: building kube-apiserver, kubectl and etcd ($k8s_version) into $dir; a cold build takes minutes" >&2
start=$(date +%s)
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
rm -f "$dir/.key"

# The version stamps are what the release build sets (hack/lib/version.sh):
# the server reports v1.37.2 at /version, which is what Helm reads as the
# cluster's version for a chart's kubeVersion constraint and .Capabilities.
ver=k8s.io/component-base/version
ldflags="-s -w -X $ver.gitVersion=$k8s_version -X $ver.gitMajor=1 -X $ver.gitMinor=37 -X $ver.gitTreeState=clean -X $ver.buildDate=1970-01-01T00:00:00Z"
go build -C "$mod" -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -C "$mod" -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl >&2
go build -C "$mod" -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2

for b in $bins; do
	mv -f "$tmp/$b" "$dir/$b"
done
echo "$key" >"$dir/.key"
echo "kube-test-bins: built in $(($(date +%s) - start))s" >&2
echo "$dir"
