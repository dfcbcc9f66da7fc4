# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The GPU check runs on an existing Python (the GPU machine's own), the project from this tree.
GPU_PYTHON ?= python3
GPU_WHEELS := gpu-wheels
GPU_SITE   ?= /tmp/rascal-gpu-site

.PHONY: demo test install bench clean gpu-check gpu-wheels

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the package metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rascal demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/loss_bench.py

# Every GPU check in one go (gpu tests, demo, benchmarks; benchmarks/gpu_check.py says what);
# exits 0 at once without CUDA. Wheels carried in gpu-wheels/ are installed first, offline.
gpu-check:
	@if ls $(GPU_WHEELS)/*.whl >/dev/null 2>&1; then \
		$(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
			--target $(GPU_SITE) $(GPU_WHEELS)/*.whl; fi
	PYTHONPATH=$(GPU_SITE)$${PYTHONPATH:+:$$PYTHONPATH} $(GPU_PYTHON) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# What the GPU machine lacks, as Python 3.12 wheels for x86-64 Linux, for `make gpu-check`
# there (run here, where the package index is reachable; gpu-wheels/ is git-ignored).
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 -d $(GPU_WHEELS) umap-learn pynndescent faiss-cpu
	@du -sh $(GPU_WHEELS)

clean:
	rm -rf $(VENV) build *.egg-info
