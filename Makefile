# Shardkeeper. `make test` is the one command that checks everything; `make help` lists targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CONTROLLER_TOOLS_VERSION ?= v0.23.0
HELM ?= $(LOCALBIN)/helm
HELM_VERSION ?= v3.22.0
# bench/scale reads kwok's stage configs from the module cache at this version (kwokVersion).
KWOK ?= $(LOCALBIN)/kwok
KWOK_VERSION ?= v0.8.0
# staticcheck 2026.2.2; v0.8 is the first line made for Go 1.26 (go.mod).
STATICCHECK ?= $(LOCALBIN)/staticcheck
STATICCHECK_VERSION ?= v0.8.2
# promtool of Prometheus 3.16 (module v0.316.0) runs the alert unit tests: the first release
# since 3.11 whose go.mod has no replace directive, which `go install pkg@version` refuses.
# go.mod's prometheus (the PromQL parser of charts/promql_test.go) stays at v0.311: moving it
# to v0.316 drags newer client_golang, klauspost/compress and x/net into the operator and
# the bot. Both parse every rule (promtool check rules and the Go test), so a rule must
# suit both. promtool takes a quarter of an hour to build: it is built once per machine
# into the shared cache (as hack/envtest-assets.sh does) and bin/promtool links to it.
PROMTOOL ?= $(LOCALBIN)/promtool
PROMTOOL_VERSION ?= v0.316.0
SHARDKEEPER_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/shardkeeper
TOOLS_CACHE ?= $(SHARDKEEPER_CACHE)/tools
BENCH_SCALE_PODS ?= 100,1000
# Pods of the local cluster may reach the internet only in egress mode; a real token
# (`DISCORD_TOKEN=... make run`) turns it on, as the bot must reach Discord.
CLUSTER_EGRESS ?= $(if $(DISCORD_TOKEN),1,)

# Images are <IMAGE_REPOSITORY_PREFIX>/{operator,bot}:<tag>: the chart's appVersion for a
# release, IMAGE_TAG for local builds (`make images`), which config/default runs.
IMAGE_REPOSITORY_PREFIX ?= ghcr.io/shardkeeper
IMAGE_TAG ?= dev
VERSION ?= dev
DEFAULT_BOT_IMAGE ?= $(IMAGE_REPOSITORY_PREFIX)/bot:$(IMAGE_TAG)

.PHONY: all
all: build

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from markers.
	$(CONTROLLER_GEN) rbac:roleName=operator crd paths="./..." output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: generate
generate: controller-gen ## Generate deepcopy code.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: verify-generated
verify-generated: controller-gen ## Fail when committed generated files are out of date.
	CONTROLLER_GEN=$(CONTROLLER_GEN) hack/verify-generated.sh

.PHONY: fmt
fmt: ## go fmt.
	go fmt ./...

.PHONY: verify-fmt
verify-fmt: ## Fail listing the Go files gofmt would change.
	@unformatted="$$(gofmt -l $$(find . -path ./bin -prune -o -path ./.git -prune -o -name '*.go' -print))"; \
	if [ -n "$$unformatted" ]; then echo "verify-fmt: not gofmt-formatted (run make fmt):" >&2; echo "$$unformatted" >&2; exit 1; fi

.PHONY: vet
vet: ## go vet.
	go vet ./...

.PHONY: lint
lint: verify-fmt staticcheck ## gofmt check and staticcheck.
	$(STATICCHECK) ./...

.PHONY: verify-large-files
verify-large-files: ## Fail on a tracked file over 1 MiB not in hack/large-files.allow.
	@hack/check-large-files.sh

.PHONY: envtest-assets
envtest-assets: ## Build kube-apiserver and etcd for envtest from Go modules (cached in ~/.cache/shardkeeper).
	@hack/envtest-assets.sh >/dev/null

.PHONY: test
test: verify-large-files lint vet verify-generated envtest-assets helm promtool image-deps ## Every check, then every test (builds missing envtest binaries and tools first).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" HELM=$(HELM) PROMTOOL=$(PROMTOOL) CONTROLLER_GEN=$(CONTROLLER_GEN) go test ./... -count=1 -race -timeout 20m

.PHONY: test-e2e
test-e2e: cluster-up images helm ## End to end on the real local cluster (root): helm install, kubectl apply, frozen and wedged bots, upgrades.
	SHARDKEEPER_E2E_CLUSTER=1 HELM=$(HELM) IMAGES_DIR=$(LOCALBIN)/images go test ./test/cluster/ -count=1 -v -timeout 40m

.PHONY: test-clients
test-clients: ## Real Discord clients (discord.py from Debian, discord.js from npm) against cmd/discord-emulator; installs them first (apt: root).
	hack/install-client-deps.sh
	SHARDKEEPER_CLIENT_TESTS=1 go test ./test/clients/ -count=1 -v -timeout 15m

.PHONY: helm-lint
helm-lint: helm ## Lint the helm chart with its default and ci/ values.
	$(HELM) lint --strict charts/shardkeeper
	for values in charts/shardkeeper/ci/*-values.yaml; do $(HELM) lint --strict charts/shardkeeper -f "$$values"; done

##@ Build

.PHONY: build
build: ## Build the operator, bot and gateway proxy binaries into bin/.
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/operator ./cmd/operator
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/bot ./cmd/bot
	CGO_ENABLED=0 go build -trimpath -o $(LOCALBIN)/gateway-proxy ./cmd/gateway-proxy

.PHONY: image-deps
image-deps: ## Install what the images of Debian packages need (npm; apt's package lists), when missing (root).
	@hack/install-image-deps.sh

.PHONY: images
images: image-deps ## Build every image without Docker (Go binaries; Python and Node runtimes from Debian packages): bin/images/*.tar, for ctr import or docker load.
	go run ./hack/images --out $(LOCALBIN)/images --repository-prefix $(IMAGE_REPOSITORY_PREFIX) --tag $(IMAGE_TAG) --version $(VERSION)

.PHONY: bench
bench: ## Measure slow handlers against the heartbeat (botruntime beside plain disgo).
	go run ./bench/heartbeat

.PHONY: bench-botside
bench-botside: ## Measure cmd/bot's idle memory per shard, one shard's events/s (botruntime beside plain disgo), and bytes/CPU per event by transport compression.
	go run ./bench/botside

.PHONY: bench-proxy
bench-proxy: ## Measure the gateway proxy beside a direct connection: events/s and added latency by compression, replay buffer and guild cache memory.
	go test ./bench/proxy -run '^$$' -bench . -benchtime 3s -count 3
	go test ./internal/gatewayproxy/guildcache -run '^$$' -bench GuildMemory -count 3

.PHONY: bench-failover
bench-failover: envtest-assets ## Measure freeze-to-replacement of a bot pod end to end.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./bench/failover

.PHONY: bench-identify
bench-identify: envtest-assets ## Measure 16 shards in 16 pods coming up through shared identify buckets.
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./bench/identify

.PHONY: bench-scale
bench-scale: envtest-assets kwok ## Measure the operator at 100 and 1,000 shard pods (kwok nodes, simulated heartbeats).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./bench/scale -kwok $(KWOK) -pods $(BENCH_SCALE_PODS)

.PHONY: run
run: cluster-up images helm ## Shardkeeper on a real local cluster (root): operator by helm, the Discord emulator, a Ready Go bot and a Python bot behind the gateway proxy answering !ping.
	go run ./hack/run --helm $(HELM) --images $(LOCALBIN)/images

.PHONY: run-localplane
run-localplane: envtest-assets ## No root: an API server with no nodes, the operator and the sample bots (pods never run).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" go run ./hack/localplane --default-bot-image=$(DEFAULT_BOT_IMAGE)

.PHONY: cluster-up
cluster-up: ## Start (or reuse) a real single-node cluster on this machine (root; docs/local-cluster.md). CLUSTER_EGRESS=1: pods may reach the internet.
	CLUSTER_EGRESS=$(CLUSTER_EGRESS) go run ./hack/cluster up

.PHONY: cluster-down
cluster-down: ## Stop the local cluster and remove everything it made.
	go run ./hack/cluster down

.PHONY: run-operator
run-operator: ## Run the operator against the cluster in $$KUBECONFIG (install the CRD first: make install).
	go run ./cmd/operator --default-bot-image=$(DEFAULT_BOT_IMAGE) --metrics-bind-address=:8080 --health-probe-bind-address=:8081

.PHONY: install
install: manifests ## Install the CRD into the cluster in $$KUBECONFIG.
	kubectl apply --server-side -f config/crd/bases

##@ Tools

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN)-$(CONTROLLER_TOOLS_VERSION) ## Install controller-gen into bin/ (pinned).
	@ln -sf $(CONTROLLER_GEN)-$(CONTROLLER_TOOLS_VERSION) $(CONTROLLER_GEN)
$(CONTROLLER_GEN)-$(CONTROLLER_TOOLS_VERSION): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

.PHONY: helm
helm: $(HELM)-$(HELM_VERSION) ## Install helm into bin/ (pinned).
	@ln -sf $(HELM)-$(HELM_VERSION) $(HELM)
$(HELM)-$(HELM_VERSION): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@

.PHONY: kwok
kwok: $(KWOK)-$(KWOK_VERSION) ## Install kwok into bin/ (pinned), for bench-scale.
	@ln -sf $(KWOK)-$(KWOK_VERSION) $(KWOK)
$(KWOK)-$(KWOK_VERSION): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	mv $(LOCALBIN)/kwok $@

.PHONY: staticcheck
staticcheck: $(STATICCHECK)-$(STATICCHECK_VERSION) ## Install staticcheck into bin/ (pinned).
	@ln -sf $(STATICCHECK)-$(STATICCHECK_VERSION) $(STATICCHECK)
$(STATICCHECK)-$(STATICCHECK_VERSION): | $(LOCALBIN)
	GOBIN=$(LOCALBIN) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(LOCALBIN)/staticcheck $@

.PHONY: promtool
promtool: $(TOOLS_CACHE)/promtool-$(PROMTOOL_VERSION) | $(LOCALBIN) ## Link bin/promtool to the pinned promtool, built once per machine into ~/.cache/shardkeeper/tools, for the alert unit tests.
	@ln -sfn $(TOOLS_CACHE)/promtool-$(PROMTOOL_VERSION) $(PROMTOOL)
# Built in a directory of its own and moved into place whole: clones building at once never
# see half a binary. -trimpath: the binary names no clone's or user's paths.
$(TOOLS_CACHE)/promtool-$(PROMTOOL_VERSION):
	mkdir -p $(TOOLS_CACHE)
	tmp="$$(mktemp -d $(TOOLS_CACHE)/.promtool-build-XXXXXX)"; trap 'rm -rf "$$tmp"' EXIT; \
	GOBIN="$$tmp" GOFLAGS=-mod=mod go install -trimpath github.com/prometheus/prometheus/cmd/promtool@$(PROMTOOL_VERSION); \
	mv -f "$$tmp/promtool" $@
