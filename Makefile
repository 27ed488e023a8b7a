# Two entry points: `make test` (the whole suite) and `make demo` (the main job on built-in data).
# The heavy environment (torch, nnU-Net: ~6 GB) is built once per hash of the dependency lists and of the exact
# versions in constraints.txt, in a cache folder linked to .venv, so fresh clones and CI reuse it; the package
# itself is installed editable each time. Building a new environment removes the cache's older ones.
PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/nnunet-archs
ENV_HASH := $(shell { sed -n '/^dependencies/,/^]/p;/^test = /p' pyproject.toml; cat constraints.txt; } | sha256sum | cut -c1-16)
ENV_DIR := $(CACHE_DIR)/venv-$(ENV_HASH)
VENV := .venv
export OMP_NUM_THREADS ?= 2
# idle OpenMP threads sleep instead of spinning: two test workers (or the demo's trainings) share the two cores.
# Not for the benchmark, which runs alone: sleeping threads wake late for every small operation, which slowed
# UIU-Net's 2D step 1.6x and PlainConvUNet's 1.2x (BENCHMARKS.md section 1.0)
test demo: export OMP_WAIT_POLICY ?= PASSIVE
# pytest-xdist workers, one test module at a time each (module fixtures such as compare's study run once),
# modules with tests marked slow first. Measured on 2 cores (.ci/run on fresh clones, 2026-12-07): 2 workers 13.6
# min (809 s in pytest, 665 tests; 481 tests on 2026-12-03: 8.9-9.1 min), 3 workers 15.1 min on an earlier tree (the
# local study, the critical path, 426 s -> 632 s); 1 worker 32 min (older suite)
TEST_WORKERS ?= 2

.PHONY: test demo benchmark env clean
# `make` alone: the environment in .venv, ready to use (README: install)
.DEFAULT_GOAL := env

$(ENV_DIR)/.complete:
	rm -rf $(ENV_DIR)
	$(PYTHON) -m venv $(ENV_DIR)
	$(ENV_DIR)/bin/pip install --quiet --upgrade pip setuptools wheel
	$(ENV_DIR)/bin/pip install --quiet -c constraints.txt ".[test]"
	$(ENV_DIR)/bin/pip uninstall --quiet --yes nnunet-archs
	touch $@
	find $(CACHE_DIR) -maxdepth 1 -name 'venv-*' ! -path '$(ENV_DIR)' -exec rm -rf {} +

env: $(ENV_DIR)/.complete
	ln -sfn $(ENV_DIR) $(VENV)
	$(VENV)/bin/pip install --quiet --no-deps --no-build-isolation -e .

test: env
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

demo: env
	$(VENV)/bin/nnunet-archs demo --resume

benchmark: env
	$(VENV)/bin/python benchmarks/architectures.py
	$(VENV)/bin/python benchmarks/ki_floor.py

clean:
	rm -rf $(VENV) build *.egg-info
