# Emile build.  `make` builds build/emile and build/emile-runner (and, where
# nvcc is found, build/libemile-engine-cuda.so, the engine's GPU path that
# `emile taste --device cuda` loads); `make test` builds the sanitized test
# binaries and runs every test; `make cuda-check` compiles every CUDA source
# with nvcc (no GPU needed); `make test-gpu` runs the GPU suite (on a
# machine with a GPU).
CC      ?= cc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)
WARN    := -Wall -Wextra -Wshadow -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
PKGS    := jansson sqlite3 libcurl libmicrohttpd libpcre2-8 libutf8proc libcrypto
CPPFLAGS:= -Iinclude -Isrc -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 $(WARN) -fno-strict-aliasing
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -ljansson -lsqlite3 -lcurl -lmicrohttpd -lpcre2-8 -lutf8proc -lcrypto) -ldl -lm -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# The runner's cache sizing (src/runner/cache_size.c) is in the library too,
# for its unit test.
LIB_SRC    := $(sort $(filter-out src/cli/main.c src/runner/%,$(shell find src -name '*.c')) src/runner/cache_size.c)
# The seccomp filter and Landlock live in src/sandbox: the runner installs
# them, and the Tasting Room's engine child (src/taste/taste_confine.c) and
# the compile sandbox use them too.
RUNNER_SRC := $(sort $(wildcard src/runner/*.c) src/sandbox/seccomp_filter.c src/sandbox/landlock.c src/util/keystream.c)
TEST_SRC   := $(sort $(wildcard tests/unit/test_*.c))
TEST_SUPPORT := $(sort $(wildcard tests/support/*.c))

OBJ      := $(LIB_SRC:%.c=build/obj/%.o)
SAN_OBJ  := $(LIB_SRC:%.c=build/san/%.o) $(TEST_SUPPORT:%.c=build/san/%.o)
TEST_BIN := $(TEST_SRC:tests/unit/%.c=build/test/%)

.PHONY: all test unit-tests clean distclean cuda-check test-gpu run
HAVE_NVCC := $(shell test -x "$(NVCC)" && echo 1)
ENGINE_CUDA := build/libemile-engine-cuda.so
# cuBLAS from NVIDIA's wheel (scripts/setup.sh) where the toolkit has none:
# built against it here, the engine finds the GPU host's own libcublas.so.13.
CUBLAS_DIR := build/deps/cublas
# (Its libcublasLt, 550 MB, is not fetched: executables link with its
# symbols left to the run-time loader.)
CUBLAS_FLAGS := $(if $(wildcard $(CUBLAS_DIR)/include/cublas_v2.h),-I$(CUBLAS_DIR)/include -L$(CUBLAS_DIR)/lib \
	-Xlinker --allow-shlib-undefined)
all: build/emile build/emile-runner build/emile-san build/libemile-confine.so $(if $(HAVE_NVCC),$(ENGINE_CUDA))

# The Tasting Room's PyTorch side (emile taste --hf) confines its Python
# children with the C engine child's own sandbox, loaded through ctypes
# (src/taste/taste_hf_confine.c; only its three entry points are exported).
CONFINE_SRC := src/taste/taste_hf_confine.c src/taste/taste_confine.c src/sandbox/sandbox.c \
	src/sandbox/seccomp_filter.c src/sandbox/output_filter.c src/sandbox/landlock.c src/util/fs.c \
	src/util/clock.c
build/libemile-confine.so: $(CONFINE_SRC) $(wildcard src/taste/*.h src/sandbox/*.h src/util/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -shared -fvisibility=hidden -Wl,--no-undefined $(CONFINE_SRC) -o $@

# The engine's GPU path, loaded with dlopen by `emile taste --device cuda`
# (so the emile binary itself needs no CUDA).  The shared CUDA runtime, as
# the kernels put into its attention slot are built (src/backend/cuda.c).
$(ENGINE_CUDA): src/engine/cuda/qwen3_cuda.cu src/engine/qwen3_cuda.h src/engine/qwen3.h \
		src/engine/attn_slot.h src/engine/op_slot.h src/engine/safetensors.h include/emile.h
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -arch=sm_90a -std=c++17 -shared -Xcompiler -fPIC -cudart shared -Iinclude -Isrc \
		$(CUBLAS_FLAGS) $< -o $@ -lcublas

build/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

build/san/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SAN) -Itests/support -MMD -MP -c $< -o $@

build/libemile.a: $(OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

build/libemile-san.a: $(SAN_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

build/emile: build/obj/src/cli/main.o build/libemile.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# The sanitized CLI, used by the integration tests.
build/emile-san: build/san/src/cli/main.o build/libemile-san.a
	$(CC) $(CFLAGS) $(SAN) $^ -o $@ $(LDLIBS)

# The runner hosts untrusted kernels: small, no sanitizer runtime (which
# would fight the memory limit), no library but libdl.  It exports nothing
# but the CUDA launch entry points it interposes (src/runner/exports.list):
# no function or variable of the runner is reachable by name from a kernel.
build/emile-runner: $(RUNNER_SRC:%.c=build/obj/%.o) src/runner/exports.list
	$(CC) $(CFLAGS) -Wl,--dynamic-list=src/runner/exports.list $(filter %.o,$^) -o $@ -ldl -lm -lpthread

build/test/%: tests/unit/%.c build/libemile-san.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -O1 $(SAN) -Itests/support $< build/libemile-san.a -o $@ $(LDLIBS) -lcmocka

INTEGRATION := $(sort $(wildcard tests/integration/*.sh)) tests/browser/run.sh
unit-tests: $(TEST_BIN)

test: all $(TEST_BIN)
	@bash tests/run_all.sh $(TEST_BIN) $(INTEGRATION)

run: all
	./build/emile cook examples/cpu_attention.json

CUDA_SRC := $(shell find kernels tests bench src -name '*.cu' 2>/dev/null)
cuda-check:
	@CUBLAS_FLAGS="$(CUBLAS_FLAGS)" bash tests/cuda_compile_check.sh $(CUDA_SRC)

# On a GPU host; the binaries may be built elsewhere and carried (the GPU
# host need not have the -dev packages), so this does not rebuild them.
test-gpu:
	@test -x build/emile -a -x build/emile-runner || { echo "build first: make all"; exit 2; }
	@bash tests/gpu/run_gpu_suite.sh

# clean keeps what scripts/setup.sh installed (build/venv, build/deps);
# distclean removes those too.
clean:
	@mkdir -p build
	find build -mindepth 1 -maxdepth 1 ! -name venv ! -name deps -exec rm -rf {} +

distclean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
