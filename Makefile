# medsweep — the two Quickstart commands, each doing its own set-up.
#   make sweep   create/reuse .venv, install, run the bccd_imbalance sweep
#   make test    create/reuse .venv, install, run the whole test suite (what CI runs)
#   make test-fast  the tests not marked e2e (no sweeps through Ray Tune), for the edit loop
#   make test-cluster  the launch paths run for real (Slurm, ray up over SSH, Kubernetes manifests):
#                installs Debian's slurm/munge/openssh-server, needs root; what CI runs after make test
#   make lint    ruff check
#   make report EXP=runs/<experiment>   analyse a sweep and write its report
# Pass extra sweep arguments with ARGS, e.g.  make sweep ARGS="--smoke"

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# Data: $MEDSWEEP_DATA_DIR if set, else ../shared/data when it exists, else the user cache
# (downloaded once and verified on a machine with internet).
DATA_ENV = $(if $(MEDSWEEP_DATA_DIR),MEDSWEEP_DATA_DIR=$(MEDSWEEP_DATA_DIR),$(if $(wildcard ../shared/data/BCCD_Dataset),MEDSWEEP_DATA_DIR=$(abspath ../shared/data),))

.PHONY: install sweep test test-fast test-cluster lint check-data report clean

$(BIN)/.medsweep-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	# viz: tensorboard and optuna-dashboard; the tests read TensorBoard event files with tensorboard.
	$(BIN)/python -m pip install -e '.[dev,viz]'
	# W&B's sweep-config JSON schema, for the export test only: its package is not installed
	# (its top-level module is also called `sweeps`), just kept as a wheel to read the schema from.
	$(BIN)/python -m pip download --no-deps --only-binary=:all: -q -d $(VENV)/share/wandb-sweeps 'sweeps==0.3.0'
	touch $@

install: $(BIN)/.medsweep-installed

sweep: install
	$(DATA_ENV) $(BIN)/python -m sweeps.run bccd_imbalance $(ARGS)

check-data: install
	$(DATA_ENV) $(BIN)/python -m sweeps.run bccd_imbalance --check-data

report: install
	@test -n "$(EXP)" || (echo "usage: make report EXP=runs/<experiment> [ARGS='--seeds 2']"; exit 2)
	$(DATA_ENV) $(BIN)/python -m analysis.report $(EXP) $(ARGS)

test: install
	$(DATA_ENV) $(BIN)/python -m pytest $(ARGS)

test-fast: install
	$(DATA_ENV) $(BIN)/python -m pytest -m "not e2e" $(ARGS)

test-cluster: install
	$(BIN)/python -m pip install -q -e '.[cluster-test]'
	cluster/tests/install-debian-packages.sh
	$(DATA_ENV) $(BIN)/python -m pytest -m cluster tests/cluster $(ARGS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) runs .pytest_cache
