# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= all
PYTEST_ARGS ?=

.PHONY: run test install install-dev lint fmt typecheck openapi clean test-sqlite test-postgresql bench soak fuzz fuzz-sqlite fuzz-postgresql

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## run: install, migrate, make the demo company (its admin token is printed), serve on SQLite
## on PORT, else CRM_PORT, else 8000; once it answers, say how to call `crm`
RUN_PORT = $(or $(PORT),$(CRM_PORT),8000)
RUN_URL = http://127.0.0.1:$(RUN_PORT)
run: install
	$(BIN)/crm migrate
	@echo "Demo admin token (use as: Authorization: Bearer <token>):"
	@$(BIN)/crm demo
	@( n=0; \
	  until $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', $(RUN_PORT)), 1).close()" 2>/dev/null; do \
	    n=$$((n + 1)); [ $$n -lt 100 ] || exit 0; sleep 0.2; \
	  done; \
	  printf '%s\n' '' \
	    'crm-overview is serving on $(RUN_URL) (contract: $(RUN_URL)/docs); Ctrl-C stops it.' \
	    'The crm command is in the virtual environment: run $(BIN)/crm --help,' \
	    'or activate it first (. $(BIN)/activate) and run crm --help.' '' ) &
	@# A local secret key (made once, kept out of git) so that webhooks and accounting
	@# credentials can be stored; CRM_SECRET_KEY set in the environment wins.
	@test -s .crm-secret-key || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(32))" > .crm-secret-key
	CRM_SECRET_KEY="$${CRM_SECRET_KEY:-$$(cat .crm-secret-key)}" $(BIN)/crm serve --port $(RUN_PORT)

## test: the whole suite on SQLite and on PostgreSQL (DB=sqlite or DB=postgresql for one)
test: install-dev
ifeq ($(DB),all)
	$(MAKE) --no-print-directory test-sqlite test-postgresql
else
	$(MAKE) --no-print-directory test-$(DB)
endif

# Each run spreads its tests over WORKERS pytest-xdist processes (one per CPU; WORKERS=0: one
# process), each with a database of its own. Tests marked `slow` run in the PostgreSQL run only,
# unless SLOW=all (CI passes it: there every test runs on both databases).
WORKERS ?= auto
SLOW ?= postgresql
XDIST = -n $(WORKERS) --dist worksteal
SQLITE_SELECT = $(if $(filter all,$(SLOW)),,-m "not slow")

test-sqlite:
	CRM_TEST_DATABASE=sqlite $(BIN)/pytest $(XDIST) $(SQLITE_SELECT) $(PYTEST_ARGS)

test-postgresql:
	CRM_TEST_DATABASE=postgresql $(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy app
	$(BIN)/lint-imports

fmt: install-dev
	$(BIN)/ruff check --fix app tests bench
	$(BIN)/ruff format app tests bench

## openapi: regenerate the committed contract from the app
openapi: install
	$(BIN)/crm openapi > openapi/openapi.yaml

clean:
	rm -rf $(VENV) *.egg-info crm.db crm.db-*

## bench: seed (first time), serve with several workers, measure with wrk (installed from
## Debian's packages when missing); figures in bench/results/
bench: install-dev
	@command -v wrk >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO apt-get install -y -q wrk >/dev/null || \
	  { $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q wrk >/dev/null; }; }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## soak: mixed traffic at 64 clients for 60 s against several workers (SOAK_ARGS to change)
soak: install-dev
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

## fuzz: the contract fuzzing (per-operation and linked sequences) with many more examples
## (CRM_FUZZ_EXAMPLES per operation, default 200), on SQLite then PostgreSQL (DB= for one)
fuzz: install-dev
ifeq ($(DB),all)
	$(MAKE) --no-print-directory fuzz-sqlite fuzz-postgresql
else
	$(MAKE) --no-print-directory fuzz-$(DB)
endif

FUZZ = CRM_FUZZ_EXAMPLES=$${CRM_FUZZ_EXAMPLES:-200} $(BIN)/pytest $(XDIST) -p no:randomly tests/contract/test_schemathesis.py $(PYTEST_ARGS)

fuzz-sqlite:
	CRM_TEST_DATABASE=sqlite $(FUZZ)

fuzz-postgresql:
	CRM_TEST_DATABASE=postgresql $(FUZZ)
