# Two entry points (see README): `make demo` and `make test`. Both create or reuse
# the virtual env in .venv and install what is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.install-stamp
export MUJOCO_GL ?= egl
export PYTHONHASHSEED := 0

.PHONY: demo test test-avx2 bench install clean

$(STAMP): pyproject.toml plugins/bfm-gym-sb3/pyproject.toml plugins/bfm-gym-cem/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU wheel of torch 2.13.0 lies on this machine's disk; install it first so
	# pyproject's torch range is satisfied without pulling a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,sb3]"
	# The plugin packages of plugins/ (their tests run in the main suite).
	$(PY) -m pip install -q -e plugins/bfm-gym-sb3 -e plugins/bfm-gym-cem
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/03_adapt_shipped_maze.py --out runs/demo

test: $(STAMP)
	$(PY) -m ruff check bfm_gym tests plugins examples benchmarks
	# -n auto: one pytest-xdist worker per core (the tests are independent; each worker
	# keeps torch at one thread, see tests/conftest.py).
	$(PY) -m pytest -q -n auto

# The suite as an AVX2-only CPU runs it: torch's kernels held to AVX2, so amp="auto" picks
# fp32 (the FB numerics tests still run with bf16 forced, emulated, as well as fp32).
test-avx2:
	ATEN_CPU_CAPABILITY=avx2 $(MAKE) test

bench: $(STAMP)
	$(PY) benchmarks/env_throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
