/* tests/test_threads.c - dc under concurrent use, as dc.h promises it:
   "a dc_model is read-only after dc_model_load, so several threads may use
   one model at once", one dc_ctx per thread.

   Two POSIX threads run the DiT forward ("dit" through the public
   dc_forward) many times at once, in two arrangements:
     - each thread loads its own model from the same .dcw file (concurrent
       mmap, checksum and build), with its own context;
     - one model shared by both threads, each with its own context (the
       f16/q8 decode scratch and the activation arena live in the context).
   Every output must equal, bit for bit, the output of the same call made
   before any thread started. A data race on shared state (a mutable field
   in the model, a static buffer, BLAS's own buffers when called from
   several threads) shows up as a differing bit or a crash; running this
   file under the ASan build, or with -fsanitize=thread, sharpens it.

   Models: the golden DiT fixture converted by tools/refs/prepare_tests.py
   (dit_st_f32.dcw, and dit_pt_q8.dcw for the decode-scratch path) from
   tests/fixtures, and the small DiT made from tests/data/dit/s32_p2. A
   missing model fails the test. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <pthread.h>
#include <stdlib.h>

#define THR_ITERS 40     /* forwards per thread per test */
#define THR_THREADS 2

typedef struct {
    char model[1024];    /* .dcw path */
    char inputs[1024];   /* folder with x.npy, t.npy, y.npy */
} thr_case;

/* What one thread does and what it found. */
typedef struct {
    const char *model_path;   /* load this model in the thread (own model), or */
    const dc_model *shared;   /* use this one (shared model) */
    const dc_tensor *in;      /* [3] x, t, y: read-only, shared */
    const dc_tensor *want;    /* the single-threaded output */
    int64_t n;                /* floats in want */
    int mismatches;           /* iterations whose output differed */
    int first_bad;            /* first differing iteration, -1 if none */
    float *bad_out;           /* copy of the first differing output (for the report) */
    int threads;              /* the reference's dc_get_threads(): see thr_main */
    dc_status status;
    dc_error err;
} thr_job;

static int64_t thr_numel(const dc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static void *thr_main(void *arg)
{
    thr_job *j = arg;
    dc_model *own = NULL;
    dc_ctx *c = NULL;
    j->first_bad = -1;
    /* OpenMP's thread count is a per-thread setting, and a new thread starts
       from OMP_NUM_THREADS, not from what the main thread set; OpenBLAS
       partitions an sgemm by it, which can move the last bits. So the
       thread runs with the reference's count: the comparison is then about
       shared state, not about summation order. */
    dc_set_threads(j->threads);
    if (j->model_path && (j->status = dc_model_load(&own, j->model_path, NULL, &j->err)) != DC_OK)
        return NULL;
    if ((j->status = dc_ctx_new(&c, own ? own : j->shared, &j->err)) != DC_OK) goto done;
    for (int it = 0; it < THR_ITERS; it++) {
        dc_tensor out = {0};
        if ((j->status = dc_forward(c, "dit", j->in, 3, &out, &j->err)) != DC_OK) goto done;
        if (thr_numel(&out) != j->n || memcmp(out.f32, j->want->f32, sizeof(float) * (size_t)j->n)) {
            if (j->first_bad < 0 && thr_numel(&out) == j->n) {
                j->first_bad = it;
                j->bad_out = malloc(sizeof(float) * (size_t)j->n);
                if (j->bad_out) memcpy(j->bad_out, out.f32, sizeof(float) * (size_t)j->n);
            }
            j->mismatches++;
        }
        dc_tensor_free(&out);
    }
done:
    dc_ctx_free(c);
    dc_model_free(own);
    return NULL;
}

/* Loads the inputs and computes the reference with one context, no threads. */
static int thr_reference(const thr_case *k, dc_model **m, dc_tensor in[3], dc_tensor *want)
{
    dc_error err;
    dc_ctx *c = NULL;
    int ok = dc_model_load(m, k->model, NULL, &err) == DC_OK && dc_ctx_new(&c, *m, &err) == DC_OK &&
             dc_tensor_load_npy(&in[0], t_path(k->inputs, "x.npy"), &err) == DC_OK &&
             dc_tensor_load_npy(&in[1], t_path(k->inputs, "t.npy"), &err) == DC_OK &&
             dc_tensor_load_npy(&in[2], t_path(k->inputs, "y.npy"), &err) == DC_OK &&
             dc_forward(c, "dit", in, 3, want, &err) == DC_OK;
    CHECK(ok, "%s: %s", k->model, err.msg);
    dc_ctx_free(c);
    return ok;
}

/* Runs THR_THREADS threads over one case; shared = 1: one model for all. */
static void thr_run_case(const thr_case *k, int shared)
{
    dc_model *m = NULL;
    dc_tensor in[3], want = {0};
    memset(in, 0, sizeof in);
    if (thr_reference(k, &m, in, &want)) {
        thr_job jobs[THR_THREADS];
        pthread_t tid[THR_THREADS];
        int started[THR_THREADS] = {0};
        memset(jobs, 0, sizeof jobs);
        for (int i = 0; i < THR_THREADS; i++) {
            jobs[i].model_path = shared ? NULL : k->model;
            jobs[i].shared = shared ? m : NULL;
            jobs[i].in = in;
            jobs[i].want = &want;
            jobs[i].n = thr_numel(&want);
            jobs[i].threads = dc_get_threads();
            started[i] = pthread_create(&tid[i], NULL, thr_main, &jobs[i]) == 0;
            CHECK(started[i], "pthread_create failed");
        }
        for (int i = 0; i < THR_THREADS; i++) {
            if (!started[i]) continue;
            pthread_join(tid[i], NULL);
            thr_job *j = &jobs[i];
            CHECK(j->status == DC_OK, "thread %d: %s", i, j->err.msg);
            printf("  %s, %s model, thread %d: %d of %d outputs differ from the single-threaded one\n",
                   k->model, shared ? "shared" : "own", i, j->mismatches, THR_ITERS);
            if (j->bad_out) { /* print how far off the first bad one was */
                char name[64];
                snprintf(name, sizeof name, "thread %d, iteration %d", i, j->first_bad);
                t_close(name, j->bad_out, want.f32, (size_t)j->n, 0, 0);
            }
            CHECK(j->mismatches == 0, "thread %d: %d outputs are not bit-identical", i, j->mismatches);
            free(j->bad_out);
        }
    }
    for (int i = 0; i < 3; i++) dc_tensor_free(&in[i]);
    dc_tensor_free(&want);
    dc_model_free(m);
}

static int thr_have(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* The cases whose files exist; returns how many. */
static int thr_cases(thr_case *out)
{
    /* (t_path's buffers rotate, so each path is copied at once) */
    static const char *const models[3] = {"dit_st_f32.dcw", "dit_pt_q8.dcw", "dit_s32_p2.dcw"};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        thr_case *k = &out[n];
        snprintf(k->model, sizeof k->model, "%s", t_path(T.tmp, "%s", models[i]));
        snprintf(k->inputs, sizeof k->inputs, "%s",
                 i < 2 ? t_path(T.fixtures, "dit") : t_path(T.data, "dit/s32_p2"));
        if (thr_have(k->model) && thr_have(t_path(k->inputs, "x.npy"))) n++;
    }
    return n;
}

static void threads_should_each_load_their_own_model_and_agree_bit_for_bit(void)
{
    thr_case cases[3];
    int n = thr_cases(cases);
    NEED(n == 3, "%d of the 3 DiT .dcw files and inputs in %s (prepared by tools/refs/prepare_tests.py)", n, T.tmp);
    for (int i = 0; i < n; i++) thr_run_case(&cases[i], 0);
}

static void threads_should_share_one_model_with_two_contexts_and_agree_bit_for_bit(void)
{
    thr_case cases[3];
    int n = thr_cases(cases);
    NEED(n == 3, "%d of the 3 DiT .dcw files and inputs in %s (prepared by tools/refs/prepare_tests.py)", n, T.tmp);
    for (int i = 0; i < n; i++) thr_run_case(&cases[i], 1);
}

void suite_threads(void)
{
    RUN(threads_should_each_load_their_own_model_and_agree_bit_for_bit);
    RUN(threads_should_share_one_model_with_two_contexts_and_agree_bit_for_bit);
}
