# whatchanged — the two commands a newcomer needs are `make run` and `make test`.
SHELL := bash
GO    ?= go

# Tools the tests need are built once into a cache outside the checkout, keyed
# by version, so a fresh clone's second run is fast.
CACHE_DIR    ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/whatchanged
TOOLS_DIR    := $(CACHE_DIR)/tools
AM_VERSION   := 0.31.1
ALERTMANAGER := $(TOOLS_DIR)/alertmanager-v$(AM_VERSION)/alertmanager
AMTOOL       := $(TOOLS_DIR)/alertmanager-v$(AM_VERSION)/amtool
# Prometheus from Debian's package (2.42): building it from the module proxy
# lacks its UI and takes minutes; the package installs in seconds.
PROMETHEUS   ?= /usr/bin/prometheus
TEST_ENV     := WHATCHANGED_ALERTMANAGER=$(ALERTMANAGER) WHATCHANGED_AMTOOL=$(AMTOOL) WHATCHANGED_PROMETHEUS=$(PROMETHEUS)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build run test check unit e2e bench fuzz tools clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/whatchanged ./cmd/whatchanged

## run: start whatchanged on the embedded default (127.0.0.1:8080, no cluster, no downstream).
run:
	$(GO) run ./cmd/whatchanged serve $(ARGS)

## test: every test — unit, golden, fuzz seeds, and end to end against a real Alertmanager.
test: tools check
	$(TEST_ENV) $(GO) test -race -count=1 ./...

check:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/e2e)

e2e: tools
	$(TEST_ENV) $(GO) test -count=1 -v ./test/e2e/

## bench: Go benchmarks of the pipeline, then the loopback load harness. Prints figures; asserts nothing.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./enrich/ ./sources/changes/
	$(GO) run ./hack/loadtest -bin bin/whatchanged

## fuzz: run each fuzz target for FUZZTIME (their seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzDecodeWebhook$$' -fuzztime $(FUZZTIME) -parallel 1
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzRuleMatch$$' -fuzztime $(FUZZTIME) -parallel 1

tools: $(ALERTMANAGER) $(AMTOOL) $(PROMETHEUS)

# Alertmanager from the Go module proxy (v0.32+ cannot be built this way: its
# UI assets are not in the module). The version ldflag sets its User-Agent.
$(ALERTMANAGER):
	@mkdir -p $(dir $@)
	@echo "building Alertmanager v$(AM_VERSION) into $(dir $@) (once; about 2 minutes cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(AM_VERSION)" \
	  github.com/prometheus/alertmanager/cmd/alertmanager@v$(AM_VERSION)

$(AMTOOL): $(ALERTMANAGER)
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(AM_VERSION)" \
	  github.com/prometheus/alertmanager/cmd/amtool@v$(AM_VERSION)

$(PROMETHEUS):
	@echo "installing Debian's prometheus package (once)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	@test -x $@ || { echo "prometheus not at $@; set PROMETHEUS=/path/to/prometheus"; exit 1; }

clean:
	rm -rf bin .data
