# The README's commands: `make demo` (a simulated market through the local
# stack, then a report), `make serve` (the local stack) and `make test`.
# Each creates its environment on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
SAM_VENV ?= .venv-sam

.PHONY: demo serve test bench lint clean dashboard chromium

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade 'pip<26.3'  # chalice 1.34 declares pip<26.3
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $@

# aws-sam-cli pins its own boto3 and click, so it lives in its own environment.
$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q --upgrade pip
	$(SAM_VENV)/bin/pip install -q -r requirements-sam.txt
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/nurture demo $(ARGS)

serve: $(VENV)/.installed
	$(VENV)/bin/nurture serve $(ARGS)

# The browser SDKs real websites run (npm, exact versions from the lockfile)
# and Debian's Chromium to run them in: the browser tests load both.
BROWSER_DEPS = tests/browser/node_modules/.installed
$(BROWSER_DEPS): tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --silent
	touch $@

chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: $(VENV)/.installed $(SAM_VENV)/.installed $(BROWSER_DEPS) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	NURTURE_SAM=$(abspath $(SAM_VENV))/bin/sam $(VENV)/bin/pytest $(ARGS)

bench: $(VENV)/.installed
	$(VENV)/bin/python bench/ingest.py $(ARGS)

# After adding a function, a dead-letter queue or a track: regenerates the
# dashboard body (infra/dashboards/) and the alarms block of template.yaml.
dashboard: $(VENV)/.installed
	$(VENV)/bin/nurture dashboard

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache tests/browser/node_modules
