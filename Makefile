# The two commands of the README: `make demo` and `make test`.
export GOTOOLCHAIN := local

.PHONY: demo test lint bench

# Built, then run, rather than `go run`: go run reports exit status 1 when
# interrupted, even though the bridge stops cleanly with 0 on Ctrl-C.
demo:
	go build -o bin/bridge ./cmd/bridge
	./bin/bridge demo

test:
	go test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...
