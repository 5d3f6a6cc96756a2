# The two commands of the README: `make demo` and `make test`.
export GOTOOLCHAIN := local

.PHONY: demo test test-bridge test-fuzz test-helm lint bench

# Built, then run, rather than `go run`: go run reports exit status 1 when
# interrupted, even though the bridge stops cleanly with 0 on Ctrl-C.
demo:
	go build -o bin/bridge ./cmd/bridge
	./bin/bridge demo

# Everything: the bridge's module, then the Helm chart's (its own module
# under helm/), whose install tests run a real kube-apiserver and etcd that
# scripts/kube-test-bins.sh builds once into a cache outside the tree.
test: test-bridge test-fuzz test-helm

# The bridge's leader election tests (leader/) run the same kube-apiserver
# as the chart's install tests; without KUBE_TEST_BINS they skip its part.
test-bridge:
	KUBE_TEST_BINS="$$(scripts/kube-test-bins.sh)" go test -race -count=1 -timeout 15m ./...

# Every fuzz target of the module for a few seconds each (FUZZTIME, default
# 5s); docs/testing.md says how to run them longer.
test-fuzz:
	scripts/fuzz.sh

test-helm:
	KUBE_TEST_BINS="$$(scripts/kube-test-bins.sh)" && export KUBE_TEST_BINS && \
		cd helm && go test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet ./...
	cd helm && go vet ./...
	go mod tidy -diff
	cd helm && go mod tidy -diff
	cd helm/kubebin && go vet ./... && go mod tidy -diff

bench:
	go run ./cmd/bench
