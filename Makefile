# dc - build, test, bench, setup and the single-file library.
#
#   make setup        install the Debian packages dc needs (as root; idempotent)
#   make              build ./dc and libdc.a
#   make test         every test: normal, single-file, portable and ASan+UBSan builds
#   make bench        sgemm and conv2d throughput (bench/README.md)
#   make single       write build/single/dc_single.c + dc.h (the one-file library)
#   make PORTABLE=1   scalar kernels only (no SIMD)
#   make SANITIZE=1   ASan + UBSan build
#   make CC=clang     any C99 compiler with OpenMP (gcc and clang are tested)
#   make MPI=1        build/mpi/dc, for `mpirun -n N build/mpi/dc eval ...` (Open MPI)
#   make test-mpi     dc eval over 2 MPI ranks against one process (tests/mpi_test.sh)

CC ?= cc
# a Python with numpy (the first python3 on PATH may lack Debian's packages)
PYTHON ?= $(shell for p in python3 /usr/bin/python3 python; do \
            $$p -c 'import numpy' >/dev/null 2>&1 && { command -v $$p; break; }; done)
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
# Debian's OpenMP build of OpenBLAS, so BLAS and dc share one thread pool
BLAS_INC ?= /usr/include/$(MULTIARCH)/openblas-openmp
BLAS_DIR ?= /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_LIBS ?= $(if $(wildcard $(BLAS_DIR)/libopenblas.so*),-L$(BLAS_DIR) -Wl$(comma)-rpath$(comma)$(BLAS_DIR)) -lopenblas
comma := ,

OPT ?= -O2
CFLAGS_BASE = -std=c99 -Wall -Wextra -fopenmp -I$(BLAS_INC) -I.
LDLIBS = $(BLAS_LIBS) -lm -fopenmp

VARIANT = release
ifeq ($(PORTABLE),1)
  CFLAGS_BASE += -DDC_PORTABLE
  VARIANT = portable
endif
ifeq ($(SANITIZE),1)
  OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDLIBS += -fsanitize=address,undefined
  VARIANT := $(VARIANT)-san
endif
ifneq ($(findstring clang,$(CC)),)
  VARIANT := $(VARIANT)-clang
endif
# MPI=1: the driver built with mpicc; `dc eval` then spreads over MPI ranks
ifeq ($(MPI),1)
  MPICC ?= mpicc
  CC := $(MPICC)
  CFLAGS_BASE += -DDC_MPI
  VARIANT := $(if $(filter release,$(VARIANT)),mpi,$(VARIANT)-mpi)
endif
CFLAGS ?= $(OPT)
ALL_CFLAGS = $(CFLAGS_BASE) $(CFLAGS)

B = build/$(VARIANT)

# the library, in the order the single-file build concatenates it
NN_SRC = nn/core.c nn/kernels.c nn/kernels_avx512.c nn/kernels_avx2.c nn/kernels_neon.c \
         nn/cpu.c nn/npy.c nn/weights.c nn/linear.c nn/conv.c nn/norm.c nn/ops.c nn/attn.c \
         nn/dit.c nn/tokenizer.c nn/clip.c nn/vae.c nn/unet.c \
         nn/image.c nn/stb_impl.c
LIB_SRC = $(NN_SRC) dc.c
LIB_OBJ = $(LIB_SRC:%.c=$(B)/%.o)
HEADERS = dc.h nn/nn.h nn/simd.h nn/simd_end.h nn/kernels_vec.h nn/tokenizer.h nn/clip.h nn/vae.h \
          nn/unet.h
TEST_SRC = $(wildcard tests/test_*.c) tests/main.c
BENCH_SRC = bench/conv_bench.c

.PHONY: all setup test test-one test-single test-tools test-mpi test-valgrind bench single clean train ship

ifeq ($(MPI),1)
all: $(B)/dc
else
all: dc libdc.a
endif

dc: $(B)/dc
	cp $< $@
libdc.a: $(B)/libdc.a
	cp $< $@

DRIVER_H = tools/driver/driver.h tools/driver/durable.h tools/driver/par.h
$(B)/%.o: %.c $(HEADERS) tests/test.h $(DRIVER_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libdc.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

DRIVER_SRC = tools/driver/dc_main.c tools/driver/dc_eval.c tools/driver/dc_match.c tools/driver/driver.c tools/driver/plot.c \
             tools/driver/durable.c tools/driver/par.c
$(B)/dc: $(DRIVER_SRC:%.c=$(B)/%.o) $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

$(B)/run_tests: $(TEST_SRC:%.c=$(B)/%.o) $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# ---- single-file library ----
single: build/single/dc_single.c
build/single/dc_single.c: $(LIB_SRC) $(HEADERS) tools/bundle.py
	@mkdir -p build/single
	$(PYTHON) tools/bundle.py -o $@ $(LIB_SRC)
	cp dc.h build/single/dc.h
$(B)/single/dc: build/single/dc_single.c $(DRIVER_SRC) $(DRIVER_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Ibuild/single build/single/dc_single.c $(DRIVER_SRC) $(LDLIBS) -o $@
$(B)/single/run_tests: build/single/dc_single.c $(TEST_SRC)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DDC_TEST_SINGLE build/single/dc_single.c $(TEST_SRC) $(LDLIBS) -o $@

# ---- tests ----
# test-one: one build variant's suite (the variables above pick it)
test-one: $(B)/run_tests $(B)/dc
	@mkdir -p $(B)/tmp
	$(PYTHON) tools/prepare_tests.py $(B)/tmp ../shared/fixtures
	$(B)/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/dc --fixtures ../shared/fixtures
test-single: $(B)/single/run_tests $(B)/single/dc
	@mkdir -p $(B)/tmp
	$(PYTHON) tools/prepare_tests.py $(B)/tmp ../shared/fixtures
	$(B)/single/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/single/dc --fixtures ../shared/fixtures
test-tools:
	$(PYTHON) tools/test_tools.py
# test-mpi: dc eval over 2 MPI ranks on localhost against one process
test-mpi:
	$(MAKE) -s MPI=1 build/mpi/dc
	sh tests/mpi_test.sh build/mpi/dc build/mpi/tmp
# test-valgrind: the library's suite under valgrind's memcheck (slow: not in
# make test). One thread, AVX2 kernels for both dc and OpenBLAS (valgrind
# 3.19 cannot run AVX-512); the dc subprocesses of the driver tests run
# natively. Any memcheck report or a definite leak fails it.
VALGRIND = valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
  --suppressions=tests/valgrind.supp
test-valgrind: $(B)/run_tests $(B)/dc
	@mkdir -p $(B)/tmp
	$(PYTHON) tools/prepare_tests.py $(B)/tmp ../shared/fixtures
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell DC_KERNELS=avx2 \
	  $(VALGRIND) $(B)/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/dc --fixtures ../shared/fixtures $(VG_FILTER)

# make test: all suites, then one summary line ("N passed, M failed")
test:
	@PYTHON="$(PYTHON)" MAKE="$(MAKE)" CC="$(CC)" sh tests/run.sh

# ---- bench ----
$(B)/conv_bench: $(B)/bench/conv_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/dit_bench: $(B)/bench/dit_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/sd_bench: $(B)/bench/sd_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
# the quick benches; bench/dit_bench.sh and bench/sd_bench.sh are the long
# full-size ones, against PyTorch in the same run
bench: $(B)/conv_bench $(B)/dit_bench $(B)/sd_bench
	$(B)/conv_bench

# ---- the shipped models: trained here on Fashion-MNIST (python3-torch) ----
# A VAE (diffusers folder); on its latents a class-conditional DiT (state
# dict) and a text-conditional Stable-Diffusion-architecture pipeline
# (diffusers folders: BPE tokenizer trained here, CLIP text encoder, UNet);
# all saved as users download such models, then converted with the real
# converter. TRAIN_MINUTES_* set the budgets. The SD model is the default.
TRAIN_MINUTES_VAE ?= 14
TRAIN_MINUTES_DIT ?= 40
TRAIN_MINUTES_SD ?= 55
train:
	$(PYTHON) tools/train_fmnist.py vae models/fmnist/vae --minutes $(TRAIN_MINUTES_VAE)
	$(PYTHON) tools/train_fmnist.py dit models/fmnist/dit --vae models/fmnist/vae --minutes $(TRAIN_MINUTES_DIT)
	$(PYTHON) tools/train_fmnist_sd.py models/fmnist/sd --vae models/fmnist/vae --minutes $(TRAIN_MINUTES_SD)
	$(MAKE) ship
# Each model is converted, calibrated for --stop calibrated on 200
# training images (never test images), and converted again with that
# calibration stored in it (data/calibration/ keeps the measured files).
FMNIST = /usr/share/datasets/fashion-mnist
CALIBRATE = ./dc eval $(FMNIST)/train-images-idx3-ubyte.gz $(FMNIST)/train-labels-idx1-ubyte.gz \
  --subset data/calibration/train_images.txt --samples 50 --keep 1 --quiet
DIT_CONVERT = $(PYTHON) tools/convert.py models/fmnist/dit --family dit --vae models/fmnist/vae \
  --class-names data/classes/fashion_mnist.txt --dtype f16 -o data/models/fmnist-dit.dcw
SD_CONVERT = $(PYTHON) tools/convert.py models/fmnist/sd --family sd --class-names data/classes/fashion_mnist.txt \
  --template "a photo of a {}." --dtype q8 -o data/models/fmnist-sd.dcw
ship: dc
	@mkdir -p data/models data/calibration
	$(DIT_CONVERT)
	$(SD_CONVERT)
	rm -f build/calibrate-*.jsonl
	$(CALIBRATE) -m data/models/fmnist-dit.dcw --results build/calibrate-dit.jsonl --calibrate data/calibration/fmnist-dit.txt
	$(CALIBRATE) -m data/models/fmnist-sd.dcw --results build/calibrate-sd.jsonl --calibrate data/calibration/fmnist-sd.txt
	$(DIT_CONVERT) --calibration data/calibration/fmnist-dit.txt
	$(SD_CONVERT) --calibration data/calibration/fmnist-sd.txt
	ln -sf fmnist-sd.dcw data/models/default.dcw

# ---- setup: Debian packages only ----
DEB_PACKAGES = gcc make libc6-dev libopenblas-openmp-dev libstb-dev python3 python3-numpy \
               dataset-fashion-mnist clang libomp-dev libclang-rt-14-dev libopenmpi-dev openmpi-bin
# training and reference generators only (not needed by make test): python3-torch python3-pil
setup:
	@if [ "$$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then \
	  echo "make setup installs Debian packages: run it as root"; exit 1; fi
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	else echo "all packages present: $(DEB_PACKAGES)"; fi

clean:
	rm -rf build dc libdc.a

# ---- fuzzing (fuzz/Makefile.inc) and the arm64 test under qemu ----
include fuzz/Makefile.inc
.PHONY: test-arm64
test-arm64:
	sh tools/arm64_test.sh $(ARM64_FLAGS)
