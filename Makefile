# hookline — build, test and run.
#   make run    local stack on embedded defaults (control plane, CRDs, manager, ...)
#   make test   builds everything it needs (control plane included) and runs every test

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

BIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= go tool controller-gen
GOTEST_FLAGS ?=
# Packages whose tests start a real kube-apiserver; run one at a time on 2 cores.
TEST_TIMEOUT ?= 20m

.PHONY: all
all: build

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and the manager's ClusterRole from the API types and RBAC markers.
	$(CONTROLLER_GEN) crd paths="./api/..." output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=hookline-manager paths="./controllers/..." output:rbac:artifacts:config=config/rbac
	$(CONTROLLER_GEN) rbac:roleName=hookline-dispatcher paths="./dispatcher/..." output:rbac:artifacts:config=config/rbac/dispatcher

.PHONY: generate
generate: ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: docs
docs: ## Generate docs/reference.md and docs/reference-webhookreplay.md from the CRDs.
	go run ./hack/crdref config/crd/bases/hookline.io_webhooks.yaml docs/reference.md
	go run ./hack/crdref config/crd/bases/hookline.io_webhookreplays.yaml docs/reference-webhookreplay.md

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: ## Lint with golangci-lint (kubebuilder's set, logcheck, kube-api-linter on api/; .golangci.yml), built from hack/tools.
	cd hack/tools && go build -o $(BIN)/golangci-lint ./golangci-lint
	$(BIN)/golangci-lint run ./...

.PHONY: verify
verify: ## Regenerate everything and fail if a generated file, formatting or go.mod differs.
	hack/verify.sh

.PHONY: helm-sync
helm-sync: ## Copy the generated CRD and ClusterRole rules from config/ into charts/hookline (after make manifests).
	hack/helm-sync.sh

.PHONY: helm-lint
helm-lint: ## Lint charts/hookline (--strict) with the values of charts/hookline/ci/lint-values.yaml.
	BIN_DIR=$(BIN) hack/controlplane/build.sh helm
	$(BIN)/helm lint --strict charts/hookline -f charts/hookline/ci/lint-values.yaml

##@ Build

.PHONY: build
build: ## Build bin/manager, bin/dispatcher, bin/console (the web console) and the CLI (bin/hookline, also as the kubectl plugin bin/kubectl-hookline).
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(BIN)/manager ./cmd/manager
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(BIN)/dispatcher ./cmd/dispatcher
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(BIN)/console ./cmd/console
	CGO_ENABLED=0 go build $(GO_BUILD_FLAGS) -o $(BIN)/hookline ./cmd/hookline
	cp $(BIN)/hookline $(BIN)/kubectl-hookline

# The flags of hack/image's BuildFlags: static binaries without local paths, so make build, make image
# and the image test share Go's build cache.
GO_BUILD_FLAGS ?= -trimpath "-ldflags=-s -w"

.PHONY: image
image: ## Build the container image offline (no Docker engine): bin/image/hookline.tar (docker archive) and bin/image/oci (OCI layout), named as the chart's default image.
	go run ./hack/image -out $(BIN)/image

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd, kubectl and helm from the Go module proxy into bin/.
	hack/controlplane/build.sh

##@ Test

.PHONY: test
test: controlplane build vet ## Build the control plane and the binaries, install Chromium if missing, and run every test (quick fault suite, browser tests and a short fuzz run included).
	HOOKLINE_CHROMIUM=$$(hack/chromium.sh) HOOKLINE_REQUIRE_BROWSER=1 \
		KUBEBUILDER_ASSETS=$(BIN) HOOKLINE_BIN=$(BIN) HOOKLINE_REQUIRE_CONTROLPLANE=1 hack/gotest.sh $(GOTEST_FLAGS) -p 1 -timeout $(TEST_TIMEOUT) ./...
	FUZZTIME=$(TEST_FUZZTIME) hack/fuzz.sh

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane (hack/test-packages.sh unit), with the race detector; seconds to a few minutes.
	hack/gotest.sh $(GOTEST_FLAGS) -race -timeout $(TEST_TIMEOUT) $$(hack/test-packages.sh unit)

.PHONY: test-integration
test-integration: controlplane build ## Run the suites that start kube-apiserver, etcd and the binaries (hack/test-packages.sh integration).
	KUBEBUILDER_ASSETS=$(BIN) HOOKLINE_BIN=$(BIN) HOOKLINE_REQUIRE_CONTROLPLANE=1 hack/gotest.sh $(GOTEST_FLAGS) -p 1 -timeout $(TEST_TIMEOUT) $$(hack/test-packages.sh integration)

.PHONY: test-browser
test-browser: controlplane build ## Drive the web console in headless Chromium (installed by hack/chromium.sh if missing) against the real API server and manager.
	HOOKLINE_CHROMIUM=$$(hack/chromium.sh) KUBEBUILDER_ASSETS=$(BIN) HOOKLINE_BIN=$(BIN) HOOKLINE_REQUIRE_CONTROLPLANE=1 HOOKLINE_REQUIRE_BROWSER=1 \
		go test $(GOTEST_FLAGS) -p 1 -count=1 -timeout $(TEST_TIMEOUT) -v ./test/browser/

.PHONY: console-screenshots
console-screenshots: controlplane build ## Refresh the screenshots of docs/console.md (taken by the browser test).
	HOOKLINE_CHROMIUM=$$(hack/chromium.sh --fonts) HOOKLINE_SCREENSHOTS=$(CURDIR)/docs/console KUBEBUILDER_ASSETS=$(BIN) HOOKLINE_BIN=$(BIN) HOOKLINE_REQUIRE_BROWSER=1 \
		go test -count=1 -run 'TestWebhookLifecycleInTheBrowser|TestDeliveryLogAndReplayInTheBrowser' ./test/browser/

# Fuzz budget per target: a short run inside make test, a long one in make fuzz. make test counts
# executions (2-5 s per target here) rather than timing them: a count budget has no deadline, so it
# cannot hit Go 1.26's end-of-fuzztime race (go.dev/issue/75804; see hack/fuzz.sh).
TEST_FUZZTIME ?= 20000x
FUZZTIME ?= 5m

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (5m) each; prints executions per target.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: faults
faults: controlplane build ## Run the long fault suite (kills, API outage, NATS cluster, hostile receivers); prints sent/acknowledged/delivered/duplicates.
	KUBEBUILDER_ASSETS=$(BIN) HOOKLINE_BIN=$(BIN) hack/faults.sh

##@ Benchmarks

.PHONY: bench
bench: controlplane build ## Measure throughput, latency, isolation, backlog, control-plane scale and the console's list; prints a table.
	go run ./hack/bench $(BENCH_FLAGS)

##@ Run

.PHONY: run
run: controlplane build ## Start the local stack (control plane, CRDs, manager, sample receiver, sample Webhook).
	go run ./hack/devstack

.PHONY: help
help: ## Show targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)
