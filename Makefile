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
# kube-controller-manager built from hack/tools/kube (about 3 minutes cold, more on a loaded machine;
# 2 GB of memory; seconds once cached), etcd from Debian.
KUBE_VERSION := 1.34.4
KUBE_DIR     := $(TOOLS_DIR)/kube-v$(KUBE_VERSION)
KUBE_BINS    := $(KUBE_DIR)/kube-apiserver $(KUBE_DIR)/kube-controller-manager
ETCD         ?= /usr/bin/etcd
REDIS_SERVER ?= /usr/bin/redis-server
# helm from the Go module proxy, outside the main go.mod (TESTING.md).
HELM_VERSION := 3.19.5
# Built to assume the control plane's Kubernetes version (helm's go-install
# default is 1.20, which the chart's kubeVersion refuses and lint judges by).
HELM         := $(TOOLS_DIR)/helm-v$(HELM_VERSION)-k8s1.34/helm
HELM_K8S     := -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34 \
                -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34
# actionlint checks .github/workflows (test/workflows).
ACTIONLINT_VERSION := 1.7.12
ACTIONLINT   := $(TOOLS_DIR)/actionlint-v$(ACTIONLINT_VERSION)/actionlint
# helm-docs writes charts/whatchanged/README.md from values.yaml's "# --" comments.
HELM_DOCS_VERSION := 1.14.2
HELM_DOCS    := $(TOOLS_DIR)/helm-docs-v$(HELM_DOCS_VERSION)/helm-docs
TEST_ENV     := WHATCHANGED_ALERTMANAGER=$(ALERTMANAGER) WHATCHANGED_AMTOOL=$(AMTOOL) WHATCHANGED_PROMETHEUS=$(PROMETHEUS) \
                KUBEBUILDER_ASSETS=$(KUBE_DIR) WHATCHANGED_KUBE_CONTROLLER_MANAGER=$(KUBE_DIR)/kube-controller-manager \
                WHATCHANGED_HELM=$(HELM) WHATCHANGED_REDIS_SERVER=$(REDIS_SERVER)
TEST_ENV += WHATCHANGED_ACTIONLINT=$(ACTIONLINT)
TEST_ENV += WHATCHANGED_HELM_DOCS=$(HELM_DOCS)

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.buildDate=$(BUILD_DATE)

.PHONY: all build run test check unit e2e bench fuzz quality tools image clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/whatchanged ./cmd/whatchanged

## run: start whatchanged on the embedded default (127.0.0.1:8080, no cluster, no downstream).
run:
	@echo "make run: compiling whatchanged into bin/ (about 2 minutes on a fresh machine, downloads included; 3 seconds warm), then serving on 127.0.0.1:8080"
	@CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/whatchanged ./cmd/whatchanged
	bin/whatchanged serve $(ARGS)

## test: every test — unit, golden, fuzz seeds, and end to end against a real Alertmanager.
test: tools check
	@echo "make test: running every package with -race (about 10 minutes on a cold Go cache, 4 minutes warm)"
	$(TEST_ENV) $(GO) test -race -count=1 ./...

check:
	@echo "make check: gofmt, go vet, go mod tidy"
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }

## unit: the packages outside test/ (no built tools; the Slack tests start Debian's redis-server).
unit:
	@$(MAKE) -s $(REDIS_SERVER) $(CHROMIUM)
	$(TEST_ENV) $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /test/)

e2e: tools
	$(TEST_ENV) $(GO) test -count=1 -v ./test/e2e/

## bench: Go benchmarks of the pipeline, then the loopback load harness. Prints figures; asserts nothing.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./enrich/ ./sources/changes/
	$(GO) test -run '^$$' -bench 'LargeCluster|ThreeClusters' -benchtime 2000x ./sources/kube/
	$(GO) test -run '^$$' -bench RefreshBudget -benchtime 1x ./sources/github/
	$(GO) test -run '^$$' -bench BoundedState -benchtime 1x ./sources/argocd/ ./sources/github/ ./enrich/deliver/slack/
	$(GO) test -run '^$$' -bench HistoryBytesPerAlert -benchtime 1x ./enrich/history/
	$(GO) run ./hack/loadtest -bin bin/whatchanged

## fuzz: run each fuzz target for FUZZTIME (their seed corpora also run in `make test`).
FUZZTIME ?= 30s
fuzz:
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzDecodeWebhook$$' -fuzztime $(FUZZTIME) -parallel 1
	$(GO) test ./enrich/ -run '^$$' -fuzz '^FuzzRuleMatch$$' -fuzztime $(FUZZTIME) -parallel 1
	$(GO) test ./sources/changes/ -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) -parallel 1
	$(GO) test ./enrich/server/ -run '^$$' -fuzz '^FuzzDebugEnrich$$' -fuzztime $(FUZZTIME) -parallel 1

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
	@echo "building Alertmanager v$(AM_VERSION) into $(dir $@) (once; about 1 minute cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(AM_VERSION)" \
	  github.com/prometheus/alertmanager/cmd/alertmanager@v$(AM_VERSION)

$(AMTOOL): $(ALERTMANAGER)
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install \
	  -ldflags "-X github.com/prometheus/common/version.Version=$(AM_VERSION)" \
	  github.com/prometheus/alertmanager/cmd/amtool@v$(AM_VERSION)

$(KUBE_BINS) &:
	@mkdir -p $(KUBE_DIR)
	@echo "building kube-apiserver and kube-controller-manager v$(KUBE_VERSION) into $(KUBE_DIR) (once; about 3 minutes cold, more on a loaded machine, 2 GB of memory)"
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
	@echo "building helm v$(HELM_VERSION) into $(dir $@) (once; about 1 minute cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install -ldflags "$(HELM_K8S)" helm.sh/helm/v3/cmd/helm@v$(HELM_VERSION)

tools: $(HELM_DOCS)
$(HELM_DOCS):
	@mkdir -p $(dir $@)
	@echo "building helm-docs v$(HELM_DOCS_VERSION) into $(dir $@) (once; about 10 seconds cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install github.com/norwoodj/helm-docs/cmd/helm-docs@v$(HELM_DOCS_VERSION)

## chart-docs: regenerate charts/whatchanged/README.md from values.yaml and README.md.gotmpl (test/helm fails when it is stale).
.PHONY: chart-docs
chart-docs: $(HELM_DOCS)
	$(HELM_DOCS) --chart-search-root charts --template-files README.md.gotmpl

tools: $(ACTIONLINT)
$(ACTIONLINT):
	@mkdir -p $(dir $@)
	@echo "building actionlint v$(ACTIONLINT_VERSION) into $(dir $@) (once; about 10 seconds cold)"
	cd $(dir $@) && GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install github.com/rhysd/actionlint/cmd/actionlint@v$(ACTIONLINT_VERSION)

# Chromium from Debian's package for the page tests (test/uitest drives it
# headless); about 290 MB installed, once.
CHROMIUM     ?= $(or $(shell command -v chromium 2>/dev/null),/usr/bin/chromium)
TEST_ENV += WHATCHANGED_CHROMIUM=$(CHROMIUM)
tools: $(CHROMIUM)
$(CHROMIUM):
	@echo "installing Debian's chromium package (once; about 290 MB, for the timeline page's browser test)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
	@test -x $@ || { echo "chromium not at $@; set CHROMIUM=/path/to/chromium"; exit 1; }

## image: the linux/amd64 + linux/arm64 container image, built without a container engine (hack/image):
## an OCI layout in bin/image/oci (crane push, skopeo copy) and bin/image/whatchanged-linux-<arch>.tar (docker load, podman load).
IMAGE ?= ghcr.io/whatchanged/whatchanged:$(VERSION)
image:
	@echo "building $(IMAGE) (revision $(REVISION)) for linux/amd64 and linux/arm64 into bin/image (about 6 minutes on a cold Go cache, 10 seconds warm)"
	$(GO) run ./hack/image -out bin/image -image $(IMAGE) -version $(VERSION) -revision $(REVISION) -date $(BUILD_DATE)

$(PROMETHEUS):
	@echo "installing Debian's prometheus package (once)"
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
	@test -x $@ || { echo "prometheus not at $@; set PROMETHEUS=/path/to/prometheus"; exit 1; }

clean:
	rm -rf bin .data
