# Two commands on a fresh machine: `make run` and `make test`.
PYTHON := $(or $(PYTHON),$(shell for p in python3 python3.11 python3.12 python3.13; do $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done))
VENV ?= .venv
BIN = $(VENV)/bin
PYTEST_ARGS ?= tests

.PHONY: run test lint install bench fuzz clean

$(BIN)/punchpass: pyproject.toml
	@test -n "$(PYTHON)" || { echo "Punchpass needs Python 3.11 or newer"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/punchpass

## make run: dev certificates, SQLite migrated, demo program seeded, served on HOST:PORT with an embedded worker
run: install
	$(BIN)/punchpass dev-certs > /dev/null
	$(BIN)/punchpass db upgrade
	$(BIN)/punchpass seed-demo
	$(BIN)/punchpass serve

## make test: the whole suite (PostgreSQL/Redis when PUNCHPASS_TEST_DATABASE_URL/PUNCHPASS_TEST_REDIS_URL are set)
test: install
	$(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

## make lint: ruff with the rule set in pyproject.toml (pyflakes, pycodestyle errors, import order, bugbear)
lint: install
	$(BIN)/ruff check .

## make bench: the figures in docs/performance.md (needs PostgreSQL and Redis on loopback for latency/fanout)
bench: install
	$(BIN)/python -m bench.sign
	$(BIN)/python -m bench.apns
	$(BIN)/python -m bench.latency
	$(BIN)/python -m bench.fanout

## make fuzz: schemathesis over /openapi.json against a live server on a fresh PostgreSQL database (.ci/fuzz)
fuzz: install
	BIN=$(BIN) .ci/fuzz

clean:
	rm -rf $(VENV) instance *.egg-info
