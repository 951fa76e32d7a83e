/* tests/test.h - dc's small test harness.

   A test is a void function; CHECK records a failure with file:line and
   carries on, so one run reports every broken check. Comparisons against
   references print the max abs/rel error per tensor (llm.c style), so the
   log shows how close each layer is, not only whether it passed.
   The runner's last line is "N passed, M failed, K skipped". */
#ifndef DC_TEST_H
#define DC_TEST_H

#include <stdio.h>
#include <string.h>
#include "../dc.h"
#include "../nn/nn.h"
#include "../dc_internal.h"

typedef struct {
    const char *data;     /* tests/data */
    const char *tmp;      /* scratch folder for written files */
    const char *dc;       /* the driver binary under test */
    const char *fixtures; /* tests/fixtures: the golden fixtures */
} test_env;
extern test_env T;

extern int t_failed_checks; /* failures inside the current test */
extern int t_skip;          /* set by SKIP */

void t_fail(const char *file, int line, const char *fmt, ...);
#define CHECK(cond, ...) \
    do { if (!(cond)) t_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
/* SKIP is only for a test this CPU, OS or build cannot run: its message
   names the missing feature. What the repository or `make setup` provides
   (fixtures, shipped models, the prepared .dcw files, the Fashion-MNIST
   package) is NEEDed: its absence fails the test, naming what is missing. */
#define SKIP(...) \
    do { t_skip = 1; printf("  skip: "); printf(__VA_ARGS__); printf("\n"); return; } while (0)
#define NEED(cond, ...) \
    do { if (!(cond)) { t_fail(__FILE__, __LINE__, __VA_ARGS__); return; } } while (0)
/* 1 if PATH can be read */
int t_readable(const char *path);

/* int8 compute runs only where an int8 SIMD variant passes its self-check
   (a PORTABLE build has none: there int8 compute is refused by design) */
#define NEED_INT8() \
    do { \
        char int8_why_[512]; \
        if (!dc__q8_best(int8_why_, sizeof int8_why_)) \
            SKIP("int8 compute needs a SIMD int8 variant: none here (PORTABLE build or CPU) %s", int8_why_); \
    } while (0)

/* Compares n floats: passes when every |got - want| <= atol + rtol * |want|.
   Prints "  name: max abs err A, max rel err R (n values)". Returns 1 if ok. */
int t_close(const char *name, const float *got, const float *want, size_t n, double atol,
            double rtol);

/* Loads DATA/<rel>.npy as f32 (fails the test and returns 0 if it cannot). */
int t_npy(dc__npy *a, const char *fmt, ...);
/* Path helpers: into a static rotating buffer. */
const char *t_path(const char *dir, const char *fmt, ...);
/* Starts int8 compute on w (before a network is built on it) with the
   variant dc_model_load would pick here (dc__q8_best), packing every
   matrix (the small test networks would keep most f32 under
   DC_INT8_MIN_SIDE). */
dc_status t_int8_begin(dc__weights *w, dc_error *err);
/* Opens a .dcw file (checksum verified); fails the test with the loader's
   message and returns 0 if it cannot. */
int t_weights(dc__weights *w, const char *path);
/* A whole file, NUL-terminated (malloc'ed; its size in *size unless NULL),
   or NULL if it cannot be read. */
char *t_read_file(const char *path, size_t *size);

void t_run(const char *name, void (*fn)(void));
#define RUN(fn) t_run(#fn, fn)

/* The suites (one per test file). */
void suite_kernels(void);
void suite_layers(void);
void suite_npy(void);
void suite_weights(void);
void suite_cpu(void);
void suite_driver(void);
void suite_durable(void);
void suite_dit(void);
void suite_tokenizer(void);
void suite_clip(void);
void suite_vae(void);
void suite_unet(void);
void suite_classify(void);
void suite_image(void);
void suite_docs(void);
void suite_threads(void);
void suite_q8(void);

/* Tolerances, each justified by a measurement (see the test that uses it). */
/* SIMD vs scalar twin: the vector exp has < 2e-7 relative error and A&S erf
   < 1.5e-7 absolute; worst seen over the act test grid: 4e-7 relative. */
#define DC_TOL_SIMD_REL 2e-6
#define DC_TOL_SIMD_ABS 1e-6
/* An f32 layer against a float64 reference: sgemm accumulates K products
   in f32 (K <= 400 here); worst seen 1e-6. */
#define DC_TOL_LAYER 1e-5

#endif
