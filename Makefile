# Every target runs on Node 24: scripts/ensure-node.sh installs it into .tools/
# when the machine's node is older, and PATH below puts it first.
SHELL := /bin/bash
ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
export PATH := $(CURDIR)/.tools/node_modules/node-linux-$(ARCH)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

IMAGE ?= quay.io/confidential-devhub/coco-secure-access
TAG ?= latest
PLATFORM ?= linux/amd64

.PHONY: all node deps build test run bench fmt lint typecheck check clean docker-build docker-push

all: build

node:
	@scripts/ensure-node.sh

# npm ci only when the lock file changed since the last install.
node_modules/.installed: package-lock.json | node
	npm ci --no-audit --no-fund
	@touch $@

deps: node_modules/.installed

build: deps
	node scripts/build.ts

# The browser test needs Debian's Chromium: installed when missing and possible, else that test is skipped.
test: deps
	@scripts/ensure-chromium.sh
	@DEBIAN_FRONTEND=noninteractive scripts/ensure-jupyter.sh
	vitest run $(VITEST_ARGS)

# DEMO_APP=1 also starts a demo application and forwards to it.
run: deps
	DEMO_APP=$(DEMO_APP) node src/dev/run.ts

# Not part of `make test`: about 2 minutes of load on 2 cores. BENCH_ARGS=--write updates docs/PERFORMANCE.md.
bench: deps
	node scripts/bench.ts $(BENCH_ARGS)

fmt: deps
	biome check --write .

lint: deps
	biome check .
	node scripts/lint-dockerfile.ts

typecheck: deps
	tsc --noEmit -p tsconfig.json

check: lint typecheck test

clean:
	rm -rf dist node_modules .tools .dev test-results

# BuildKit is required (the Dockerfile uses RUN --mount and $BUILDPLATFORM). Multi-arch:
# make docker-build PLATFORM=linux/amd64,linux/arm64 with a buildx builder (then push with buildx --push).
docker-build: node
	docker build --platform $(PLATFORM) --build-arg VERSION=$$(node -p 'require("./package.json").version') -t $(IMAGE):$(TAG) .

docker-push: docker-build
	docker push $(IMAGE):$(TAG)
