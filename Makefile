# kvmpanel: two commands.
#   make run   set up everything and start the panel (prints the URL and login)
#   make test  set up everything and run every check and test
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
VAR := var

.PHONY: run test setup system-deps system-deps-test venv static messages lab redis lint check pytest bench clean

run: system-deps setup lab redis
	$(PY) manage.py migrate --noinput -v 0
	$(PY) manage.py bootstrap
	$(PY) scripts/run.py

test: system-deps-test setup lab redis lint check pytest

setup: venv static messages

system-deps:
	@bash scripts/install-system-deps.sh

system-deps-test:
	@bash scripts/install-system-deps.sh --test

# The venv is rebuilt only when the lock file changes.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.lock pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	@touch $@

static: static/vendor/.installed
static/vendor/.installed: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	bash scripts/vendor-static.sh
	@touch $@

messages: venv
	@$(PY) manage.py compilemessages -v 0 --ignore=.venv --ignore=node_modules
	@$(PY) manage.py collectstatic --noinput -v 0

# The lab hosts are the embedded hypervisor; with KVMPANEL_HOST_URI only the guest images are built
# (the demo VM boots the lab ISO on the real host).
lab:
	@if [ -n "$$KVMPANEL_HOST_URI" ]; then bash scripts/lab/lab.sh build; else bash scripts/lab/lab.sh up; fi

redis:
	@bash scripts/redis.sh start

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: venv
	$(PY) manage.py check
	$(PY) manage.py makemigrations --check --dry-run

pytest: venv
	$(VENV)/bin/pytest

bench: setup lab redis
	$(PY) bench/list_latency.py
	$(PY) bench/console_proxy.py
	$(PY) bench/jobs.py

clean:
	bash scripts/lab/lab.sh down || true
	bash scripts/redis.sh stop || true
	rm -rf $(VENV) node_modules static/vendor
