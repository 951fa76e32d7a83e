# dc - build, test, bench, setup and the single-file library.
#
#   make setup        install the Debian packages dc needs (as root; idempotent)
#   make              build ./dc and libdc.a
#   make test         every test: normal, single-file, portable and ASan+UBSan builds
#                     (and ./dc and libdc.a, as make does)
#   make bench        sgemm, conv2d and int8 product throughput (bench/README.md)
#   make single       write build/single/dc.h: the whole library as one header in
#                     the stb manner (the implementation where DC_IMPLEMENTATION is
#                     defined; nothing but the public API exported)
#   make shared       build/release/libdc.so (what the Python module loads)
#   make install      driver, libraries, dc.h, dc.pc, models, man page (PREFIX, DESTDIR)
#   make PORTABLE=1   scalar kernels only (no SIMD)
#   make SANITIZE=1   ASan + UBSan build
#   make CC=clang     any C99 compiler with OpenMP (gcc and clang are tested)
#   make MPI=1        build/mpi/dc, for `mpirun -n N build/mpi/dc eval ...` (Open MPI)
#   make test-mpi     dc eval over 2 MPI ranks against one process (tests/mpi_test.sh)
#   make test-lone    a clone of HEAD alone in a temporary folder passes the release suite

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
         nn/q8.c nn/q8_avx512vnni.c nn/q8_avxvnni.c nn/q8_avx2.c nn/q8_neon.c nn/q8_neondot.c \
         nn/cpu.c nn/npy.c nn/weights.c nn/linear.c nn/conv.c nn/norm.c nn/ops.c nn/attn.c \
         nn/dit.c nn/tokenizer.c nn/clip.c nn/vae.c nn/unet.c nn/model.c nn/forward.c nn/stats.c \
         nn/image.c
NN_SRC += nn/int8.c # int8 compute: packing at load (the product itself: nn/q8*.c)
LIB_SRC = $(NN_SRC) dc.c
LIB_OBJ = $(LIB_SRC:%.c=$(B)/%.o)
HEADERS = dc.h dc_internal.h nn/nn.h nn/simd.h nn/simd_end.h nn/kernels_vec.h nn/tokenizer.h nn/clip.h \
          nn/vae.h nn/unet.h nn/dit.h nn/model.h nn/stb_impl.h nn/q8.h
TEST_SRC = $(wildcard tests/test_*.c) tests/main.c
# the x86 int8 variants compiled a second time through SIMDe (tests only,
# never in libdc): its own file, since it must not see <immintrin.h>
TEST_SIMDE = tests/q8_simde.c
BENCH_SRC = bench/conv_bench.c

.PHONY: all setup test test-one test-single test-embed test-tools test-python test-install test-mpi test-valgrind test-lone bench \
        single clean train ship shared pc man install uninstall glyphs1k train-glyphs ship-glyphs FORCE

ifeq ($(MPI),1)
all: $(B)/dc
else
all: dc libdc.a
endif

dc: $(B)/dc
	cp $< $@
libdc.a: $(B)/libdc.a
	cp $< $@

DRIVER_H = tools/driver/driver.h tools/driver/durable.h tools/driver/par.h tools/driver/calibrate.h
$(B)/%.o: %.c $(HEADERS) tests/test.h $(DRIVER_H)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/libdc.a: $(LIB_OBJ)
	rm -f $@
	ar rcs $@ $^

DRIVER_SRC = tools/driver/dc_main.c tools/driver/dc_eval.c tools/driver/dc_match.c tools/driver/driver.c \
             tools/driver/plot.c tools/driver/stb_zlib.c tools/driver/durable.c tools/driver/par.c \
             tools/driver/calibrate.c
$(B)/dc: $(DRIVER_SRC:%.c=$(B)/%.o) $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# (-Wno-psabi: SIMDe's vector types passed without AVX, inside this file only)
$(B)/tests/q8_simde.o: $(TEST_SIMDE) nn/q8.h nn/q8_avx512vnni.c nn/q8_avxvnni.c nn/q8_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Wno-psabi -c $< -o $@
$(B)/run_tests: $(TEST_SRC:%.c=$(B)/%.o) $(B)/tests/q8_simde.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

# ---- single-file library ----
# build/single/dc.h: dc.h, then behind DC_IMPLEMENTATION the LIB_SRC files in
# this order, internals static (tools/bundle.py). The driver and the test
# runner are built from it as an embedder builds: one file defines
# DC_IMPLEMENTATION and includes it; the runner's test files are included
# into that same file, since they call the (static) internals.
single: build/single/dc.h
build/single/dc.h: $(LIB_SRC) $(HEADERS) tools/bundle.py Makefile
	@mkdir -p build/single
	$(PYTHON) tools/bundle.py -o $@ dc.h $(LIB_SRC)
SINGLE_IMPL = printf '\#define DC_IMPLEMENTATION\n\#include "dc.h"\n'
$(B)/single/dc: build/single/dc.h $(DRIVER_SRC) $(DRIVER_H)
	@mkdir -p $(dir $@)
	$(SINGLE_IMPL) > $(B)/single/dc_impl.c
	$(CC) -Ibuild/single $(ALL_CFLAGS) $(B)/single/dc_impl.c $(DRIVER_SRC) $(LDLIBS) -o $@
$(B)/single/run_tests: build/single/dc.h $(TEST_SRC) tests/test.h $(B)/tests/q8_simde.o
	@mkdir -p $(dir $@)
	{ $(SINGLE_IMPL); for f in $(TEST_SRC); do echo "#include \"$$f\""; done; } > $(B)/single/run_tests.c
	$(CC) -Ibuild/single $(ALL_CFLAGS) $(B)/single/run_tests.c $(B)/tests/q8_simde.o $(LDLIBS) -o $@

# ---- tests ----
# test-one: one build variant's suite (the variables above pick it)
test-one: $(B)/run_tests $(B)/dc
	@mkdir -p $(B)/tmp
	$(PYTHON) tools/refs/prepare_tests.py $(B)/tmp tests/fixtures
	$(B)/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/dc --fixtures tests/fixtures
test-single: $(B)/single/run_tests $(B)/single/dc
	@mkdir -p $(B)/tmp
	$(PYTHON) tools/refs/prepare_tests.py $(B)/tmp tests/fixtures
	$(B)/single/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/single/dc --fixtures tests/fixtures
# test-embed: a program with its own stb_image embeds the single file; only
# dc_ API symbols are exported, and it classifies a sample as ./dc does
test-embed: build/single/dc.h $(B)/dc
	CC="$(CC)" CFLAGS="$(ALL_CFLAGS)" LDLIBS="$(LDLIBS)" sh tests/embed.sh $(B)/embed $(B)/dc
test-tools:
	$(PYTHON) tools/convert/test_tools.py
# test-lone: the committed HEAD cloned into an empty temporary folder passes
# the release suite there, with nothing else beside it
test-lone:
	MAKE="$(MAKE)" PYTHON="$(PYTHON)" sh tests/lone_clone.sh test-one
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
	$(PYTHON) tools/refs/prepare_tests.py $(B)/tmp tests/fixtures
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell DC_KERNELS=avx2 \
	  $(VALGRIND) $(B)/run_tests --data tests/data --tmp $(B)/tmp --dc $(B)/dc --fixtures tests/fixtures $(VG_FILTER)

# make test: ./dc and libdc.a (as make builds them, so the README's commands
# work after it), then all suites and one summary line ("N passed, M failed")
test: all
	@PYTHON="$(PYTHON)" MAKE="$(MAKE)" CC="$(CC)" sh tests/run.sh

# ---- bench ----
$(B)/bench/conv_bench.o $(B)/bench/q8_bench.o: bench/bench.h
$(B)/conv_bench: $(B)/bench/conv_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/dit_bench: $(B)/bench/dit_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/sd_bench: $(B)/bench/sd_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/q8_bench: $(B)/bench/q8_bench.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/many_classes: $(B)/bench/many_classes.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
$(B)/int8_layers: $(B)/bench/int8_layers.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@
# the quick benches; bench/dit_bench.sh and bench/sd_bench.sh are the long
# full-size ones, against PyTorch in the same run
bench: $(B)/conv_bench $(B)/dit_bench $(B)/sd_bench $(B)/q8_bench
	$(B)/conv_bench
	$(B)/q8_bench

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
	$(PYTHON) tools/train/train_fmnist.py vae models/fmnist/vae --minutes $(TRAIN_MINUTES_VAE)
	$(PYTHON) tools/train/train_fmnist.py dit models/fmnist/dit --vae models/fmnist/vae --minutes $(TRAIN_MINUTES_DIT)
	$(PYTHON) tools/train/train_fmnist_sd.py models/fmnist/sd --vae models/fmnist/vae --minutes $(TRAIN_MINUTES_SD)
	$(MAKE) ship
# Each model is converted, calibrated for --stop calibrated on 200
# training images (never test images), and converted again with that
# calibration stored in it (data/calibration/ keeps the measured files).
FMNIST = /usr/share/datasets/fashion-mnist
CALIBRATE = ./dc eval $(FMNIST)/train-images-idx3-ubyte.gz $(FMNIST)/train-labels-idx1-ubyte.gz \
  --subset data/calibration/train_images.txt --samples 50 --keep 1 --quiet
# Each model records how it was made in terms a user can repeat (the
# training scripts and their options, the dataset), never this machine's paths.
TRAINED_VAE = tools/train/train_fmnist.py vae --minutes $(TRAIN_MINUTES_VAE)
SHIP_META = --meta 'dc.dataset=Fashion-MNIST, training split (Debian package dataset-fashion-mnist)'
DIT_CONVERT = $(PYTHON) tools/convert/convert.py models/fmnist/dit --family dit --vae models/fmnist/vae \
  --class-names data/classes/fashion_mnist.txt --dtype f16 -o data/models/fmnist-dit.dcw $(SHIP_META) \
  --meta 'dc.training=make train: $(TRAINED_VAE), then tools/train/train_fmnist.py dit --vae (that VAE) --minutes $(TRAIN_MINUTES_DIT) (seed 0)'
SD_CONVERT = $(PYTHON) tools/convert/convert.py models/fmnist/sd --family sd \
  --class-names data/classes/fashion_mnist.txt --template "a photo of a {}." --dtype q8 -o data/models/fmnist-sd.dcw $(SHIP_META) \
  --meta 'dc.training=make train: $(TRAINED_VAE), then tools/train/train_fmnist_sd.py --vae (that VAE) --minutes $(TRAIN_MINUTES_SD) (seed 0)'
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

# ---- glyphs1k: 1,000 classes (Chinese characters) rendered from Debian's fonts (docs/glyphs1k.md) ----
# The fonts, the texts the characters are counted in, Pillow and torch: not needed by make setup or make test.
GLYPH_PACKAGES = fonts-arphic-ukai fonts-arphic-uming fonts-arphic-gkai00mp fonts-arphic-gbsn00lp \
                 fonts-arphic-bkai00mp fonts-arphic-bsmi00lp fonts-wqy-microhei fonts-wqy-zenhei \
                 fonts-noto-cjk fonts-noto-cjk-extra fortunes-zh python3-pil python3-numpy python3-torch
# steps, not minutes: the same model on a quiet or a busy machine (6,000 DiT steps: ~62 min on 2 quiet cores)
GLYPH_VAE_STEPS ?= 343
GLYPH_DIT_STEPS ?= 6000
glyphs1k:
	$(call apt_install,glyphs1k,$(GLYPH_PACKAGES))
	rm -rf build/glyphs1k
	$(PYTHON) tools/train/make_glyphs1k.py --out build/glyphs1k
train-glyphs:
	$(PYTHON) tools/train/train_glyphs.py vae models/glyphs1k/vae --steps $(GLYPH_VAE_STEPS)
	$(PYTHON) tools/train/train_glyphs.py dit models/glyphs1k/dit --vae models/glyphs1k/vae --steps $(GLYPH_DIT_STEPS)
# GLYPH_CALIBRATION='--calibration FILE' stores a dc calibrate file (made on unlabelled training renders) in the model
ship-glyphs:
	@mkdir -p data/models
	$(PYTHON) tools/convert/convert.py models/glyphs1k/dit --family dit --vae models/glyphs1k/vae \
	  --class-names data/classes/glyphs1k.txt --dtype f16 -o data/models/glyphs1k-dit.dcw \
	  --meta 'dc.dataset=glyphs1k, training fonts (make glyphs1k: tools/train/make_glyphs1k.py, Debian font packages)' \
	  --meta 'dc.training=make train-glyphs: tools/train/train_glyphs.py vae --steps $(GLYPH_VAE_STEPS), then tools/train/train_glyphs.py dit --vae (that VAE) --steps $(GLYPH_DIT_STEPS) (seed 0)' \
	  $(GLYPH_CALIBRATION)

# ---- install: driver, static and shared library, header, pkg-config, data, man page ----
# make install PREFIX=/usr/local [DESTDIR=/staging]; make uninstall with the same.
# libdc.so exports the functions dc.h declares and nothing else (a version
# script made from dc.h: the library's internals, dc__*, and stb stay local).
VERSION := $(shell sed -n 's/.*DC_VERSION_STRING "\(.*\)".*/\1/p' dc.h)
SOVERSION := $(firstword $(subst ., ,$(VERSION)))
SONAME = libdc.so.$(SOVERSION)
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share/dc
MANDIR ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
LDCONFIG ?= ldconfig
PIC_OBJ = $(LIB_SRC:%.c=$(B)/pic/%.o)

shared: $(B)/libdc.so
$(B)/pic/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@
# every function declared at the start of a line in dc.h
$(B)/libdc.map: dc.h Makefile
	@mkdir -p $(dir $@)
	{ echo '{ global:'; sed -n 's/^[a-z][^(]*[ *]\(dc_[a-z0-9_]*\)(.*/    \1;/p' dc.h; echo '  local: *; };'; } > $@
$(B)/libdc.so.$(VERSION): $(PIC_OBJ) $(B)/libdc.map
	$(CC) $(ALL_CFLAGS) -shared -Wl,-soname,$(SONAME) -Wl,--version-script,$(B)/libdc.map -Wl,-z,defs \
	  $(PIC_OBJ) $(LDLIBS) -o $@
$(B)/libdc.so: $(B)/libdc.so.$(VERSION)
	ln -sf libdc.so.$(VERSION) $(B)/$(SONAME)
	ln -sf libdc.so.$(VERSION) $@

# the installed driver finds its data in DATADIR; the stamp rebuilds it when DATADIR changes
$(B)/inst/datadir: FORCE
	@mkdir -p $(dir $@)
	@echo '$(DATADIR)' | cmp -s - $@ || echo '$(DATADIR)' > $@
$(B)/inst/driver.o: tools/driver/driver.c tools/driver/driver.h dc.h $(B)/inst/datadir
	$(CC) $(ALL_CFLAGS) -DDC_DATADIR='"$(DATADIR)"' -c $< -o $@
$(B)/inst/dc: $(filter-out %/driver.o,$(DRIVER_SRC:%.c=$(B)/%.o)) $(B)/inst/driver.o $(B)/libdc.a
	$(CC) $(ALL_CFLAGS) $^ $(LDLIBS) -o $@

pc: $(B)/dc.pc
under_prefix = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))
$(B)/dc.pc: FORCE
	@mkdir -p $(dir $@)
	@{ echo 'prefix=$(PREFIX)'; echo 'libdir=$(call under_prefix,$(LIBDIR))'; \
	  echo 'includedir=$(call under_prefix,$(INCLUDEDIR))'; echo 'datadir=$(call under_prefix,$(DATADIR))'; echo; \
	  echo 'Name: dc'; echo 'Description: diffusion models as zero-shot image classifiers'; \
	  echo 'Version: $(VERSION)'; echo 'Libs: -L$${libdir} -ldc'; \
	  echo 'Libs.private: $(BLAS_LIBS) -lm -fopenmp'; echo 'Cflags: -I$${includedir}'; } > $@.tmp
	@cmp -s $@.tmp $@ && rm $@.tmp || mv $@.tmp $@

# the man page with the data folder's real path in it
man: $(B)/dc.1
$(B)/dc.1: docs/dc.1 $(B)/inst/datadir
	sed 's|@DATADIR@|$(DATADIR)|g' docs/dc.1 > $@

INSTALL_DATA = $(wildcard data/presets/*.txt data/classes/*.txt)
INSTALL_MODELS = $(filter-out data/models/default.dcw,$(wildcard data/models/*.dcw))
install: $(B)/inst/dc $(B)/libdc.a $(B)/libdc.so $(B)/dc.pc $(B)/dc.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR)/presets $(DESTDIR)$(DATADIR)/classes $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(B)/inst/dc $(DESTDIR)$(BINDIR)/dc
	install -m 644 $(B)/libdc.a $(DESTDIR)$(LIBDIR)/libdc.a
	install -m 755 $(B)/libdc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdc.so.$(VERSION)
	ln -sf libdc.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libdc.so
	install -m 644 dc.h $(DESTDIR)$(INCLUDEDIR)/dc.h
	install -m 644 $(B)/dc.pc $(DESTDIR)$(PKGCONFIGDIR)/dc.pc
	install -m 644 $(INSTALL_MODELS) $(DESTDIR)$(DATADIR)/models/
	ln -sf $$(readlink data/models/default.dcw) $(DESTDIR)$(DATADIR)/models/default.dcw
	install -m 644 $(filter data/presets/%,$(INSTALL_DATA)) $(DESTDIR)$(DATADIR)/presets/
	install -m 644 $(filter data/classes/%,$(INSTALL_DATA)) $(DESTDIR)$(DATADIR)/classes/
	install -m 644 $(B)/dc.1 $(DESTDIR)$(MANDIR)/man1/dc.1
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG) || true; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/dc $(DESTDIR)$(LIBDIR)/libdc.a $(DESTDIR)$(LIBDIR)/libdc.so \
	  $(DESTDIR)$(LIBDIR)/$(SONAME) $(DESTDIR)$(LIBDIR)/libdc.so.$(VERSION) $(DESTDIR)$(INCLUDEDIR)/dc.h \
	  $(DESTDIR)$(PKGCONFIGDIR)/dc.pc $(DESTDIR)$(MANDIR)/man1/dc.1
	rm -f $(addprefix $(DESTDIR)$(DATADIR)/,$(INSTALL_MODELS:data/%=%) models/default.dcw $(INSTALL_DATA:data/%=%))
	-rmdir $(DESTDIR)$(DATADIR)/models $(DESTDIR)$(DATADIR)/presets $(DESTDIR)$(DATADIR)/classes $(DESTDIR)$(DATADIR)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ]; then $(LDCONFIG) || true; fi

# test-install: install into a temporary prefix, use it as a C program and a user would;
# test-python: the Python module on build/release/libdc.so against the driver
test-install:
	$(PYTHON) tests/test_install.py --make "$(MAKE)"
test-python: $(B)/libdc.so $(B)/dc
	DC_LIBRARY=$(B)/libdc.so $(PYTHON) python/tests/run.py --dc $(B)/dc

# ---- setup: Debian packages only ----
DEB_PACKAGES = gcc make libc6-dev libopenblas-openmp-dev libstb-dev python3 python3-numpy \
               dataset-fashion-mnist clang libomp-dev libclang-rt-14-dev pkg-config \
               libopenmpi-dev openmpi-bin libsimde-dev
# training and reference generators only (not needed by make test): python3-torch python3-pil
# $(call apt_install,TARGET,PACKAGES): installs those of PACKAGES that are missing (root or sudo only then)
define apt_install
	@SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	missing=$$(for p in $(2); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ] && [ -n "$$SUDO" ] && ! command -v sudo >/dev/null; then \
	  echo "make $(1) installs Debian packages ($$missing): run it as root"; exit 1; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	else echo "all packages present: $(2)"; fi
endef
setup:
	$(call apt_install,setup,$(DEB_PACKAGES))

clean:
	rm -rf build dc libdc.a

# ---- fuzzing (fuzz/Makefile.inc) and the arm64 test under qemu ----
include fuzz/Makefile.inc
.PHONY: test-arm64
test-arm64:
	sh tools/arm64_test.sh $(ARM64_FLAGS)
