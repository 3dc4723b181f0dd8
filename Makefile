# Two commands do everything: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ARGS   ?=

.PHONY: demo test install bench fuzz clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/plantguard demo $(ARGS)

# The suite starts its own Mosquitto and PostgreSQL on free loopback ports;
# system-deps installs the Debian packages when they are missing (as root).
test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(ARGS)

system-deps:
	@bash scripts/system-deps.sh

# The peers measured next to plantguard (river) come with the "bench" extra.
bench: $(STAMP) system-deps
	$(BIN)/pip install --quiet -e ".[test,bench]"
	$(BIN)/python bench/run_all.py $(ARGS)

# Long runs of the fuzzers the suite samples: every parser of outside input with 25,000 cases each (over 100,000
# in all), and schemathesis against the API as every role (every phase, 200 examples per operation).
fuzz: $(STAMP)
	PLANTGUARD_FUZZ_EXAMPLES=25000 $(BIN)/python -m pytest -p no:cacheprovider tests/test_parser_fuzz.py $(ARGS)
	PLANTGUARD_SCHEMATHESIS_EXAMPLES=200 PLANTGUARD_SCHEMATHESIS_PHASES=examples,coverage,fuzzing,stateful PLANTGUARD_SCHEMATHESIS_ROLES=admin,engineer,operator,viewer \
	  $(BIN)/python -m pytest -p no:cacheprovider tests/test_api_schemathesis.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
