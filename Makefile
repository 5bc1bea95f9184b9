# LoopSync. `make run` serves the app with no services; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint format bench worker beat clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11 is needed (python3.11 on the PATH)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# Development server on http://127.0.0.1:8000: SQLite under var/, tasks in-process, email to the console.
run: install
	mkdir -p var
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py local_admin
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py runserver 127.0.0.1:8000

test: install
	DEBUG=$${DEBUG:-true} $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/emails.py $(EMAIL_BENCH_ARGS)

# Against Redis: CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (and DATABASE_URL) in the environment or .env.
worker: install
	$(BIN)/celery -A loopsync worker --loglevel=INFO

beat: install
	$(BIN)/celery -A loopsync beat --loglevel=INFO --schedule var/celerybeat-schedule

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache staticfiles
