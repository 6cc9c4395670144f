# The only set-up a newcomer needs:  `make lab`  (tutorials in JupyterLab)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stackit-nb-installed

export HAYSTACK_TELEMETRY_ENABLED := False

.PHONY: lab test lint install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "stackit_nb needs Python >= 3.11" or 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dev]"
	touch $(STAMP)

install: $(STAMP)

## JupyterLab on notebooks/, bound to 127.0.0.1; a local server is started when STACKIT_API_KEY is unset.
lab: $(STAMP)
	$(BIN)/stackit-nb lab

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## Every test: lint, unit and integration (real HTTP to the local server), notebooks.
test: lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache artifacts
