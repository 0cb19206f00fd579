# make demo — quick-start on embedded data (CPU, a few minutes)
# make test — the test suite
# make docs — the documentation (docs/_build/html), warnings as errors
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test test-learning lint bench gpu-check docs clean

# -qq for ssad itself: errors only. setuptools prints a notice on every editable install that maps a folder into
# the package (conf/ -> ssad.conf); it reads like a problem to a newcomer and is not one.
$(BIN)/ssad-train: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77"
	$(BIN)/pip install -qq -e ".[dev,onnx]"
	touch $@

setup: $(BIN)/ssad-train

demo: setup
	$(BIN)/python -m ssad.demo

test: setup
	$(BIN)/python -m pytest

# the quick-start preset learns on a real labelled set (the embedded Fashion-MNIST subset, class-split command; ~5 min)
test-learning: setup
	$(BIN)/python -m pytest -m learning

lint: setup
	$(BIN)/ruff check ssad tests tools

bench: setup
	$(BIN)/python -m ssad.bench

# every GPU figure in one call (issue 38, docs/howto/gpu-check.md): the gpu preset within 8 minutes on a GPU, the
# tiny one on a CPU. No setup: on the GPU machine the checkout runs uninstalled with carried wheels (python3).
GPU_CHECK_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON))
GPU_CHECK_OUT ?= gpu_check.json
gpu-check:
	$(GPU_CHECK_PYTHON) -m ssad.bench.gpu.check --out $(GPU_CHECK_OUT)

# the docs extra (Sphinx, MyST, furo) into .venv; -W: a broken link, a page outside the toctree or a module autodoc
# cannot import fails the build
$(BIN)/sphinx-build: pyproject.toml | $(BIN)/ssad-train
	$(BIN)/pip install -qq -e ".[docs]"
	touch $@

docs: $(BIN)/sphinx-build
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html

clean:
	rm -rf outputs multirun .pytest_cache docs/_build
