# Two commands on a fresh clone (Python 3.11): `make run` and `make test`.
# The venv is built from requirements.lock (uv pip sync) and rebuilt only when the lock changes.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.8
LOCK_HASH  := $(shell sha256sum requirements.lock | cut -c1-16)
STAMP  := $(VENV)/.synced-$(LOCK_HASH)
export ZENML_ANALYTICS_OPT_IN ?= false
export ZENML_ENABLE_REPO_INIT_WARNINGS ?= false
export SAGEMAKER_SUPPRESS_V2_WARNING ?= 1
export OMP_NUM_THREADS ?= 1

.PHONY: setup run test lint format browser docker image lock bench clean-endpoints

setup: $(STAMP)

# Bytecode: precompiling the whole venv (`uv pip sync --compile-bytecode`, ~18.7k files) took 72 s of a
# fresh `make run`; a run imports ~2,700 of them. So the venv is synced without it, and the processes make
# starts may write .pyc files for what they import (PYTHONDONTWRITEBYTECODE, set on some machines, CI's
# included, would make every process recompile those ~2,700 modules, ~7 s): the first run writes them once.
unexport PYTHONDONTWRITEBYTECODE
#
# uv: the venv is made without pip (ensurepip took 7 s of a fresh `make run`) and $(PYTHON)'s own pip installs
# uv into it (`pip --python`, pip >= 22.3); without such a pip, the venv gets its own pip first. uv is installed
# only when the venv lacks this version.
PIP_FLAGS := --quiet --disable-pip-version-check
$(STAMP): requirements.lock Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv --without-pip $(VENV)
	@$(BIN)/uv --version 2>/dev/null | grep -qE "^uv $(UV_VERSION)( |$$)" \
		|| $(PYTHON) -m pip --python $(BIN)/python install $(PIP_FLAGS) uv==$(UV_VERSION) 2>/dev/null \
		|| { $(BIN)/python -m ensurepip --upgrade >/dev/null && $(BIN)/python -m pip install $(PIP_FLAGS) uv==$(UV_VERSION); }
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	@rm -f $(VENV)/.synced-* && touch $@

## Register the local stack if missing, ingest demo data if the feature store is empty, train + deploy.
run: setup
	$(BIN)/python run.py --variant rf --demo-data-if-empty

## The whole test suite (what CI runs). The browser test needs Debian's chromium; tests/container needs Docker.
test: setup lint browser docker
	$(BIN)/python -m pytest

## ruff (configured in pyproject.toml): the tree must be formatted and lint-clean. `make format` fixes what it can.
lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium missing and not root: the browser test will be skipped"

# Docker for tests/container: installs docker.io + debootstrap if missing (root), starts dockerd if no daemon
# answers (and leaves a note with its pid in /tmp/churn-dockerd/NOTE), builds the base image
# local/python:3.11-slim from Debian packages once (Docker Hub is unreachable in CI). If this fails, the
# container tests fail and say why.
CHURN_BASE_IMAGE ?= local/python:3.11-slim
export CHURN_BASE_IMAGE
docker:
	@CHURN_BASE_IMAGE=$(CHURN_BASE_IMAGE) docker/ensure-docker.sh || echo "Docker is not available: tests/container will fail and say why"

## Build our SageMaker image (docker/Dockerfile) on the local base image; `run.py image build --push` pushes it.
image: setup docker
	$(BIN)/python run.py image build --base-image $(CHURN_BASE_IMAGE)

## Re-resolve the lock file from pyproject.toml (one set, resolved together).
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

bench: setup
	$(BIN)/python bench/pipeline_overhead.py

clean-endpoints: setup
	$(BIN)/python run.py cleanup --yes
