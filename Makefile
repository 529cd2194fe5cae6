# scale0 — the two commands:
#   make demo   the whole control plane on this machine, with a scripted story
#   make test   every test, against real RabbitMQ and Redis (started if needed)
CARGO ?= cargo

.PHONY: demo test test-long services lint bench build

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
