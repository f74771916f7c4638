# Seed Scheduler for Go.
GO ?= go
BIN ?= bin/schedulerd
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 10s

.PHONY: build test vet fmt-check race fuzz bench bench-failover cluster-up cluster-down cluster-status dev clean

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/schedulerd

# The CI entry point: formatting, vet, the race-enabled test suite, then a
# short run of every fuzz target over its checked-in corpus.
test: fmt-check vet race fuzz

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

race:
	$(GO) test -race -count=1 -timeout 15m ./...

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# Replicated write throughput and latency (3 in-process nodes on loopback).
bench:
	$(GO) test -run '^$$' -bench ReplicatedWrites -benchtime 5s ./cmd/schedulerd/

# Leader SIGKILL -> next accepted write, real processes.
bench-failover:
	$(GO) test -run '^$$' -bench LeaderKill -benchtime 20x ./cmd/schedulerd/

cluster-up:
	scripts/cluster.sh up

cluster-down:
	scripts/cluster.sh down

cluster-status:
	scripts/cluster.sh status

dev: build
	$(BIN) -dev

clean:
	rm -rf bin .cluster
