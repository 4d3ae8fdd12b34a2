# clonekit: `make test` installs, starts the real services and runs the whole suite.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHON := $(abspath $(PY))
export CLONEKIT_SERVICES_DIR ?= /var/tmp/clonekit-services
PYTEST_WORKERS ?= 2

.PHONY: install services images test lint bench demo clean

$(VENV)/.installed: setup.cfg pyproject.toml setup.py clonekit/_speedups.c
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

install: $(VENV)/.installed ## a .venv with the package and the test extras

services: install ## install when missing, then start Docker, MariaDB, S3 (moto and Ceph RGW), sshd; build test images
	./scripts/services.sh
	./scripts/images.sh

test: install services ## the whole suite against real services
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check clonekit tests scripts
	$(VENV)/bin/mypy

bench: install services ## ratios against mysqldump, mydumper, restic, rsync, awscli (on moto and on Ceph RGW)
	$(PY) -m benchmarks.run $(BENCH_ARGS)

demo: install services ## clone the WordPress production fixture into a preview
	./scripts/demo.sh

clean: ## remove previews, the demo production and local state
	-$(PY) -m clonekit -c demo/clonekit.yml destroy --all --yes 2>/dev/null
	-./scripts/wordpress-prod.sh down 2>/dev/null
	rm -rf $(VENV) .clonekit demo/.clonekit .pytest_cache .mypy_cache .ruff_cache
