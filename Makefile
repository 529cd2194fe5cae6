# scale0 — the two commands:
#   make demo   the whole control plane on this machine, with a scripted story
#   make test   every test, against real RabbitMQ and Redis (started if needed)
CARGO ?= cargo

.PHONY: demo test test-long services lint bench build lambda-zips lambdas

services:
	infra/local/services.sh

build:
	$(CARGO) build --workspace --bins

demo: services build
	$(CARGO) run -q -p scale0 -- demo

# The end-to-end tests (tests/) run the workspace's binaries as processes; cargo builds
# every binary of a crate whose integration tests it runs, so `cargo test --workspace`
# builds them all (with the same features as the tests: one build, not two).
test: services
	$(CARGO) test --workspace

# Longer runs: the chaos test with 10,000 requests.
test-long: services build
	SCALE0_CHAOS_REQUESTS=10000 $(CARGO) test -p scale0-tests --test chaos -- --nocapture

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench -p scale0-core --bench decide

# The four Lambda packages terraform/examples/* deploy, target/lambda/scale0-<function>.zip
# (`bootstrap` at the root): a release build, stripped (profile `lambda`), then zipped.
# For arm64 functions: make lambda-zips LAMBDA_TARGET=aarch64-unknown-linux-gnu (that
# target installed, with a linker for it) and architecture = "arm64" in Terraform.
LAMBDA_TARGET ?=
LAMBDA_BINS := scale0-scaler scale0-scheduler scale0-lifecycle scale0-budget
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

lambda-zips:
	$(CARGO) build --profile lambda -p scale0-functions $(addprefix --bin ,$(LAMBDA_BINS)) $(if $(LAMBDA_TARGET),--target $(LAMBDA_TARGET))
	$(CARGO) run -q -p scale0 -- package-lambdas --bin-dir $(TARGET_DIR)/$(if $(LAMBDA_TARGET),$(LAMBDA_TARGET)/)lambda --out $(TARGET_DIR)/lambda

lambdas: lambda-zips
