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

test: services
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	$(CARGO) bench -p scale0-core --bench decide
