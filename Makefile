# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= all
PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: run test install install-dev lint fmt typecheck openapi clean test-sqlite test-postgresql bench soak fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

## run: install, migrate, make the demo company (its admin token is printed), serve on SQLite
run: install
	$(BIN)/crm migrate
	@echo "Demo admin token (use as: Authorization: Bearer <token>):"
	@$(BIN)/crm demo
	$(BIN)/crm serve --port $(PORT)

## test: the whole suite on SQLite and on PostgreSQL (DB=sqlite or DB=postgresql for one)
test: install-dev
ifeq ($(DB),all)
	$(MAKE) --no-print-directory test-sqlite test-postgresql
else
	$(MAKE) --no-print-directory test-$(DB)
endif

test-sqlite:
	CRM_TEST_DATABASE=sqlite $(BIN)/pytest $(PYTEST_ARGS)

test-postgresql:
	CRM_TEST_DATABASE=postgresql $(BIN)/pytest $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check app tests migrations bench
	$(BIN)/ruff format --check app tests migrations bench
	$(BIN)/mypy app

fmt: install-dev
	$(BIN)/ruff check --fix app tests migrations bench
	$(BIN)/ruff format app tests migrations bench

## openapi: regenerate the committed contract from the app
openapi: install
	$(BIN)/crm openapi > openapi/openapi.yaml

clean:
	rm -rf $(VENV) *.egg-info crm.db crm.db-*

## bench: seed (first time), serve with several workers, measure; figures in bench/results/
bench: install-dev
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## soak: mixed traffic at 64 clients for 60 s against several workers (SOAK_ARGS to change)
soak: install-dev
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

## fuzz: the contract fuzzing (per-operation and linked sequences) with many more examples
fuzz: install-dev
	CRM_FUZZ_EXAMPLES=$${CRM_FUZZ_EXAMPLES:-200} CRM_TEST_DATABASE=sqlite $(BIN)/pytest -p no:randomly tests/contract/test_schemathesis.py
	CRM_FUZZ_EXAMPLES=$${CRM_FUZZ_EXAMPLES:-200} CRM_TEST_DATABASE=postgresql $(BIN)/pytest -p no:randomly tests/contract/test_schemathesis.py
