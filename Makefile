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
# A real control plane for the Kubernetes tests: kube-apiserver and
# kube-controller-manager built from hack/tools/kube (about 12 minutes cold,
# 2 GB of memory; seconds once cached), etcd from Debian.
KUBE_VERSION := 1.34.4
KUBE_DIR     := $(TOOLS_DIR)/kube-v$(KUBE_VERSION)
KUBE_BINS    := $(KUBE_DIR)/kube-apiserver $(KUBE_DIR)/kube-controller-manager
ETCD         ?= /usr/bin/etcd
REDIS_SERVER ?= /usr/bin/redis-server
# helm from the Go module proxy, outside the main go.mod (TESTING.md).
HELM_VERSION := 3.19.5
HELM         := $(TOOLS_DIR)/helm-v$(HELM_VERSION)/helm
TEST_ENV     := WHATCHANGED_ALERTMANAGER=$(ALERTMANAGER) WHATCHANGED_AMTOOL=$(AMTOOL) WHATCHANGED_PROMETHEUS=$(PROMETHEUS) \
                KUBEBUILDER_ASSETS=$(KUBE_DIR) WHATCHANGED_KUBE_CONTROLLER_MANAGER=$(KUBE_DIR)/kube-controller-manager \
                WHATCHANGED_HELM=$(HELM) WHATCHANGED_REDIS_SERVER=$(REDIS_SERVER)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build run test check unit e2e bench fuzz quality tools image clean

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
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /test/e2e -e /test/scenarios)

e2e: tools
	$(TEST_ENV) $(GO) test -count=1 -v ./test/e2e/

## bench: Go benchmarks of the pipeline, then the loopback load harness. Prints figures; asserts nothing.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./enrich/ ./sources/changes/
	$(GO) test -run '^$$' -bench LargeCluster -benchtime 2000x ./sources/kube/
	$(GO) test -run '^$$' -bench RefreshBudget -benchtime 1x ./sources/github/
	$(GO) run ./hack/loadtest -bin bin/whatchanged

## fuzz: run each fuzz target for FUZZTIME (their seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzDecodeWebhook$$' -fuzztime $(FUZZTIME) -parallel 1
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzRuleMatch$$' -fuzztime $(FUZZTIME) -parallel 1

## quality: run the incident scenarios (test/scenarios) and print "N/M right, K false suspects, L duplicate lines" and what went wrong; fails if any is wrong.
quality: tools
	@report=$$(mktemp); log=$$(mktemp); \
	  $(TEST_ENV) WHATCHANGED_QUALITY_REPORT=$$report $(GO) test -count=1 -run '^TestScenarios$$' ./test/scenarios/ >$$log 2>&1; rc=$$?; \
	  if [ -s $$report ]; then cat $$report; else cat $$log; fi; \
	  rm -f $$report $$log; exit $$rc

tools: $(ALERTMANAGER) $(AMTOOL) $(PROMETHEUS) $(KUBE_BINS) $(KUBE_DIR)/etcd $(HELM) $(REDIS_SERVER)

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

$(KUBE_BINS) &:
	@mkdir -p $(KUBE_DIR)
	@echo "building kube-apiserver and kube-controller-manager v$(KUBE_VERSION) into $(KUBE_DIR) (once; about 12 minutes cold)"
	cd hack/tools/kube && GOFLAGS=-mod=mod $(GO) build -o $(KUBE_DIR)/ \
	  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
	@touch $(KUBE_BINS)

# envtest looks for etcd beside kube-apiserver.
$(KUBE_DIR)/etcd: $(ETCD)
	@mkdir -p $(KUBE_DIR)
	ln -sf $(ETCD) $@

$(REDIS_SERVER):
	@echo "installing Debian's redis-server package (once; the tests start their own on a free port)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
	@test -x $@ || { echo "redis-server not at $@; set REDIS_SERVER=/path/to/redis-server"; exit 1; }

$(ETCD):
	@echo "installing Debian's etcd-server package (once)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
	@test -x $@ || { echo "etcd not at $@; set ETCD=/path/to/etcd"; exit 1; }

$(HELM):
	@mkdir -p $(dir $@)
	@echo "building helm v$(HELM_VERSION) into $(dir $@) (once; about 5 minutes cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install helm.sh/helm/v3/cmd/helm@v$(HELM_VERSION)

## image: the container image (needs a container engine; these machines have none).
IMAGE ?= ghcr.io/whatchanged/whatchanged:$(VERSION)
image:
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "make image: no container engine reachable here (docker info failed); build the Dockerfile where one runs"; exit 1; }
	DOCKER_BUILDKIT=1 docker build -f hack/Dockerfile --build-arg VERSION=$(VERSION) -t $(IMAGE) .

$(PROMETHEUS):
	@echo "installing Debian's prometheus package (once)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	@test -x $@ || { echo "prometheus not at $@; set PROMETHEUS=/path/to/prometheus"; exit 1; }

clean:
	rm -rf bin .data
