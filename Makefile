# The README's two commands are `make demo` and `make test`; both install what is missing first.
BUILD_DIR ?= build
FUZZ_BUILD_DIR ?= build-fuzz
PYTEST ?= /usr/bin/python3 -m pytest
PREFIX ?= /usr/local
FUZZ_SECONDS ?= 30
export ASYA_BUILD_DIR := $(abspath $(BUILD_DIR))
NINJA_BUILD = ninja -C $(BUILD_DIR)

.PHONY: all setup bench-setup configure build install deb test test-cpp test-python fuzz demo bench format format-check clean

all: build

setup:
	@./scripts/setup

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release

configure: $(BUILD_DIR)/build.ninja

build: configure
	$(NINJA_BUILD)

# Installs the programs, the Python runtime, the C++ runtime library with find_package(asya), man
# pages and shell completion under PREFIX (docs/install.md): make install PREFIX=~/.local
install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

# A Debian package of the same files under /usr, in $(BUILD_DIR): sudo apt install ./build/asya_*.deb
deb: build
	cd $(BUILD_DIR) && cpack -G DEB

# The build, with the Node test clients' node_modules installing meanwhile (scripts/test-all
# --node-modules) instead of before pytest on the critical path.
test: setup configure
	@./scripts/test-all --node-modules & node_modules=$$!; \
	  $(NINJA_BUILD); build_rc=$$?; \
	  wait $$node_modules; [ $$build_rc -eq 0 ] || exit $$build_rc; \
	  ./scripts/test-all

test-cpp: build
	ctest --test-dir $(BUILD_DIR) -j2 --output-on-failure

test-python: build
	$(PYTEST) -q runtimes/python tests

fuzz:
	@./scripts/fuzz $(FUZZ_SECONDS)

demo: setup build
	@./scripts/demo

# Benchmarks need their own packages too (python3-torch for the `batch` section): setup --bench.
bench-setup:
	@./scripts/setup --bench

bench: bench-setup build
	@./bench/run

# Every tracked C++ file (.clang-format at the top); format-check lists the ones that differ (make
# test fails on them too).
format:
	git ls-files '*.cpp' '*.hpp' | xargs clang-format -i

format-check:
	@./scripts/test-all --format-only

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_BUILD_DIR)
