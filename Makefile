# The README's commands: `make demo` (a simulated market through the local
# stack, then a report), `make serve` (the local stack) and `make test`.
# Each creates its environment on first use from a lock: exact versions, every
# file checked against its hash (requirements/README.md; `make lock` regenerates them).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
SAM_VENV ?= .venv-sam
LOCK_VENV ?= .venv-lock

.PHONY: demo serve test bench lint clean dashboard chromium lock layout

# A lock is a whole dependency closure, so pip installs exactly its lines
# (--no-deps: the pip that comes with Python 3.11 also refuses a hash-pinned
# package another one asks for with extras, as aws-sam-cli does boto3-stubs[...])
# and `pip check` then proves nothing is missing.
#
# .venv comes in two sizes: what the local stack and the demo run (the `local`
# extra: requirements/demo.txt) and, for the tests, the `dev` extra on top
# (requirements/dev.txt, the same versions and more). After the lock, the
# project itself, built with the locked setuptools.
define install_lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --require-hashes --no-deps -r $(1)
	$(VENV)/bin/pip install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/pip check
endef

$(VENV)/.demo: requirements/demo.txt pyproject.toml
	$(call install_lock,requirements/demo.txt)
	touch $@

$(VENV)/.dev: requirements/dev.txt pyproject.toml
	$(call install_lock,requirements/dev.txt)
	touch $@ $(VENV)/.demo

# aws-sam-cli pins its own boto3 and click, so it lives in its own environment.
$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/sam.txt
	$(SAM_VENV)/bin/pip check
	touch $@

demo: $(VENV)/.demo
	$(VENV)/bin/nurture demo $(ARGS)

serve: $(VENV)/.demo
	$(VENV)/bin/nurture serve $(ARGS)

# The browser SDKs real websites run (npm, exact versions from the lockfile)
# and Debian's Chromium to run them in: the browser tests load both.
BROWSER_DEPS = tests/browser/node_modules/.installed
$(BROWSER_DEPS): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --silent
	touch $@

# dynalite, a DynamoDB emulator whose conditional writes are atomic (npm, exact
# versions from the lockfile): the concurrency tests race the store's
# conditional writes on it, since moto loses concurrent updates.
CONCURRENCY_DEPS = tests/concurrency/node_modules/.installed
$(CONCURRENCY_DEPS): tests/concurrency/package-lock.json
	npm ci --prefix tests/concurrency --no-audit --no-fund --silent
	touch $@

chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.dev $(SAM_VENV)/.installed $(BROWSER_DEPS) $(CONCURRENCY_DEPS) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	NURTURE_SAM=$(abspath $(SAM_VENV))/bin/sam $(VENV)/bin/pytest $(ARGS)

bench: $(VENV)/.dev
	@$(VENV)/bin/python bench/ingest.py $(ARGS)

# After changing a model of nurture/store/schema.py: regenerates the plain
# layout the ingest hot path reads (nurture/store/layout.py).
layout: $(VENV)/.dev
	$(VENV)/bin/python -c "from nurture.store.schema import render_layout; print(render_layout(), end='')" \
	  > layers/nurture/nurture/store/layout.py
	$(VENV)/bin/ruff format -q layers/nurture/nurture/store/layout.py

# After adding a function, a dead-letter queue or a track: regenerates the
# dashboard body (infra/dashboards/) and the alarms block of template.yaml.
dashboard: $(VENV)/.demo
	$(VENV)/bin/nurture dashboard

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Regenerates every lock from its inputs (pyproject.toml, requirements/*.in),
# keeping what is already locked wherever the inputs allow it:
#   make lock                                        after changing a dependency
#   make lock LOCK_ARGS="--upgrade-package boto3"    one package to its newest release
#   make lock LOCK_ARGS=--upgrade                    everything
# For Python 3.11 on any platform (--universal). The development lock, the
# widest, is resolved first; the demo's and the layer's take its versions.
UV_COMPILE = $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command 'make lock' $(LOCK_ARGS)

lock: $(LOCK_VENV)/.installed
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra dev -o requirements/dev.txt
	$(UV_COMPILE) pyproject.toml requirements/build.in --extra local -c requirements/dev.txt -o requirements/demo.txt
	$(UV_COMPILE) requirements/layer.in -c requirements/dev.txt -o layers/nurture/requirements.txt \
	  --no-emit-package botocore --no-emit-package python-dateutil --no-emit-package six --no-emit-package urllib3
	$(UV_COMPILE) requirements/sam.in -o requirements/sam.txt
	$(UV_COMPILE) requirements/uv.in -o requirements/uv.txt

# The lock tool, uv, at the version requirements/uv.in pins.
$(LOCK_VENV)/.installed: requirements/uv.txt
	test -x $(LOCK_VENV)/bin/python || $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/uv.txt
	touch $@

clean:
	rm -rf $(VENV) $(SAM_VENV) $(LOCK_VENV) .aws-sam .pytest_cache tests/browser/node_modules \
	  tests/concurrency/node_modules
