# dfbench — run `make help` for the list of targets.
# Every target that runs Python builds .venv first (about 100 s on 2 cores, 6.3 GB with
# the CUDA build of torch), so a fresh clone needs no other setup step.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.dfbench-installed
# Tests never touch a network: no hub downloads, W&B offline, no update checks.
TEST_ENV := HF_HUB_OFFLINE=1 WANDB_MODE=offline NO_ALBUMENTATIONS_UPDATE=1
PYTEST_ARGS ?=
LINT_PATHS := $(wildcard src tests benchmarks)

.PHONY: help venv test test-full test-slurm lint format bench-cross-dataset synthetic-data clean clean-venv

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-20s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The install recipe that works on the project's machines (docs/environment.md says why):
# torch 2.14.1 + torchvision 0.29.1 first, then the project with its pinned
# dependencies, then facenet-pytorch without its stale pins (torch<2.3, numpy<2).
# pip compiles every installed module one by one (about 60 s on 2 cores); compileall
# does the same on all cores afterwards, skipping the packages' own test suites, which
# nothing imports (about 28 s; 35 s with them). It reports the few files that are not
# Python 3.11, which pip skips silently.
PIP_INSTALL := $(BIN)/pip install --quiet --no-compile
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip 'setuptools<81' wheel
	$(PIP_INSTALL) torch==2.14.1 torchvision==0.29.1
	$(PIP_INSTALL) -e '.[dev]'
	$(PIP_INSTALL) --no-deps facenet-pytorch==2.6.0
	-@$(BIN)/python -m compileall -q -j 0 -x '/tests?/' $(VENV)/lib > /dev/null
	@touch $@

venv: $(STAMP) ## Build the virtual environment (.venv) with the pinned stack

test: $(STAMP) ## Run the fast test suite (no slow or DDP tests)
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

test-full: $(STAMP) ## Run every test, slow and DDP ones included
	$(TEST_ENV) $(BIN)/pytest -m "" $(PYTEST_ARGS)

# Installs Debian's Slurm packages when missing (apt-get, as root) and starts a throwaway
# single-node cluster in a temporary folder for the tests marked `slurm` (tests/slurm_cluster.py).
test-slurm: $(STAMP) ## Run the tests on a real throwaway Slurm (root; installs slurm packages)
	$(TEST_ENV) $(BIN)/pytest -m slurm $(PYTEST_ARGS)

lint: $(STAMP) ## Check style with ruff
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)

format: $(STAMP) ## Reformat and auto-fix with ruff
	$(BIN)/ruff format $(LINT_PATHS)
	$(BIN)/ruff check --fix $(LINT_PATHS)

PROFILE ?= demo
CACHE_DIR ?=
GPUS ?= 0
BENCH_ARGS ?=
# demo: synthetic copies of the datasets, every detector at demo size, on the CPU; W&B
# records it only when WANDB_MODE is set (offline or online): offline runs cost about 10 s
# per cell of the 15-minute budget. Other profiles log to W&B, offline unless WANDB_MODE says.
# paper: PROFILE=paper CACHE_DIR=/data/cache GPUS=4 (frame cache made by `dfbench preprocess`);
# more options of `dfbench bench` (--set, --out, --wandb-project ...) go in BENCH_ARGS, e.g.
#   BENCH_ARGS='--set xception:model.init_args.pretrained=/weights/xception.pth'
bench-cross-dataset: $(STAMP) ## Cross-dataset benchmark: demo on synthetic data (PROFILE=paper CACHE_DIR=... GPUS=N for real data)
	$(if $(DATA_ROOT),$(error DATA_ROOT is now called CACHE_DIR (the frame cache): make bench-cross-dataset CACHE_DIR=$(DATA_ROOT)))
	@# Always for the demo: synth redoes nothing that is complete and current, and rebuilds
	@# what an older generator or another size left behind.
	@if [ "$(PROFILE)" = demo ] && [ -z "$(CACHE_DIR)" ]; then $(MAKE) --no-print-directory synthetic-data; fi
	WANDB_MODE=$${WANDB_MODE:-offline} NO_ALBUMENTATIONS_UPDATE=1 $(BIN)/dfbench bench benchmarks/cross_dataset.yaml \
		--profile $(PROFILE) --gpus $(GPUS) $(if $(CACHE_DIR),--cache-dir $(CACHE_DIR),) \
		$(if $(and $(filter demo,$(PROFILE)),$(if $(WANDB_MODE),,x)),--no-wandb,) $(BENCH_ARGS)

synthetic-data: $(STAMP) ## Synthesise, index and preprocess every dataset's synthetic copy (data/synthetic)
	NO_ALBUMENTATIONS_UPDATE=1 $(BIN)/dfbench synth --out data/synthetic --prepare

clean: ## Remove caches and run outputs (keeps .venv)
	rm -rf .pytest_cache .ruff_cache runs lightning_logs build *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

clean-venv: ## Remove the virtual environment
	rm -rf $(VENV)
