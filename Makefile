# The two commands of the quick start. Each creates or refreshes .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow validate bench clean

# Reinstall whenever the project's metadata changes.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# The default run: 3 refnode nodes, quorum replication, leader reads, register
# workload, partitions and kills, 30 seconds; ends with its verdict and run directory.
run: $(STAMP)
	$(BIN)/faultline run

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

# The planted-bug matrix (harness/campaigns/validate.toml): plain cases, tuned cases,
# etcd and Redis (about two and a half hours; etcd and Redis need root).
validate: $(STAMP)
	$(BIN)/faultline validate

bench: $(STAMP)
	$(BIN)/python bench/checkers_bench.py

clean:
	rm -rf $(VENV) build *.egg-info
