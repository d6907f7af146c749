# The two commands a fresh machine needs: `make demo` (the default study) and `make test`.
# Both create the pinned environment in .venv first (requirements.lock), once.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo reproduce-mnist1d test test-unit plan dry-run report pull status bench gpu-check ui docs clean-results lock help slurm-up slurm-down test-slurm

help:
	@echo "make demo    run the default study (params.yaml) end to end"
	@echo "make test    run the test suite"
	@echo "make reproduce-mnist1d  the MNIST-1D benchmark table (studies/mnist1d-benchmark.yaml) against its published numbers"
	@echo "make plan    print the default study's run table"
	@echo "make report  rebuild the default study's fits, exchange rates, tables and figures (no training)"
	@echo "make pull    dvc pull the results, then put their mtimes in pipeline order (nothing reruns)"
	@echo "make status  the study's runs by state, current steps and an ETA, refreshed (STUDY=params.yaml)"
	@echo "make ui      the MLflow UI over a study's runs on 127.0.0.1 (STUDY=params.yaml; after snakemake track)"
	@echo "make bench   throughput benchmarks against baselines (a table + results/bench/bench.parquet)"
	@echo "make gpu-check  acceptance check of the CUDA path, < 10 min on a GPU (a table + results/gpu-check/gpu-check.parquet;"
	@echo "                without CUDA a reduced CPU form); exits 1 naming the failed parts"
	@echo "make docs    rewrite the generated parts of docs/ (study keys, Parquet schemas) from the code"
	@echo "make setup   only create the pinned environment in .venv"
	@echo "make slurm-up    (root, Debian 12) install and start the one-node SLURM test cluster; slurm-down stops it"
	@echo "make test-slurm  the SLURM tests on that cluster"

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/dataworth validate params.yaml
	$(BIN)/snakemake --cores $${CORES:-2}
	$(BIN)/dataworth plan params.yaml --no-timing | grep "^study "

# The MNIST-1D benchmark (Greydanus & Bau 2024) in full: 12 runs on a CPU, then the report's
# "Published vs reproduced" table (results/mnist1d-benchmark/report/report.md).
reproduce-mnist1d: $(STAMP)
	$(BIN)/dataworth validate studies/mnist1d-benchmark.yaml
	$(BIN)/snakemake --cores $${CORES:-2} --configfile studies/mnist1d-benchmark.yaml
	sed -n '/^## Published vs reproduced/,/^Verdicts/p' results/mnist1d-benchmark/report/report.md

# Two workers: the SLURM, MLflow and DVC tests spend much of their time waiting (scheduler timers,
# servers), which the other worker fills; the SLURM tests stay together on one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -m "not integration" $(PYTEST_ARGS)

plan: $(STAMP)
	$(BIN)/dataworth plan params.yaml

dry-run: $(STAMP)
	$(BIN)/snakemake -n

# Rebuilds the report from metrics.parquet, e.g. after `dvc pull`, and never trains: the pulled
# files' mtimes are first put back in pipeline order (DVC does not keep them). The target comes
# first: --forcerun takes every name after it, so `--forcerun report report` left no target.
report: $(STAMP)
	$(BIN)/dataworth restore-mtimes params.yaml
	$(BIN)/snakemake report --cores 1 --forcerun report

# A second user's checkout: the results from the DVC remote, their mtimes in pipeline order, so
# Snakemake sees them as up to date (STUDY=studies/x.yaml for another study).
pull: $(STAMP)
	$(BIN)/dvc pull
	$(BIN)/dataworth restore-mtimes $${STUDY:-params.yaml}

# The study at a glance from its results folder (runs by state, current steps, an ETA); refreshed.
status: $(STAMP)
	$(BIN)/dataworth status $${STUDY:-params.yaml} --watch

# Serves the study's own MLflow store (results/<study>/mlflow.db, filled by `snakemake track`)
# on 127.0.0.1 only, and prints the address.
ui: $(STAMP)
	$(BIN)/dataworth ui $${STUDY:-params.yaml}

bench: $(STAMP)
	$(BIN)/dataworth bench

# Does the CUDA path work here, and how fast is it (docs/gpu-check.md)? Exit status 1 names every
# failed part; without CUDA the same parts run reduced on the CPU and say so.
gpu-check: $(STAMP)
	$(BIN)/python scripts/gpu-check $(GPU_CHECK_ARGS)

# The study-key tables and Parquet schemas in docs/ are generated from the code (dataworth/docs.py);
# tests/test_docs.py fails while they are stale.
docs: $(STAMP)
	$(BIN)/python -m dataworth.docs

# Re-pin: install the ranges of pyproject.toml into a scratch venv and freeze it.
lock:
	rm -rf /tmp/dataworth-lock && $(PYTHON) -m venv /tmp/dataworth-lock
	/tmp/dataworth-lock/bin/pip install --quiet torch==2.13.0 -e . pytest pytest-xdist
	/tmp/dataworth-lock/bin/pip freeze | grep -v -i '^-e\|^dataworth' | sed 's/+cpu$$//' > requirements.lock

clean-results:
	rm -rf results .snakemake

# The one-node SLURM cluster the SLURM tests run on (scripts/slurm/; root on Debian 12): it
# installs slurm-wlm, slurmdbd, munge and mariadb-server when missing. Idempotent.
slurm-up:
	scripts/slurm/start.sh

slurm-down:
	scripts/slurm/stop.sh

test-slurm: $(STAMP) slurm-up
	$(BIN)/python -m pytest tests/test_slurm.py tests/test_slurm_resources.py $(PYTEST_ARGS)
