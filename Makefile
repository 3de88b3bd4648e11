# `make run` starts the registry in the foreground, `make test` runs lint and the test suite.
# Both create .venv and install requirements.txt first (again whenever requirements.txt changes).

PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
# Touched after a successful install; requirements.txt newer than it means "install again".
STAMP := $(VENV)/.requirements-installed
# Four test processes on two cores: many tests wait on servers, buildah or skopeo they started,
# and the extra processes use that idle time (the embedded run took 988 s with 3, and 901 s and
# 1,018 s in two runs with 4, where the sum of the test times was 3,206 s; the PostgreSQL run
# without the browser tests 721 s with 4).
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?=
BENCH_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench

help:
	@echo "make run    start the registry on http://$${HOST:-127.0.0.1}:$${PORT:-8000} (Ctrl-C stops)"
	@echo "make test   lint, then the test suite (PYTEST_ARGS='...' passes options to pytest)"
	@echo "make lint   ruff and the missing-migrations check"
	@echo "make bench  benchmark against Distribution and nginx (BENCH_ARGS='--smoke' for a quick run)"
	@echo "make venv   create .venv and install requirements.txt"

venv: $(STAMP)

$(VPY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "error: Python 3.11 or newer is needed; '$(PYTHON)' is: $$($(PYTHON) --version 2>&1)" >&2; \
		echo "       pass another interpreter with: make PYTHON=python3.12 ..." >&2; exit 1; }
	@echo "Creating $(VENV) with $$($(PYTHON) --version)"
	@# A failed `venv` leaves a half-made directory behind that would look valid next time.
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
		echo "error: '$(PYTHON) -m venv' failed. On Debian/Ubuntu install the venv module first:" >&2; \
		echo "       sudo apt-get install python3-venv   (or python3.X-venv for your version)" >&2; exit 1; }

$(STAMP): requirements.txt | $(VPY)
	$(VPY) -m pip install --disable-pip-version-check -q -r requirements.txt
	@touch $@

run: venv
	$(VPY) manage.py migrate --noinput
	$(VPY) manage.py collectstatic --noinput -v0
	@# exec: the server replaces the shell, so Ctrl-C and SIGTERM reach it directly.
	exec $(VPY) manage.py serve

lint: venv
	$(VENV)/bin/ruff check .
	$(VPY) manage.py makemigrations --check --dry-run

# pytest's own exit code is make's: any failure, or "no tests collected" (5), fails the target.
test: lint
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: venv
	$(VPY) -m bench $(BENCH_ARGS)
