# Two entry points: `make start` (install, then run the hub) and `make test`
# (install, then run the whole suite). Both are idempotent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: start test install install-test web bench check lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# every package pinned by the lock (constraints.txt); `make lock` re-resolves and tests a new one
$(VENV)/.installed: $(BIN)/python setup.cfg constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

web/node_modules/.installed: web/package.json
	cd web && npm install --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed web/node_modules/.installed

install-test: install
	bash scripts/install-test-deps.sh

# dev node: the local SNS/SQS emulator (guest worker "aws-emulator") on loopback, and the
# user sync provisioning its topic and queue on start; set AWS_ENDPOINT_URL= to use real AWS
AWS_EMULATOR_PORT ?= 4566
# (reactive-hub start: migrate, then crossbar start --cbdir .crossbar with AWS_ENDPOINT_URL defaulting to
# http://127.0.0.1:$AWS_EMULATOR_PORT and USERSYNC_PROVISION to on; components/cli/devnode.py)
start: install
	AWS_EMULATOR_PORT=$(AWS_EMULATOR_PORT) $(BIN)/reactive-hub start

# the settings against the registry and the node config (crossbar check)
check: install
	$(BIN)/reactive-hub check --cbdir .crossbar

test: install-test
	$(BIN)/python -m twisted.trial --jobs=2 tests

bench: install
	$(BIN)/pip install --quiet -c constraints.txt -e '.[bench]'
	$(BIN)/python bench/rpc_pubsub.py
	bash scripts/install-test-deps.sh
	$(BIN)/python bench/browser.py

lock:
	bash scripts/upgrade-lock.sh

clean:
	rm -rf $(VENV) .venv-lock web/node_modules _trial_temp*
