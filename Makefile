# sealscope: the only commands anyone needs to remember.
#   make run     serve http://$(HOST):$(PORT) (SQLite store in $(SEALSCOPE_DATA))
#   make test    lint, C unit tests (plain and ASan/UBSan), pytest
# Everything runs from ./.venv, created and kept in step by `make venv`.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
HOST ?= 127.0.0.1
PORT ?= 8000
SEALSCOPE_DATA ?= ./data
PYTEST_ARGS ?=

CC ?= gcc
CFLAGS_STRICT := -std=c11 -Wall -Wextra -Werror -O2 -g
# UB is fatal (gcc's UBSan otherwise reports and goes on: the run would pass)
SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ENGINE_SRC := $(wildcard engine_c/*.c)
ENGINE_HDR := $(wildcard engine_c/*.h)
CTEST_SRC := $(wildcard engine_c/tests/*.c)
CBUILD := build/c

# .venv is (re)installed when pyproject.toml or setup.py change
# (pip install -e ".[test]", which also compiles the engine); the engine
# alone is rebuilt in place when a C source is newer than the compiled module
VENV_STAMP := $(VENV)/.sealscope-installed
ENGINE_DEPS := $(ENGINE_SRC) $(ENGINE_HDR) app/engine/_build.py
VENDOR_STAMP := static/vendor/.stamp
QUIET_BUILD := PYTHONWARNINGS=ignore
BUILD_ENGINE := $(QUIET_BUILD) $(PIP) install -q --no-deps --no-build-isolation -e .

CHROMIUM ?= /usr/bin/chromium

.PHONY: help venv engine run cluster test lint ctest fuzz pytest asan-pytest soak bench chromium clean distclean

help:
	@echo "make run          serve http://$(HOST):$(PORT) (HOST=, PORT=, SEALSCOPE_DATA=$(SEALSCOPE_DATA))"
	@echo "make cluster      HAProxy on PORT, WORKERS=$(WORKERS) workers, PostgreSQL (docs/deploy.md)"
	@echo "make test         ruff, C unit tests (+ASan/UBSan), pytest (browser tests need $(CHROMIUM))"
	@echo "make venv         create/update .venv (pip install -e '.[test]') and build the engine"
	@echo "make ctest        C unit tests only;  make lint: ruff + mypy;  make bench;  make clean"
	@echo "make asan-pytest  the engine tests against an ASan/UBSan build of the engine"
	@echo "make soak         the property tests with SOAK=20 times their examples, fresh ones"
	@echo "make fuzz         the engine fuzzed under ASan/UBSan for FUZZ_SECONDS=$(FUZZ_SECONDS) s"

$(VENV_STAMP): pyproject.toml setup.py
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "pip install -e '.[test]' into $(VENV)"
	@$(PIP) install -q "setuptools==84.2.1" "cffi==2.1.1"
	@$(QUIET_BUILD) $(PIP) install -q -e ".[test]"
	@touch $@

engine: $(VENV_STAMP)
	@so=$$(ls app/engine/_sealscope*.so 2>/dev/null | head -1); stale=0; \
	if [ -z "$$so" ]; then stale=1; else \
	  for f in $(ENGINE_DEPS); do [ "$$f" -nt "$$so" ] && stale=1; done; fi; \
	if [ $$stale = 1 ]; then echo "building the engine (app/engine/_sealscope)"; $(BUILD_ENGINE); fi

venv: engine

# htmx, its SSE extension, axe-core, Swagger UI and ReDoc from npm (package.json and
# package-lock.json pin them; no package needs its install scripts)
$(VENDOR_STAMP): package.json $(wildcard package-lock.json)
	@if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund --silent; \
	 else npm install --ignore-scripts --no-audit --no-fund --silent; fi
	@mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx.org/dist/htmx.js \
	   node_modules/htmx-ext-sse/dist/sse.js node_modules/htmx-ext-sse/dist/sse.min.js \
	   node_modules/axe-core/axe.min.js static/vendor/
	cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css \
	   node_modules/redoc/bundles/redoc.standalone.js static/vendor/
	@touch $@

static/vendor: $(VENDOR_STAMP)

run: venv static/vendor
	$(VENV)/bin/sealscope serve --host $(HOST) --port $(PORT) --data $(SEALSCOPE_DATA)

# PostgreSQL + HAProxy on PORT + WORKERS workers (app/cluster/launch.py, docs/deploy.md)
WORKERS ?= 3
cluster: venv static/vendor
	$(VENV)/bin/sealscope cluster --workers $(WORKERS) --port $(PORT) --data $(SEALSCOPE_DATA)

# Debian's chromium for the browser tests: installed when missing and root;
# otherwise tests/conftest.py skips them, saying why
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: $(CHROMIUM) is missing and this is not root: browser tests will be skipped"; \
	  fi; \
	fi

test: venv static/vendor chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app sealscope
	$(MAKE) --no-print-directory ctest
	$(MAKE) --no-print-directory fuzz
	$(PY) -m pytest tests $(PYTEST_ARGS)

pytest: venv static/vendor chromium
	$(PY) -m pytest tests $(PYTEST_ARGS)

ctest:
ifeq ($(strip $(CTEST_SRC)),)
	@echo "ctest: engine_c/tests/ has no .c files yet: skipped"
else
	@mkdir -p $(CBUILD)
	$(CC) $(CFLAGS_STRICT) -Iengine_c $(ENGINE_SRC) $(CTEST_SRC) -o $(CBUILD)/ctest
	$(CBUILD)/ctest
	$(CC) $(CFLAGS_STRICT) $(SANITIZE) -Iengine_c $(ENGINE_SRC) $(CTEST_SRC) -o $(CBUILD)/ctest-asan
	ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $(CBUILD)/ctest-asan
	$(CC) $(CFLAGS_STRICT) -fsanitize=thread -Iengine_c $(ENGINE_SRC) $(CTEST_SRC) -o $(CBUILD)/ctest-tsan
	@# ThreadSanitizer cannot map its shadow under some kernels' ASLR (vm.mmap_rnd_bits
	@# high, personality blocked): then this step says so and is skipped; a race fails it
	@out=$$(SS_CTEST_ONLY=cow TSAN_OPTIONS=halt_on_error=1 $(CBUILD)/ctest-tsan 2>&1); rc=$$?; \
	echo "$$out" | tail -20; \
	if [ $$rc != 0 ] && echo "$$out" | grep -q "FATAL: ThreadSanitizer"; then \
	  echo "ctest-tsan: skipped: ThreadSanitizer cannot run on this kernel (see above)"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi
endif

# the engine fuzzed (engine_c/fuzz/fuzz_ops.c: random op sequences, the invariant
# checker after every op) under ASan/UBSan: libFuzzer where $(CLANG) has it (.ci/run
# installs clang as root), else a seeded random driver built with $(CC). The saved
# inputs of engine_c/fuzz/corpus/ (bugs it found) run first. FUZZ_SEED=1 in `make
# test`; `make soak` runs it SOAK_FUZZ_SECONDS with a fresh seed.
CLANG ?= clang
FUZZ_SECONDS ?= 20
FUZZ_SEED ?= 1
FUZZ_SRC := $(ENGINE_SRC) engine_c/fuzz/fuzz_ops.c engine_c/fuzz/fuzz_kvm.c
FUZZ_SAN := $(SANITIZE)
FUZZ_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
fuzz:
	@mkdir -p $(CBUILD)/fuzz-corpus
	@if command -v $(CLANG) >/dev/null 2>&1 && echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' \
	    | $(CLANG) -x c -fsanitize=fuzzer - -o $(CBUILD)/fuzz-probe >/dev/null 2>&1; then \
	  echo "fuzz: libFuzzer ($(CLANG)), $(FUZZ_SECONDS) s, seed $(FUZZ_SEED)"; \
	  $(CLANG) $(CFLAGS_STRICT) -O1 $(FUZZ_SAN) -fsanitize=fuzzer -Iengine_c $(FUZZ_SRC) -o $(CBUILD)/fuzz_ops-lf && \
	  $(FUZZ_ENV) $(CBUILD)/fuzz_ops-lf engine_c/fuzz/corpus/* && \
	  $(FUZZ_ENV) $(CBUILD)/fuzz_ops-lf -seed=$(FUZZ_SEED) -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -len_control=0 \
	    -print_final_stats=1 -artifact_prefix=$(CBUILD)/ $(CBUILD)/fuzz-corpus engine_c/fuzz/corpus; \
	else \
	  echo "fuzz: no libFuzzer ($(CLANG) missing; .ci/run installs it as root): the seeded $(CC) driver, $(FUZZ_SECONDS) s, seed $(FUZZ_SEED)"; \
	  $(CC) $(CFLAGS_STRICT) -O1 $(FUZZ_SAN) -Iengine_c $(FUZZ_SRC) engine_c/fuzz/fuzz_main.c -o $(CBUILD)/fuzz_ops && \
	  $(FUZZ_ENV) $(CBUILD)/fuzz_ops engine_c/fuzz/corpus/* && \
	  cd $(CBUILD) && $(FUZZ_ENV) ./fuzz_ops -s $(FUZZ_SEED) -t $(FUZZ_SECONDS); \
	fi

# the engine tests against the engine compiled with ASan/UBSan; the normal
# build comes back at the next `make venv`
asan-pytest: venv
	CFLAGS="$(SANITIZE)" LDFLAGS="$(SANITIZE)" $(BUILD_ENGINE)
	@LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PY) -m pytest tests/engine -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	echo "rebuilding the engine without sanitizers"; $(BUILD_ENGINE); exit $$status

# the property tests (engine vs kernel, vs the reference model, schemathesis) with
# SOAK times their example budgets and fresh examples each run (tests/budget.py)
SOAK ?= 20
SOAK_FUZZ_SECONDS ?= 600
soak: venv
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(SOAK_FUZZ_SECONDS) FUZZ_SEED=$$(date +%s)
	SEALSCOPE_SOAK=$(SOAK) $(PY) -m pytest -q -o timeout=0 tests/engine \
		tests/api/test_compare.py tests/api/test_live.py $(PYTEST_ARGS)

bench: venv
	@for f in bench/*.py; do [ -e "$$f" ] || continue; echo "== $$f"; $(PY) "$$f" || exit 1; done

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy app sealscope

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache .hypothesis test-results
	rm -f app/engine/_sealscope.c app/engine/_sealscope.o app/engine/_sealscope*.so engine_c/*.o
	find . -path ./$(VENV) -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) node_modules static/vendor
