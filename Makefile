# iad-agent — see README.md. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO       ?= go
BIN      := bin
VERSION  ?= 1.0.0
LDFLAGS  := -s -w -X main.version=$(VERSION)
DATA     ?= ./var
CMDS     := $(notdir $(wildcard cmd/*))
TESTFLAGS ?= -count=1 -timeout 25m
FUZZTIME ?= 30s
# CI runs every fuzz target this long (make test, make fuzz-ci).
FUZZCITIME ?= 60s

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build every command into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

# make run's development extras: the agent itself has no rw community.
RUN_FLAGS ?= -rw-community private

.PHONY: run
run: build ## run the agent on the embedded defaults plus RUN_FLAGS (SNMP on 127.0.0.1:16161, data in ./var, a dev signing key in ./var/keys)
	@mkdir -p $(DATA)/keys
	@test -f $(DATA)/keys/dev.pub || $(BIN)/iad-image keygen -out $(DATA)/keys/dev
	$(BIN)/iad-agent -data $(DATA) -trust $(DATA)/keys/dev.pub $(RUN_FLAGS)

# Cross builds for the devices: static, stripped, reproducible.
CROSS_OUT ?= $(BIN)/cross
CROSS_TARGETS := linux-arm linux-arm64
# The arm iad-agent must stay within this many bytes (the size measured
# when the budget was set on main with SNMPv3, AgentX and the config
# model, 7602302, plus 10 %); scripts/cross checks it.
ARM_AGENT_BUDGET := 8362532

.PHONY: cross
cross: ## static linux/arm (GOARM=7) and linux/arm64 builds of every command into bin/cross/, with their sizes
	@set -e; for t in $(CROSS_TARGETS); do \
	  arch=$${t#linux-}; mkdir -p $(CROSS_OUT)/$$t; \
	  GOOS=linux GOARCH=$$arch GOARM=7 CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS) -buildid=' -o $(CROSS_OUT)/$$t/ ./cmd/...; \
	done
	@printf '%-12s %-10s %10s\n' target command bytes; for f in $(CROSS_OUT)/*/*; do \
	  printf '%-12s %-10s %10s\n' $$(basename $$(dirname $$f)) $$(basename $$f) $$(stat -c %s $$f); done
	@printf 'arm iad-agent budget: %s bytes\n' $(ARM_AGENT_BUDGET)

# The device VM: Debian's kernel and busybox (fetched by make test-deps),
# the commands cross-built, assembled by scripts/vm/firmware.
VM_OUT ?= vm-out
VM_ARCHS ?= armhf,arm64

.PHONY: vm-image
vm-image: ## build the device VM firmware (iad-boot initramfs, squashfs banks per version, signed images, flash-like disks) into vm-out/ARCH (needs make test-deps once)
	$(GO) run ./scripts/vm/mkimage -out $(VM_OUT) -arch $(VM_ARCHS)

.PHONY: test-vm
test-vm: ## the device VM scenarios (golden paths, bad software, power cuts, hostile network, U-Boot, arm64) and guest tests; console logs kept in vm-out/artifacts
	IAD_VM_ARTIFACTS=$(abspath $(VM_OUT))/artifacts $(GO) test $(TESTFLAGS) -v ./scripts/vm/... ./scripts/cross/

.PHONY: test-deps
test-deps: ## install the Debian packages the tests need (apt-get; run as root)
	bash scripts/test-deps.sh

.PHONY: test
test: test-deps lint ## install test dependencies, run the whole suite (unit, integration with real net-snmp/tftpd-hpa/vsftpd, the device VM), then fuzz-ci
	IAD_VM_ARTIFACTS=$(abspath $(VM_OUT))/artifacts $(GO) test $(TESTFLAGS) ./...
	$(MAKE) bench-smoke
	@$(MAKE) --no-print-directory fuzz-ci

BENCH_OUT ?= bench-out
BENCHFLAGS ?= -run '^$$' -bench . -benchtime 1x -timeout 60m

.PHONY: bench
bench: build ## measure throughput, memory and flash writes against curl and dd, and the arm build (size; upgrade in the QEMU ARM guest); writes docs/BENCHMARKS.md and $(BENCH_OUT)/results.json
	@mkdir -p $(BENCH_OUT) docs && rm -f $(BENCH_OUT)/results.jsonl
	IAD_BENCH_OUT=$(abspath $(BENCH_OUT))/results.jsonl $(GO) test $(BENCHFLAGS) ./scripts/bench/
	IAD_BENCH_OUT=$(abspath $(BENCH_OUT))/results.jsonl $(GO) test $(BENCHFLAGS) ./scripts/vm/device/
	$(GO) run ./scripts/bench/report -in $(BENCH_OUT)/results.jsonl -json $(BENCH_OUT)/results.json -md docs/BENCHMARKS.md -command "make bench"

.PHONY: bench-smoke
bench-smoke: ## one small iteration of every benchmark (CI: proves they run; figures are not judged)
	@mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/smoke.jsonl
	IAD_BENCH_OUT=$(abspath $(BENCH_OUT))/smoke.jsonl IAD_BENCH_SIZES=2MiB IAD_BENCH_MEM_SIZES=2MiB IAD_BENCH_CONFIG_SIZE=1MiB IAD_BENCH_FLEET=5 IAD_BENCH_SNMP_TIME=1s \
	  $(GO) test $(BENCHFLAGS) ./scripts/bench/
	IAD_BENCH_OUT=$(abspath $(BENCH_OUT))/smoke.jsonl IAD_BENCH_ARM_SIZE=2MiB $(GO) test $(BENCHFLAGS) ./scripts/vm/device/
	$(GO) run ./scripts/bench/report -in $(BENCH_OUT)/smoke.jsonl -json $(BENCH_OUT)/smoke.json

.PHONY: test-unit
test-unit: ## only the fast in-process tests (no external tools needed)
	$(GO) test -count=1 -short ./...

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 30s); a failing input fails, Go 1.26's fuzztime deadline race is run again once
	$(GO) run ./scripts/fuzz -fuzztime $(FUZZTIME)

.PHONY: fuzz-ci
fuzz-ci: ## run every fuzz target for FUZZCITIME each (default 60s), as CI does; a crash fails
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZCITIME)

.PHONY: clean
clean: ## remove build output (not ./var)
	rm -rf $(BIN) $(VM_OUT)
