# Two commands matter: `make start` (the whole stack in Docker) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATABASE_URL ?= postgresql://postgres:postgres@localhost:5432/taskservice
AMQP_URL ?= amqp://guest:guest@localhost:5672/
export DATABASE_URL AMQP_URL

# dbmate's driver asks for TLS unless told otherwise; local PostgreSQL has none.
DBMATE_URL := $(if $(findstring sslmode=,$(DATABASE_URL)),$(DATABASE_URL),$(DATABASE_URL)$(if $(findstring ?,$(DATABASE_URL)),&,?)sslmode=disable)
DBMATE := $(BIN)/dbmate --url "$(DBMATE_URL)" --migrations-dir db/migrations --no-dump-schema

.PHONY: venv install migrations start stop run test lint bench clean

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

migrations: install
	$(DBMATE) up

start:
	docker compose up -d --build

stop:
	docker compose down

run: migrations
	$(BIN)/taskservice run

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check taskservice tests bench

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output *.egg-info
