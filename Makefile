# Two commands for a fresh machine: `make demo` (the service on an embedded emulated AWS, running real
# flytekit tasks) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/aws-array-plugin: pyproject.toml requirements/constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -e ".[test]"
	touch $@

.PHONY: install demo test lint
install: $(BIN)/aws-array-plugin

demo: install
	$(BIN)/aws-array-plugin demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q
