# Two commands for a fresh machine: `make demo` (the service on an embedded emulated AWS, running real
# flytekit tasks) and `make test`.
#   make test   ruff, mypy --strict and the whole test suite (the README's test command; CI runs it)
#   make fast   ruff, mypy --strict and the unit tests (tests/unit, without `slow` tests): under a minute
# Both install first (a venv in .venv, pinned by requirements/constraints.txt).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/aws-array-plugin: pyproject.toml devtools/pyproject.toml plugins/flyte2/pyproject.toml requirements/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e ./devtools -e ./plugins/flyte2 -e ".[test]"
	touch $@

.PHONY: install demo test fast lint
install: $(BIN)/aws-array-plugin

demo: install
	$(BIN)/aws-array-plugin demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

fast: lint
	$(BIN)/pytest -q -m "not slow" tests/unit
