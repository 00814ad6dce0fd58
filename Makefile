VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install run test lint bench clean browser faketime

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

test: lint browser faketime
	$(VENV)/bin/pytest -n 2

# The portal's browser tests drive Debian's chromium (never `playwright install`); they skip without it.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing chromium for the portal's browser tests (apt-get)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: the portal's browser tests will skip"; \
	  else echo "no /usr/bin/chromium and not root to install it: the portal's browser tests will skip"; fi; }

# The clock-skew fault test shifts a replica's clock with Debian's libfaketime; it skips without it.
faketime:
	@ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing faketime for the clock-skew fault test (apt-get)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null; } \
	      || echo "could not install faketime: the clock-skew fault test will skip"; \
	  else echo "no libfaketime and not root to install it: the clock-skew fault test will skip"; fi; }

bench: install
	$(PIP) install -q --no-deps merkletools
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) var bench/out
