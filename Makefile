# proxy-wasm-lambda — build, test and demo. Everything a fresh machine needs is installed by
# the targets themselves (Rust wasm target, a Python venv with Envoy 1.40 and moto).

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
WASM := target/wasm32-wasip1/release/proxy_wasm_lambda.wasm
export ENVOY_BIN := $(abspath $(VENV)/bin/envoy)
export MOTO_SERVER := $(abspath $(VENV)/bin/moto_server)
export LAMBDA_WASM := $(abspath $(WASM))

.PHONY: bench soak all toolchain tools venv wasm lint unit integration validate-configs test demo clean

all: wasm

toolchain:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

$(VENV)/.installed: tests/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r tests/requirements.txt
	touch $@

venv: $(VENV)/.installed

# Debian packages the build and tests need: wasm-opt (binaryen) shrinks the .wasm.
APT_PACKAGES := binaryen
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int

tools:
	@command -v wasm-opt >/dev/null || { $(SUDO) apt-get install -y -q $(APT_PACKAGES) || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(APT_PACKAGES); }; }

# cargo's output, then wasm-opt -Oz in place (cargo keeps its own fingerprints, so this is
# rerun after every build; it takes a few seconds).
wasm: toolchain tools
	cargo build --release --target wasm32-wasip1
	wasm-opt -Oz $(WASM_FEATURES) $(WASM) -o $(WASM).opt && mv $(WASM).opt $(WASM)
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings
	@# Host calls stay in the shell: only src/filter/ may use proxy_wasm.
	@if grep -rlnE 'proxy_wasm::|proxy_wasm;|proxy_wasm as' src --include=*.rs | grep -v '^src/filter/'; then \
		echo "proxy_wasm used outside src/filter/"; exit 1; fi

unit:
	cargo test

validate-configs: wasm venv
	$(PYTHON) tests/validate_configs.py

integration: wasm venv
	$(PYTHON) -m pytest -q tests/integration

test: lint unit validate-configs integration

# Steady load with rotating AssumeRole credentials: SOAK_SECONDS (600) and more, see scripts/soak.py.
soak: wasm venv
	$(PYTHON) scripts/soak.py

demo: wasm venv
	$(PYTHON) scripts/demo.py

# CPU per request of the filter vs Envoy's native aws_lambda filter (not part of `test`).
# Knobs: BENCH_SECONDS, BENCH_ROUNDS, BENCH_ARGS (e.g. "--rss-soak 1000000", "--json out.json").
bench: wasm venv
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		$(SUDO) apt-get install -y wrk nghttp2-client || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk nghttp2-client)
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)

clean:
	cargo clean
	rm -rf $(VENV)
