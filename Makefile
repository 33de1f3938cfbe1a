# Build, code generation and tests for sockauth.
#
# `make test` installs what the tests need (code generators at pinned versions,
# npm packages from the committed lockfiles) and runs every check.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
export PATH := $(BIN):$(PATH)

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc
GO_TEST_FLAGS ?= -race -timeout 15m

.PHONY: all build generate check-generated lint npm clients services browser client-js test e2e fuzz bench clean

all: build

build:
	$(GO) build ./...

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

## generate: regenerate gen/ from proto/ with buf.
generate: $(TOOLS)
	buf lint
	buf generate

## check-generated: fail when gen/ differs from what buf generates now.
check-generated: $(TOOLS)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	buf generate --output "$$tmp" && \
	if ! diff -r "$$tmp/gen" gen >/dev/null; then \
		diff -r "$$tmp/gen" gen | head -20; \
		echo "gen/ is stale: run 'make generate' and commit the result" >&2; exit 1; \
	fi

# BUF_BREAKING_AGAINST is the API that proto/ must stay compatible with: the
# committed main branch, so an uncommitted change that breaks callers fails.
BUF_BREAKING_AGAINST ?= .git\#branch=main

lint: $(TOOLS)
	buf lint
	buf breaking --against '$(BUF_BREAKING_AGAINST)'
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	if [ -n "$$unformatted" ]; then echo "not gofmt-formatted: $$unformatted" >&2; exit 1; fi

## npm: install the npm packages of the end-to-end tests from their lockfiles.
npm:
	npm ci --prefix e2e/node --no-audit --no-fund

## clients: install what the cross-language client tests and the Node
## adapter use: the npm packages of clients/node and adapter/node, and
## Debian's protoc, grpc_python_plugin and Python gRPC runtime.
clients:
	npm ci --prefix clients/node --no-audit --no-fund
	npm ci --prefix adapter/node --no-audit --no-fund
	./scripts/ensure-client-tools.sh

## services: start the Redis server that the Redis store tests use.
services:
	./scripts/ensure-redis.sh

## browser: install what the browser test uses: Debian's chromium at
## /usr/bin/chromium (with apt-get, only when it is missing) and the npm
## packages of e2e/browser.
browser:
	./scripts/ensure-chromium.sh
	npm ci --prefix e2e/browser --no-audit --no-fund

## client-js: the unit tests of the client helper in client/js, with its
## development npm packages from client/js/package-lock.json.
client-js:
	npm ci --prefix client/js --no-audit --no-fund
	node --test client/js/test/*.test.js

## test: every check and every test, with the race detector.
test: check-generated lint npm clients services browser client-js
	npm test --prefix adapter/node
	SOCKAUTH_REQUIRE_CLIENTS=1 SOCKAUTH_REQUIRE_BROWSER=1 $(GO) test $(GO_TEST_FLAGS) ./...
	# The race detector enlarges stack frames, so this test skips under it.
	$(GO) test -count=1 -run '^TestReleaseHijackedShrinksIdleReaderStacks$$' ./adapter/socketio

## e2e: only the end-to-end tests.
e2e: npm clients services browser
	SOCKAUTH_REQUIRE_CLIENTS=1 SOCKAUTH_REQUIRE_BROWSER=1 $(GO) test $(GO_TEST_FLAGS) ./e2e/...

## fuzz: run each fuzz target for FUZZTIME (the seeds alone run in make test).
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzPasetoV2Decode$$' -fuzztime $(FUZZTIME) ./authority
	$(GO) test -run '^$$' -fuzz '^FuzzTokenFromPayload$$' -fuzztime $(FUZZTIME) ./adapter
	$(GO) test -run '^$$' -fuzz '^FuzzLoginHandler$$' -fuzztime $(FUZZTIME) ./cmd/chat-demo

## bench: reproduce the figures of docs/BENCHMARKS.md (takes several minutes).
bench:
	./bench/run.sh

clean:
	rm -rf $(BIN)
