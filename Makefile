# The two commands: `make run` and `make test`. Everything else is a helper for them.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Python may write bytecode (__pycache__, ignored by git) even where the environment says not
# to: every gateway, CLI and worker process a test starts would otherwise compile the package
# from source again (about 0.4 s each), and each pytest worker its rewritten test modules.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test install lint typecheck unit schemathesis bench-audit bench-ingest bench-restore bench-keyfiles bench-requests bench-shred bench-throttle bench-compression bench-pipe bench-s3-parts bench-smoke clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found: SSBG needs Python 3.11"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/ssbg serve

lint: $(STAMP)
	$(BIN)/ruff check ssbg tests bench
	$(BIN)/ruff format --check ssbg tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

# pytest-xdist workers for `make test`. Each worker has its own session fixtures (SQLite
# template, PostgreSQL template database, key store, moto server on a free port) under its own
# temporary directory; worksteal evens out the long tests (segments, gateways, CLI init).
# Three on two cores: much of the suite waits on gateway processes, moto and PostgreSQL (2,230
# tests: 365 s with three workers on a quiet VM).
PYTEST_WORKERS ?= 3

test: lint typecheck
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist worksteal

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# The web console in headless chromium (Debian's /usr/bin/chromium; apt-get installs it when
# missing and we are root); also refreshes the screenshots in docs/console/.
.PHONY: console-browser console-screenshots
console-browser: $(STAMP)
	$(BIN)/pytest tests/browser -n 0

# The browser tests again, writing their pictures of each page to docs/console/ (the README's).
console-screenshots: $(STAMP)
	SSBG_CONSOLE_SCREENSHOTS=$(CURDIR)/docs/console $(BIN)/pytest tests/browser -n 0

# The gateway against its own OpenAPI description (docs/development.md, "Contract run"): a fresh
# gateway, every schemathesis check but use_after_free, a fixed seed, ~2 minutes. Not part of
# `make test`; CI runs it after it.
SCHEMATHESIS_EXAMPLES ?= 10
SCHEMATHESIS_SEED ?= 1
schemathesis: $(STAMP)
	$(BIN)/python -m tests.contract.run_schemathesis --max-examples $(SCHEMATHESIS_EXAMPLES) --seed $(SCHEMATHESIS_SEED)

bench-audit: $(STAMP)
	$(BIN)/python bench/audit_bench.py

bench-ingest: $(STAMP)
	$(BIN)/python bench/ingest_bench.py

bench-restore: $(STAMP)
	$(BIN)/python bench/restore_bench.py

# 1 GiB of SQL dump and 1 GiB random, SSBG without and with zstd beside restic and zstd | age.
bench-compression: $(STAMP)
	$(BIN)/python bench/compression_bench.py

# `producer | ssbg backup -` and `| curl -T -`, 256 MiB and 5 GiB: MB/s, client and gateway peak RSS.
bench-pipe: $(STAMP)
	$(BIN)/python bench/pipe_bench.py

# Every benchmark once on tiny sizes, so none can rot: no figures, non-zero exit if one breaks.
# PostgreSQL parts run only when SSBG_TEST_POSTGRES_URL is set.
bench-keyfiles: $(STAMP)
	$(BIN)/python bench/key_files_bench.py

bench-requests: $(STAMP)
	$(BIN)/python bench/request_bench.py

bench-shred: $(STAMP)
	$(BIN)/python bench/shred_bench.py

bench-throttle: $(STAMP)
	$(BIN)/python bench/throttle_bench.py

bench-s3-parts: $(STAMP)
	$(BIN)/python bench/s3_parts_bench.py

bench-smoke: $(STAMP)
	$(BIN)/python bench/audit_bench.py --smoke
	$(BIN)/python bench/ingest_bench.py --smoke
	$(BIN)/python bench/restore_bench.py --smoke
	$(BIN)/python bench/key_files_bench.py --smoke
	$(BIN)/python bench/request_bench.py --smoke
	$(BIN)/python bench/shred_bench.py --smoke
	$(BIN)/python bench/throttle_bench.py --smoke
	$(BIN)/python bench/compression_bench.py --smoke
	$(BIN)/python bench/pipe_bench.py --smoke
	$(BIN)/python bench/s3_parts_bench.py --smoke

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The production shape on this machine, without containers (docs/operations.md, "A local
# cluster"): PostgreSQL, moto's S3 server, two `ssbg serve --workers 2` replicas and Caddy with
# TLS on loopback, under ./cluster-data/. cluster-check starts its own, loads it, kill -9s a
# replica and checks that nothing acknowledged was lost (docs/performance.md).
.PHONY: cluster cluster-stop cluster-check caddy
caddy:
	@command -v caddy >/dev/null 2>&1 || apt-get install -y caddy || { apt-get update && apt-get install -y caddy; }

cluster: $(STAMP) caddy
	$(BIN)/python bench/cluster.py start

cluster-stop: $(STAMP)
	$(BIN)/python bench/cluster.py stop

CLUSTER_CHECK_ARGS ?=
cluster-check: $(STAMP) caddy
	$(BIN)/python bench/cluster_check.py $(CLUSTER_CHECK_ARGS)
