# The project's interface: CI (.ci/run) and people call these targets.
#
#   make build      web assets, then bin/sailstream (version stamped)
#   make run        build, then ./bin/sailstream up
#   make deps       install what a fresh machine lacks (scripts/install-deps.sh)
#   make test       everything, with -race, against real Mosquitto, Kafka,
#                   PostgreSQL and Azurite
#                   started by the test bed (internal/testenv/testbed)
#   make test-unit  fast tests only: -short, no services
#   make bench      benchmarks of the hot paths and of the sinks (test bed services)
#   make check      gofmt, go vet, go mod tidy must leave go.mod/go.sum unchanged
#   make clean

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Passed to `go test` by `make test`; e.g. make test TESTFLAGS='-run Kafka -v' PKGS=./bridge/...
TESTFLAGS ?= -race -count=1 -timeout 15m
PKGS      ?= ./...
# Passed to the test bed, e.g. TESTBED_FLAGS='-keep' to keep the services' logs.
TESTBED_FLAGS ?=

.PHONY: all build run deps web test test-unit bench check clean
.DEFAULT_GOAL := build

all: check test build

build: web
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/sailstream ./cmd/sailstream

run: build
	./bin/sailstream up

deps:
	scripts/install-deps.sh

# --- web assets: rebuilt only when web/ sources (not its Go code) change ----
ifneq ($(wildcard web/package.json),)
WEB_SRC := $(shell find web \( -name node_modules -o -name dist \) -prune -o -type f ! -name '*.go' -print)

web: web/dist/.built

web/node_modules/.package-lock.json: web/package.json $(wildcard web/package-lock.json)
	cd web && npm ci --no-audit --no-fund
	touch $@

web/dist/.built: web/node_modules/.package-lock.json $(WEB_SRC)
	cd web && npm run build
	@mkdir -p web/dist
	touch $@
else
web:
	@echo "web: no web/package.json yet, nothing to build"
endif

# --- tests -------------------------------------------------------------------
bin/testbed: $(shell find internal/testenv -name '*.go' ! -name '*_test.go') go.mod
	$(GO) build -o $@ ./internal/testenv/testbed

test: deps web bin/testbed
	cd web && npm test --silent
	bin/testbed $(TESTBED_FLAGS) -- $(GO) test $(TESTFLAGS) $(PKGS)

test-unit:
	$(GO) test -short -count=1 $(PKGS)

# Benchmarks, with the test bed's services for those that need them (core's
# end-to-end guarantee comparison, the sinks).
bench: deps bin/testbed
	bin/testbed $(TESTBED_FLAGS) -- $(GO) test -run '^$$' -bench . -benchmem ./telemetry/... ./core/... ./udf/udftest/... ./sinks/...

# --- hygiene -------------------------------------------------------------------
GO_FILES = $(shell find . \( -name node_modules -o -name .git -o -name .cache -o -name testdata \) -prune -o -name '*.go' -print)

check: web
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf bin
	@if [ -d web/dist ]; then find web/dist -mindepth 1 ! -name .gitkeep -delete; fi
