# The two commands the README promises: `make demo` and `make test`, on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.errclass-installed

.PHONY: demo test lint typecheck pytest bench render tools clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# promtool and a Prometheus server come from Debian's prometheus package; real dashboards
# and alert rules for the migrate tests from ceph-grafana-dashboards / ceph-prometheus-alerts.
CEPH_FILES := /etc/grafana/dashboards/ceph-dashboard /etc/prometheus/ceph/ceph_default_alerts.yml
tools:
	@missing=""; \
	command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || missing="prometheus"; \
	for f in $(CEPH_FILES); do [ -e $$f ] || missing="$$missing ceph-grafana-dashboards ceph-prometheus-alerts"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    pkgs=$$(echo $$missing | tr ' ' '\n' | sort -u | tr '\n' ' '); \
	    echo "installing Debian packages: $$pkgs"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null; \
	  else \
	    echo "missing and not root ($$missing): the tests that need them will skip"; \
	  fi; \
	fi

demo: $(STAMP)
	$(PY) -m errclass demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP) tools
	$(PY) -m pytest

test: lint typecheck pytest

bench: $(STAMP)
	$(PY) bench/run.py

render: $(STAMP)
	$(PY) -m errclass render --out .

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
