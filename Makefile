# The front door. Target names are fixed: serve, test, build, bench, worker-build, worker-dev, deploy.
SHELL := /bin/bash
CARGO ?= cargo
PORT ?= 8080
WASM := target/wasm32-wasip2/release/wacht_admin.wasm

.PHONY: build test lint setup serve bench worker-build worker-dev deploy

## setup: the toolchain pieces a fresh machine lacks (rust-toolchain.toml cannot add targets here)
setup:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

## build: the component, target/wasm32-wasip2/release/wacht_admin.wasm
build: setup
	$(CARGO) build --target wasm32-wasip2 --release
	@stat -c '%s bytes  %n' $(WASM)

## lint: formatting and clippy (native and wasm32), warnings are errors
lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 -p wacht-admin --lib -- -D warnings

## test: unit tests, Wycheproof vectors, and host tests of the real .wasm in wasmtime
test: build
	$(CARGO) test --workspace
