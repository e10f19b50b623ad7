# Two commands: `make demo` and `make test`. Each sets up .venv on a fresh machine
# (torch==2.13.0 first, then the package and its extras) and skips what is already there.
# pip installs --no-compile: Python compiles each module the first time it is imported, so the
# thousands of modules never imported (most of transformers) cost nothing.
# `make test` runs `make lint` (ruff over the whole tree), then the tests (the 15 slowest named at
# the end) with `make wheel-test` (the built wheel in a fresh venv) beside them: the wheel test is
# mostly pip and file copies, and training in the tests uses one core (train.threads), so the two
# share the machine well. Its log is printed after the tests; either failing fails `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
DEMO_OUT ?= stillmotion-demo

.PHONY: demo test lint wheel-test resume-stress gpu-test gpu-bench install clean

demo: $(VENV)/.installed
	$(BIN)/stillmotion demo --out $(DEMO_OUT)

test: $(VENV)/.installed
	$(MAKE) lint
	mkdir -p build
	$(BIN)/python tools/wheel_test.py > build/wheel-test.log 2>&1 & wheel=$$!; \
	$(BIN)/python -m pytest -q --durations=15; tests=$$?; \
	wait $$wheel; built=$$?; \
	echo "--- the wheel test (ran beside the tests; log: build/wheel-test.log)"; cat build/wheel-test.log; \
	[ $$tests -eq 0 ] && [ $$built -eq 0 ]

# ruff, with the rules chosen in pyproject.toml ([tool.ruff.lint]), over source, tests, bench and tools
lint: $(VENV)/.installed
	$(BIN)/ruff check .

# The package as a user gets it: a wheel installed into a fresh venv that already has torch
# (which must stay), then the installed `stillmotion configs list` and `stillmotion demo`.
wheel-test: $(VENV)/.installed
	$(BIN)/python tools/wheel_test.py

# Not in CI (minutes): kills training and extraction at 20 random points each under CPU load and
# checks that every resumed run equals an uninterrupted one (prints resume_identical=K/N)
resume-stress: $(VENV)/.installed
	$(BIN)/python tools/resume_stress.py

gpu-test: $(VENV)/.installed
	$(BIN)/python -m pytest -q -m cuda

gpu-bench: $(VENV)/.installed
	$(BIN)/python bench/gpu.py

install: $(VENV)/.installed

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.torch: | $(BIN)/python
	$(PIP) install --no-compile torch==2.13.0
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml constraints.txt
	$(PIP) install --no-compile -c constraints.txt -e '.[dev]'
	$(BIN)/python tools/check_env.py
	touch $@

clean:
	rm -rf $(VENV) $(DEMO_OUT) build dist src/*.egg-info .pytest_cache
