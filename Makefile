# Two commands matter: `make start` (the whole stack in Docker) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make start` publishes PostgreSQL and RabbitMQ on these host ports (docker-compose.yml reads the
# same variables, as well as API_PORT and RABBITMQ_UI_PORT); `make run` and `make test` follow them.
POSTGRES_PORT ?= 5432
RABBITMQ_PORT ?= 5672
DATABASE_URL ?= postgresql://postgres:postgres@localhost:$(POSTGRES_PORT)/taskservice
AMQP_URL ?= amqp://guest:guest@localhost:$(RABBITMQ_PORT)/
TEST_DATABASE_URL ?= postgresql://postgres:postgres@localhost:$(POSTGRES_PORT)/postgres
TEST_AMQP_URL ?= $(AMQP_URL)
export POSTGRES_PORT RABBITMQ_PORT DATABASE_URL AMQP_URL TEST_DATABASE_URL TEST_AMQP_URL

# `make schema` migrates this scratch database from nothing and dumps it to db/schema.sql.
SCHEMA_DATABASE_URL ?= postgresql://postgres:postgres@localhost:$(POSTGRES_PORT)/taskservice_schema
# dbmate, run the one way the tests, bench and the compose migrate service run it.
MIGRATE := $(BIN)/taskservice migrate

.PHONY: venv install migrations schema start stop run test lint bench clean

venv: $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

migrations: install
	$(MIGRATE) up

# After adding a migration: db/schema.sql is what reviewers read, and a test keeps it equal
# to what the migrations produce. Needs pg_dump (PostgreSQL's client tools).
schema: install
	DATABASE_URL="$(SCHEMA_DATABASE_URL)" $(MIGRATE) drop
	DATABASE_URL="$(SCHEMA_DATABASE_URL)" $(MIGRATE) create
	DATABASE_URL="$(SCHEMA_DATABASE_URL)" $(MIGRATE) --dump-schema db/schema.sql up
	DATABASE_URL="$(SCHEMA_DATABASE_URL)" $(MIGRATE) drop

start:
	docker compose up -d --build

stop:
	docker compose down

run: migrations
	$(BIN)/taskservice run

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check taskservice tests bench examples

bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output *.egg-info build
