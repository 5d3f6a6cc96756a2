# The two commands of the README: `make demo` and `make test`.
export GOTOOLCHAIN := local

.PHONY: demo test lint bench

demo:
	go run ./cmd/bridge demo

test:
	go test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...
