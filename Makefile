# Developer targets. CI (.ci/run) calls these; see README.md for what each needs.
PYTHON ?= python3
# Test selection for the slower instrumented runs (sanitizers, emulated AVX-512).
INSTRUMENTED_TESTS ?= -m "not slow"

.PHONY: build test lint bench sanitize emulate wheel clean

build:
	$(PYTHON) setup.py -q build_ext --inplace

test: build
	$(PYTHON) -m pytest

lint:
	$(PYTHON) -m ruff check pydrop tests benchmarks examples wheels build_ffi.py setup.py
	$(PYTHON) -m ruff format --check pydrop tests benchmarks examples wheels build_ffi.py setup.py
	$(PYTHON) -m mypy

bench: build
	$(PYTHON) -m pydrop bench

# Copy the sources to build/<name>, build there with extra flags, run the tests there.
define instrumented_copy
	rm -rf build/$(1) && mkdir -p build/$(1)
	cp -r csrc pydrop tests examples build_ffi.py setup.py pyproject.toml README.md LICENSE build/$(1)/
	rm -f build/$(1)/pydrop/*.so
	cd build/$(1) && $(2) $(PYTHON) setup.py -q build_ext --inplace
endef

# ASan + UBSan over the suite; any report fails the run.
sanitize:
	$(call instrumented_copy,sanitize,PYDROP_SANITIZE=1)
	cd build/sanitize && \
	  LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider $(INSTRUMENTED_TESTS)

# The AVX-512 kernels on any CPU, through SIMDe's emulated intrinsics (every path
# counts as supported there, so the per-ISA tests run zen4's too).
emulate:
	$(call instrumented_copy,emulate,PYDROP_SIMDE=1)
	cd build/emulate && PYDROP_ISA=avx512 $(PYTHON) -m pytest -q -p no:cacheprovider $(INSTRUMENTED_TESTS)

# The prebuilt abi3 manylinux wheel and the sdist in wheels/ (rerun after the last
# source change, then commit wheels/; CI fails while they are stale).
wheel:
	PYTHON=$(PYTHON) bash wheels/build.sh

clean:
	rm -rf build dist pydrop/_native*.so pydrop/_native.c *.egg-info
