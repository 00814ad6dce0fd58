VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run test lint bench clean browser

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(VENV)/bin/shulian init
	$(VENV)/bin/shulian demo
	SHULIAN_ENV=$${SHULIAN_ENV:-development} $(VENV)/bin/shulian serve --host 127.0.0.1 --port 8000

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint browser
	$(VENV)/bin/pytest -n 2

# The portal's browser tests drive Debian's chromium (never `playwright install`); they skip without it.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the portal's browser tests (apt-get)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: the portal's browser tests will skip"; \
	  else echo "no /usr/bin/chromium and not root to install it: the portal's browser tests will skip"; fi; }

bench: install
	$(PIP) install -q --no-deps merkletools
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var bench/out
