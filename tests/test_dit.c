/* tests/test_dit.c - DiT against the golden fixture made with the original
   facebookresearch/DiT code (tests/fixtures/dit), converted from both
   the .pt state dict and the safetensors file, in f32, f16 and q8; and
   against torch references of other sizes (tests/data/dit, made by
   tools/refs/make_dit_refs.py). */
#include "test.h"

#include <math.h>
#include <stdlib.h>

/* case.json's tolerance: max |out - expected| <= 2e-4 (10x the fp32-vs-fp64
   deviation of the PyTorch reference). */
#define DIT_FIXTURE_TOL 2e-4
/* f16 / q8 weights on this fixture (outputs up to 4.2): measured max abs
   error 1.8e-3 (f16) and 4.8e-2 (q8, per-row int8); the bounds leave about
   2-3x headroom, so a decoding bug (errors of order 1) cannot pass. */
#define DIT_F16_TOL 5e-3
#define DIT_Q8_TOL 1e-1
/* int8 compute as dc_model_load applies it (weights per output row,
   activations per token, exact int32 sums, nn/q8.h; the patch embedding
   and final projection stay f32, DC_INT8_MIN_SIDE): measured max abs error
   5.6e-2 from the f32 file and 6.8e-2 from the q8 file, 1.2x and 1.4x the
   q8 weights' own 4.8e-2 (every matrix in int8: 7.3e-2 and 7.5e-2). The
   bound leaves 2x headroom or more, so a packing or scaling bug (errors of
   order 1) cannot pass. */
#define DIT_INT8_TOL 1.5e-1

/* One forward of the DiT in MODEL_PATH on the fixture inputs of DIR
   (x, t, y); the model stays loaded until dit_run_free. */
typedef struct {
    dc_model *m;
    dc_ctx *c;
    dc_tensor in[3], out;
} dit_run;

static dc_status dit_run_fixture(dit_run *r, const char *model_path, const char *dir, const dc_load_opts *opts,
                                 dc_error *err)
{
    memset(r, 0, sizeof *r);
    dc_status st;
    if ((st = dc_model_load(&r->m, model_path, opts, err)) != DC_OK || (st = dc_ctx_new(&r->c, r->m, err)) != DC_OK ||
        (st = dc_tensor_load_npy(&r->in[0], t_path(dir, "x.npy"), err)) != DC_OK ||
        (st = dc_tensor_load_npy(&r->in[1], t_path(dir, "t.npy"), err)) != DC_OK ||
        (st = dc_tensor_load_npy(&r->in[2], t_path(dir, "y.npy"), err)) != DC_OK)
        return st;
    return dc_forward(r->c, "dit", r->in, 3, &r->out, err);
}

static void dit_run_free(dit_run *r)
{
    for (int i = 0; i < 3; i++) dc_tensor_free(&r->in[i]);
    dc_tensor_free(&r->out);
    dc_ctx_free(r->c);
    dc_model_free(r->m);
}

static double run_dit_opts(const char *model_path, const char *dir, const char *expect, double tol,
                           const char *label, const dc_load_opts *opts)
{
    dc_error err;
    dit_run r;
    dc_tensor want = {0};
    double maxerr = -1;
    if (dit_run_fixture(&r, model_path, dir, opts, &err) != DC_OK ||
        dc_tensor_load_npy(&want, t_path(dir, "%s", expect), &err) != DC_OK) {
        CHECK(0, "%s: %s", label, err.msg);
    } else {
        const dc_tensor *out = &r.out;
        int64_t n = 1;
        for (int i = 0; i < want.ndim; i++) n *= want.shape[i];
        CHECK(out->ndim == want.ndim && !memcmp(out->shape, want.shape, sizeof(int64_t) * (size_t)want.ndim),
              "%s: output shape differs", label);
        maxerr = 0;
        double maxref = 0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)out->f32[i] - want.f32[i]);
            if (!(d <= maxerr)) maxerr = d;
            if (fabs(want.f32[i]) > maxref) maxref = fabs(want.f32[i]);
        }
        printf("  %s: max abs err %.3g (max |ref| %.3g), tolerance %.3g\n", label, maxerr, maxref, tol);
        if (opts && opts->compute == DC_COMPUTE_INT8)
            CHECK(!strcmp(dc_model_compute(r.m), "int8"), "%s: the model computes in %s", label,
                  dc_model_compute(r.m));
        CHECK(maxerr <= tol, "%s: max abs err %g > %g", label, maxerr, tol);
    }
    dc_tensor_free(&want);
    dit_run_free(&r);
    return maxerr;
}

static double run_dit(const char *model_path, const char *dir, const char *expect, double tol,
                      const char *label)
{
    return run_dit_opts(model_path, dir, expect, tol, label, NULL);
}

static int have_fixture(void)
{
    return t_readable(t_path(T.fixtures, "dit/out.npy"));
}

static void dit_should_match_the_original_code_from_the_pt_checkpoint(void)
{
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    run_dit(t_path(T.tmp, "dit_pt_f32.dcw"), t_path(T.fixtures, "dit"), "out.npy", DIT_FIXTURE_TOL,
            "DiT fixture, .pt, f32");
}

static void dit_should_match_the_original_code_from_safetensors(void)
{
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    run_dit(t_path(T.tmp, "dit_st_f32.dcw"), t_path(T.fixtures, "dit"), "out.npy", DIT_FIXTURE_TOL,
            "DiT fixture, safetensors, f32");
}

static void dit_should_stay_close_with_f16_and_q8_weights(void)
{
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    run_dit(t_path(T.tmp, "dit_pt_f16.dcw"), t_path(T.fixtures, "dit"), "out.npy", DIT_F16_TOL,
            "DiT fixture, f16 weights");
    run_dit(t_path(T.tmp, "dit_pt_q8.dcw"), t_path(T.fixtures, "dit"), "out.npy", DIT_Q8_TOL,
            "DiT fixture, q8 weights");
}

static void dit_should_stay_close_in_int8(void)
{
    NEED_INT8();
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    dc_load_opts o = {0, DC_COMPUTE_INT8};
    double e32 = run_dit_opts(t_path(T.tmp, "dit_pt_f32.dcw"), t_path(T.fixtures, "dit"), "out.npy",
                              DIT_INT8_TOL, "DiT fixture, int8 compute", &o);
    run_dit_opts(t_path(T.tmp, "dit_pt_q8.dcw"), t_path(T.fixtures, "dit"), "out.npy", DIT_INT8_TOL,
                 "DiT fixture, q8 weights, int8 compute", &o);
    /* int8 really ran: its error is quantisation's, far above f32 rounding */
    CHECK(e32 > DIT_FIXTURE_TOL, "int8 compute gave f32's result (max abs err %g)", e32);
}

/* kB of the pages of FILE's mappings that are resident, and whether one
   of them is inaccessible (---p), from /proc/self/smaps; -1 where unknown */
static long file_rss_kb(const char *file, int *has_none)
{
    *has_none = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[1024];
    long kb = 0, v;
    int ours = 0;
    while (fgets(line, sizeof line, f)) {
        char perms[8], path[900] = "";
        unsigned long a, b;
        /* a mapping's first line: "start-end perms offset dev inode [path]" */
        if (sscanf(line, "%lx-%lx %7s %*x %*s %*u %899s", &a, &b, perms, path) >= 3) {
            ours = path[0] && strstr(path, file) != NULL;
            if (ours && !strcmp(perms, "---p")) *has_none = 1;
        } else if (sscanf(line, "Rss: %ld kB", &v) == 1 && ours) {
            kb += v;
        }
    }
    fclose(f);
    return kb;
}

/* With int8 compute a packed weight's pages of the mapping are released and
   made inaccessible, so a forward cannot map them back (on recent kernels
   fault-around on a neighbouring bias maps whole large folios of the file). */
static void packed_weights_should_leave_the_mapping(void)
{
#ifndef __linux__
    SKIP("reads /proc/self/smaps (Linux only)");
#else
    NEED_INT8();
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    const char *path = t_path(T.tmp, "dit_pt_f32.dcw");
    FILE *f = fopen(path, "rb");
    NEED(f, "%s missing (prepared from tests/fixtures)", path);
    fseek(f, 0, SEEK_END);
    long size_kb = ftell(f) / 1024;
    fclose(f);
    dc_load_opts o = {0, DC_COMPUTE_INT8};
    dc_error err;
    dit_run r;
    if (dit_run_fixture(&r, path, t_path(T.fixtures, "dit"), &o, &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
    } else { /* the model is still loaded: its mapping is in smaps */
        int none;
        long rss = file_rss_kb("dit_pt_f32.dcw", &none);
        printf("  model file %ld kB, resident after a forward %ld kB\n", size_kb, rss);
        CHECK(none, "no inaccessible region of %s in /proc/self/smaps", path);
        /* 13 of its matrices (most of its bytes) are packed */
        CHECK(rss >= 0 && rss < size_kb / 2, "%ld of %ld kB of the file resident", rss, size_kb);
    }
    dit_run_free(&r);
#endif
}

static void dit_should_match_torch_for_other_sizes(void)
{
    static const char *cases[] = {"p4_odd_heads", "p8_wide", "s32_p2", "s64_p4"};
    for (int i = 0; i < 4; i++) {
        char label[64];
        snprintf(label, sizeof label, "DiT %s (torch reference)", cases[i]);
        run_dit(t_path(T.tmp, "dit_%s.dcw", cases[i]), t_path(T.data, "dit/%s", cases[i]), "out.npy",
                DIT_FIXTURE_TOL, label);
    }
}

static void dit_should_refuse_bad_inputs_by_name(void)
{
    NEED(have_fixture(), "tests/fixtures/dit missing (part of the repository)");
    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    if (dc_model_load(&m, t_path(T.tmp, "dit_st_f32.dcw"), NULL, &err) != DC_OK ||
        dc_ctx_new(&c, m, &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        dc_model_free(m);
        return;
    }
    float x[2 * 4 * 8 * 8] = {0}, t[2] = {1, 2};
    int64_t y[2] = {3, 11};
    dc_tensor in[3] = {{4, {2, 4, 8, 8}, x, NULL}, {1, {2}, t, NULL}, {1, {2}, NULL, y}}, out;
    CHECK(dc_forward(c, "dit", in, 3, &out, &err) == DC_ERR_INVALID &&
          strstr(err.msg, "class id 11 out of range"), "class id: %s", err.msg);
    in[0].shape[2] = 16;
    CHECK(dc_forward(c, "dit", in, 3, &out, &err) == DC_ERR_INVALID &&
          strstr(err.msg, "input 1 (x) has shape [2, 4, 16, 8], expected [*, 4, 8, 8]"), "x shape: %s", err.msg);
    in[0].shape[2] = 8;
    in[1].shape[0] = 3;
    CHECK(dc_forward(c, "dit", in, 3, &out, &err) == DC_ERR_INVALID && strstr(err.msg, "input 2 (t)"),
          "t shape: %s", err.msg);
    in[1].shape[0] = 2;
    in[2].i64 = NULL, in[2].f32 = t;
    CHECK(dc_forward(c, "dit", in, 3, &out, &err) == DC_ERR_INVALID && strstr(err.msg, "must be integer"),
          "y dtype: %s", err.msg);
    CHECK(dc_forward(c, "dit", in, 2, &out, &err) == DC_ERR_INVALID && strstr(err.msg, "3 inputs"),
          "count: %s", err.msg);
    CHECK(dc_forward(c, "decoder", in, 3, &out, &err) == DC_ERR_INVALID && strstr(err.msg, "unknown component"),
          "component: %s", err.msg);
    CHECK(dc_forward(c, "unet", in, 3, &out, &err) == DC_ERR_INVALID && strstr(err.msg, "has no UNet"),
          "absent component: %s", err.msg);
    dc_ctx_free(c);
    dc_model_free(m);
}

void suite_dit(void)
{
    RUN(dit_should_match_the_original_code_from_the_pt_checkpoint);
    RUN(dit_should_match_the_original_code_from_safetensors);
    RUN(dit_should_stay_close_with_f16_and_q8_weights);
    RUN(dit_should_stay_close_in_int8);
    RUN(packed_weights_should_leave_the_mapping);
    RUN(dit_should_match_torch_for_other_sizes);
    RUN(dit_should_refuse_bad_inputs_by_name);
}
