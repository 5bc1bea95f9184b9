# LoopSync. `make run` serves the app with no services; `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The official Loops JavaScript client that tests/loops_client runs against a live server (make test only).
LOOPS_CLIENT := tests/loops_client
LOOPS_CLIENT_STAMP := $(LOOPS_CLIENT)/node_modules/.installed

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

# npm installs the pinned client from package-lock.json. Without npm, the test that needs it is skipped
# (a failure under LOOPSYNC_REQUIRE_SERVICES=1, as in CI); `make run` never needs Node.
$(LOOPS_CLIENT_STAMP): $(LOOPS_CLIENT)/package.json $(LOOPS_CLIENT)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci --prefix $(LOOPS_CLIENT) --no-audit --no-fund"; \
		npm ci --prefix $(LOOPS_CLIENT) --no-audit --no-fund && touch $@; \
	else \
		echo "npm not found: the official Loops client test (tests/loops_client) needs Node.js 18+ and npm"; \
	fi

# loopsync/settings_test.py: DEBUG on unless set, a fast password hasher. `make test PYTEST_ARGS="-m 'not slow'"`
# leaves out the browser, client and schema-fuzzing tests while you work.
test: install $(LOOPS_CLIENT_STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# mypy imports the settings (django-stubs), which need DEBUG=true or production secrets: always DEBUG=true here.
lint: install
	$(BIN)/ruff check .
	DEBUG=true $(BIN)/mypy
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/run.py $(BENCH_ARGS)
	$(BIN)/python bench/emails.py $(EMAIL_BENCH_ARGS)
	$(BIN)/python bench/audience.py $(AUDIENCE_BENCH_ARGS)
	$(BIN)/python bench/contacts_csv.py $(CSV_BENCH_ARGS)

# Against Redis: CELERY_BROKER_URL=redis://127.0.0.1:6379/0 (and DATABASE_URL) in the environment or .env.
worker: install
	$(BIN)/celery -A loopsync worker --loglevel=INFO

beat: install
	$(BIN)/celery -A loopsync beat --loglevel=INFO --schedule var/celerybeat-schedule

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache staticfiles
