# The two commands the README promises: `make demo` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.errclass-installed
# Two pytest-xdist workers: the suite mostly waits on real servers, so two cores
# run it in about half the time. Each worker is its own process (own registry,
# own servers on free ports). `make pytest PYTEST_ARGS=` runs it in one process.
# Tests marked `exclusive` (a load test that needs the CPU to itself) run after,
# alone.
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint typecheck pytest coverage bench render tools clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade 'pip>=25.1'
	$(PY) -m pip install -q -e . --group dev
	@touch $(STAMP)

# promtool and a Prometheus server come from Debian's prometheus package; real dashboards
# and alert rules for the migrate tests from ceph-grafana-dashboards / ceph-prometheus-alerts;
# the demo's screenshot and its test use Debian's chromium (with a font to draw the text).
CEPH_FILES := /etc/grafana/dashboards/ceph-dashboard /etc/prometheus/ceph/ceph_default_alerts.yml
tools:
	@missing=""; \
	{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || missing="prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium fonts-dejavu-core"; \
	for f in $(CEPH_FILES); do [ -e $$f ] || missing="$$missing ceph-grafana-dashboards ceph-prometheus-alerts"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	    echo "installing Debian packages: $$pkgs"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	  else \
	    echo "missing ($$missing) and not root: the tests that need them will skip"; \
	  fi; \
	fi

# The seed's incident on loopback with a real Prometheus; writes build/demo/report.html
# and regenerates the README's screenshot docs/demo.png.
demo: $(STAMP) tools
	$(PY) -m errclass demo --out build/demo --screenshot docs/demo.png

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) tools
	$(PY) -m pytest $(PYTEST_ARGS) -m 'not exclusive'
	$(PY) -m pytest -m exclusive

test: lint typecheck pytest

# Not part of `make test`: the suite under coverage.py, subprocesses included (the
# servers, gRPC, the CLI; see [tool.coverage.run]). One data file per process; the
# report is printed even when a test fails, and the target then still fails.
coverage: $(STAMP) tools
	rm -f .coverage .coverage.*
	export COVERAGE_FILE=$(CURDIR)/.coverage; \
	  $(PY) -m coverage run -m pytest $(PYTEST_ARGS) -m 'not exclusive'; status=$$?; \
	  $(PY) -m coverage run -m pytest -m exclusive || status=1; \
	  $(PY) -m coverage combine -q && $(PY) -m coverage report; exit $$status

bench: $(STAMP)
	$(PY) bench/run.py

render: $(STAMP)
	$(PY) -m errclass render --out .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.*
