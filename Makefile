# tessera — thin wrapper over scripts/setup.sh and CMake. The README's two commands:
#   make demo   set up, build, run the pipeline on a generated cohort under mpirun -np 2
#   make test   set up, build, run every test (ctest), then the unit tests under ASan+UBSan
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= 2
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTS_WERROR=ON

.PHONY: all setup build demo test test-main test-asan bench clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

test: test-main test-asan

test-main: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1200

test-asan: setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTS_SANITIZE=ON -DTS_WERROR=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest -L unit --output-on-failure

bench: build
	@bash bench/report.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
