# The one test command is `make test`: it installs the npm reference servers
# the interop tests run against and the npm tools that test gw from outside
# (MCP Inspector CLI, the conformance suite, Node 22; idempotent), vets, checks formatting, checks
# that the committed policy modules match a rebuild of their sources, runs the
# policy kit's own tests, then runs every test with the race detector and
# every fuzz target for a moment.
GO ?= go
NPM_DIR := testdata/npm
NPM_TOOLS_DIR := testdata/npm-tools

.PHONY: test npm-servers npm-tools vet fmt-check policies-check fuzz-smoke bench profiles build run

test: npm-servers npm-tools vet fmt-check policies-check
	$(GO) test -race -count=1 ./...
	$(MAKE) fuzz-smoke

# A short run of every fuzz target (the seed corpora in testdata/fuzz run
# with the plain tests too); FUZZTIME=5m for a real session on one. A
# failure is tried once more: an input the fuzzer found is saved under
# testdata/fuzz and fails the retry at once, while a worker lost to a
# loaded machine does not; the output of a real failure is shown.
FUZZTIME ?= 2s
fuzz-smoke:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for fn in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$fn"; \
			out=$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg 2>&1) || \
			out=$$($(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1 $$pkg 2>&1) || \
				{ echo "$$out" | grep -v '^fuzz: elapsed' >&2; echo "fuzz-smoke: $$pkg $$fn failed; rerun: go test -run '^$$' -fuzz '^$$fn\$$' $$pkg" >&2; exit 1; }; \
		done; \
	done

policies-check:
	$(MAKE) -C policies check test

npm-servers: $(NPM_DIR)/node_modules/.installed

$(NPM_DIR)/node_modules/.installed: $(NPM_DIR)/package.json $(NPM_DIR)/package-lock.json
	cd $(NPM_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The MCP Inspector CLI and the official conformance suite, with the Node 22
# they need (the npm package node@22; Debian's Node 20 runs npm only).
npm-tools: $(NPM_TOOLS_DIR)/node_modules/.installed

$(NPM_TOOLS_DIR)/node_modules/.installed: $(NPM_TOOLS_DIR)/package.json $(NPM_TOOLS_DIR)/package-lock.json
	cd $(NPM_TOOLS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

vet:
	$(GO) vet ./...

fmt-check:
	@out="$$(gofmt -l $$($(GO) list -f '{{.Dir}}' ./...))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Benchmarks behind docs/BENCHMARKS.md: gw vs a direct stdio call side by
# side in one run, and the policy host.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 ./gateway/ ./plugins/ ./cmd/gw/ | tee bench.out

# The hot path's CPU and allocation profiles (top 20, as text) in docs/profiles:
# Gateway.CallTool in both eras, gw's side of the call (the server is another
# process and is not in them).
PROFILE_CALLS ?= 100000x
profiles:
	@set -e; mkdir -p docs/profiles; tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	$(GO) test -c -o $$tmp/gateway.test ./gateway/; \
	for era in legacy modern; do \
		(cd $$tmp && ./gateway.test -test.run '^$$' -test.bench "^BenchmarkToolsCall$$/^era=$$era$$/^gw$$" -test.benchmem \
			-test.benchtime $(PROFILE_CALLS) -test.cpuprofile cpu-$$era.out) > $$tmp/bench-$$era.txt; \
		(cd $$tmp && ./gateway.test -test.run '^$$' -test.bench "^BenchmarkToolsCall$$/^era=$$era$$/^gw$$" -test.benchmem \
			-test.benchtime 5000x -test.memprofile mem-$$era.out -test.memprofilerate 1) > /dev/null; \
		for kind in cpu allocs; do \
			out=docs/profiles/toolscall-$$era-$$kind.txt; \
			{ echo "# $$kind profile of Gateway.CallTool, $$era era (BenchmarkToolsCall/era=$$era/gw): make profiles"; \
			  echo "# $$(grep -h 'cpu:' $$tmp/bench-$$era.txt); $$(nproc) CPUs; $$(date -u +%F)"; \
			  grep -h "era=$$era/gw" $$tmp/bench-$$era.txt | sed 's/^/# /'; \
			  if [ $$kind = cpu ]; then $(GO) tool pprof -top -nodecount 20 $$tmp/gateway.test $$tmp/cpu-$$era.out; \
			    echo; echo "# the same, by cumulative time"; \
			    $(GO) tool pprof -top -cum -nodecount 20 $$tmp/gateway.test $$tmp/cpu-$$era.out | sed -n '/flat%/,$$p'; \
			  else $(GO) tool pprof -sample_index=alloc_objects -top -nodecount 20 $$tmp/gateway.test $$tmp/mem-$$era.out; fi \
			} 2>/dev/null | grep -v '^File:\|^Build ID:\|^Type:\|^Time:' > $$out; \
			echo "wrote $$out"; \
		done; \
	done

build:
	$(GO) build -o bin/gw ./cmd/gw

run:
	$(GO) run ./cmd/gw tools -c examples/demo.yaml
