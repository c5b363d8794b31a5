# Two entry points: `make demo` sets everything up and trains the built-in default;
# `make test` sets everything up and runs the test suite.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.layerforge-installed

.PHONY: demo test test-all docs setup clean

demo: $(STAMP)
	$(VENV)/bin/layerforge train

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m "not gpu"

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# Without a GPU, put the CPU build of torch in place first; the range in
	@# pyproject.toml then accepts it instead of pulling a CUDA build.
	@if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PY) -c "import torch" 2>/dev/null; then \
		echo "no GPU found: installing the CPU build of torch"; \
		$(PY) -m pip install --quiet "torch==2.13.0"; \
	fi
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs site .pytest_cache
