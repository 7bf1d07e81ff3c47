# rnnlab: `make repro` builds the pipeline, `make test` runs the tests.
# Both create .venv and install the pinned dependencies first, when needed.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Stage commands call `python`: the venv's.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export DVC_NO_ANALYTICS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
MLFLOW_PORT ?= 5000

# The example sweep of `make sweep` (README, Sweeps): 9 quick jobs, a few minutes on CPU.
SWEEP ?= experiment=imdb_lstm profile=quick model.dropout=0.0,0.2,0.5 regularizer=none,l2,l1l2

.PHONY: repro test test-slow test-all test-deps sweep mlflow-ui lock clean-outputs

repro: $(STAMP)
	$(BIN)/dvc repro

# The fast suite: every unit and in-process test, the tests' own process training on JAX.
test: $(STAMP) test-deps
	$(BIN)/python -m pytest -m "not slow"

# The end-to-end tests (marked slow): `dvc repro` in a copy of the project, sweeps, kills and
# server outages, every experiment on TensorFlow, two virtual devices. CI runs both suites.
test-slow: $(STAMP) test-deps
	$(BIN)/python -m pytest -m slow

test-all: test test-slow

# Headless Chromium for the test of the MLflow UI (tests/test_sweeps.py): installed with
# apt-get when running as root, once; otherwise that test skips and says why.
test-deps:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "note: chromium is not installed; the MLflow UI test will skip"

# A Hydra sweep, one MLflow parent run with a child per job, then its leaderboard in
# reports/leaderboards/, also when a job failed (the exit status still says so).
# Another grid: make sweep SWEEP="experiment=imdb_lstm model.units=32,64".
sweep: $(STAMP)
	$(BIN)/python -m rnnlab.train -m $(SWEEP); status=$$?; \
		$(BIN)/python -m rnnlab.compare $(filter experiment=%,$(SWEEP)) && exit $$status

# Serves the project's MLflow store (sqlite:///mlruns.db) on 127.0.0.1 and prints the link
# to the latest experiment's runs (src/rnnlab/ui.py).
mlflow-ui: $(STAMP)
	$(BIN)/python -m rnnlab.ui --port $(MLFLOW_PORT)

# The venv is rebuilt when the lock or the project's metadata change.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or run make PYTHON=python3"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# Re-pin after changing pyproject.toml's dependencies (a fresh venv resolves them).
lock:
	rm -rf /tmp/rnnlab-lock-venv && $(PYTHON) -m venv /tmp/rnnlab-lock-venv
	/tmp/rnnlab-lock-venv/bin/pip install --quiet -e ".[dev,jax]"
	/tmp/rnnlab-lock-venv/bin/pip freeze --exclude-editable | grep -v '^rnnlab' > requirements.lock
