# Seed Scheduler for Go.
GO ?= go
BIN ?= bin/schedulerd
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 10s

.PHONY: build test vet fmt-check race fuzz bench bench-writes bench-failover cluster-up cluster-down cluster-status dev clean

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

# The benchmark suite, quick profile (within 5 minutes): a 3-node cluster on
# loopback, every workload, report in docs/bench-report.{md,json} and plots.
# PROFILE=full for the long one (docs/benchmarks.md).
bench: bench-report

# Replicated write throughput and latency only (3 in-process nodes).
bench-writes:
	$(GO) test -run '^$$' -bench ReplicatedWrites -benchtime 5s ./cmd/schedulerd/

# Leader SIGKILL -> new leader, next accepted write and delivery, 20 trials
# with the default and with tuned raft timings, real processes.
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

# End-to-end suite, CI profile: real schedulerd processes behind nginx,
# the leader SIGKILLed 20 times under load (e2e/README.md). Installs nginx
# from Debian's packages when it is missing (needs root; without nginx the
# load-balancer tests skip).
.PHONY: e2e chaos
e2e:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) || \
	  echo "nginx could not be installed: the load-balancer tests will skip"
	$(GO) test -tags e2e -count=1 -timeout 12m -v ./e2e/

# Soak: the same workload for DURATION with a random fault (leader kill,
# random kill, leader SIGSTOP, leader blackhole, kill-all) every 30-120 s.
# Histories and node logs are kept under CHAOS_DIR only when a run fails.
DURATION ?= 30m
CHAOS_DIR ?= chaos-failures
chaos:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx) || \
	  echo "nginx could not be installed: the load-balancer tests will skip"
	E2E_DURATION=$(DURATION) E2E_KEEP_DIR=$(abspath $(CHAOS_DIR)) E2E_CLIENT_TICK=$${E2E_CLIENT_TICK:-1s} $(GO) test -tags e2e -count=1 -timeout 0 -v -run 'TestChaos' ./e2e/

# Reproducible benchmark report: machine, versions, fsync floor, the Go
# benchmarks of cmd/schedulerd and ratios -> docs/bench-report.{md,json}.
# PROFILE=quick (within 5 minutes) or PROFILE=full (about half an hour).
.PHONY: bench-report
bench-report:
	$(GO) run ./cmd/schedbench -profile $${PROFILE:-quick}
