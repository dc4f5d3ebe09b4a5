# Two entry points for users: `make demo` and `make test` (README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch unless an NVIDIA GPU is present (an unpinned torch pulls a multi-GB CUDA build).
TORCH  ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PROMPT ?= a rubber duck
# pytest processes for `make test`: a file's tests stay in one process (they share its fixtures)
TEST_WORKERS ?= 2

.PHONY: setup demo test test-fast tools clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

tools: tests/js/node_modules/.installed .venv-blender/.installed

# Blender as a Python module for the export tests (tests/clients): its own venv, because bpy pins
# numpy 1.x. bpy wheels exist for one Python version (3.11 for Blender 5.0); elsewhere the tests skip.
.venv-blender/.installed:
	$(PYTHON) -m venv .venv-blender
	.venv-blender/bin/pip install -q bpy==5.0.1 || echo "bpy could not be installed here: the Blender checks will skip"
	touch $@

tests/js/node_modules/.installed: tests/js/package.json tests/js/package-lock.json
	npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(BIN)/dreamer generate "$(PROMPT)"

test: setup tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: setup tools
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not slow"

clean:
	rm -rf $(VENV) .venv-blender tests/js/node_modules .cache test-artifacts
