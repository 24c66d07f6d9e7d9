# LowRouter: `make run` serves the demo gateway, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_UPSTREAM_PORT ?= 8100

.PHONY: run test lint bench install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py catalog_sync
	$(PY) manage.py collectstatic --noinput -v0
	$(PY) manage.py demo_setup --base-url http://$(HOST):$(PORT) \
		--demo-upstream http://127.0.0.1:$(DEMO_UPSTREAM_PORT)/v1
	@trap 'kill $$UPSTREAM 2>/dev/null' EXIT INT TERM; \
	$(PY) manage.py demo_upstream --port $(DEMO_UPSTREAM_PORT) & UPSTREAM=$$!; \
	$(VENV)/bin/uvicorn lowrouter.asgi:application --host $(HOST) --port $(PORT) --no-access-log

test: $(STAMP)
	$(VENV)/bin/pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP)
	$(PY) bench/run.py --profile
