# Two entry points: `make start` (install, then run the hub) and `make test`
# (install, then run the whole suite). Both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
export PORT

.PHONY: start test install install-test web bench check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

web/node_modules/.installed: web/package.json
	cd web && npm install --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed web/node_modules/.installed

install-test: install
	bash scripts/install-test-deps.sh

start: install
	$(BIN)/python -m components.storage migrate
	$(BIN)/crossbar start --cbdir .crossbar

check: install
	$(BIN)/crossbar check --cbdir .crossbar

test: install-test
	$(BIN)/python -m twisted.trial --jobs=2 tests

bench: install
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python bench/rpc_pubsub.py

clean:
	rm -rf $(VENV) web/node_modules _trial_temp*
