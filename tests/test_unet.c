/* tests/test_unet.c - the Stable Diffusion UNet (nn/unet.c) against the
   golden fixture made with diffusers 0.25.1's UNet2DConditionModel
   (tests/fixtures/unet_sd1, an SD 1.x-like config), converted by
   tools/convert/convert_unet.py in f32, f16 and q8; against torch references for
   configs the fixture does not show (tests/data/unet, made by
   tools/refs/make_unet_refs.py, whose module reproduces the fixture to 1e-7):
   SD 2.x-style linear projections with per-block head lists, heads that do
   not divide the width, mixed block types, per-block layer counts, two
   transformer layers, flip_sin_to_cos false with freq_shift 1, centred
   input, a mid-block scale, non-square latents; and its refusals of bad
   sizes, missing, mis-shaped and unknown tensors. The model files are
   written by tools/refs/prepare_unet.py. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

/* case.json's tolerance: max |out - expected| <= 2e-5 (10x the fp32-vs-fp64
   deviation of diffusers run in float32). The torch references are float64
   too, of similar size and depth, so the same bound serves them. */
#define UNET_FIXTURE_TOL 2e-5
/* f16 / q8 weights on the fixture (outputs up to 2.5, std 0.56): measured
   max abs error 2.3e-3 (f16) and 6.6e-2 (q8, per-row int8); torch running
   the same rounded weights in float64 lands at the same 2.31e-3 / 6.60e-2,
   so this is the rounding of the weights, not of the engine. The bounds
   leave 2.2x and 2.3x headroom, so a decoding bug (errors of order 1)
   cannot pass. */
#define UNET_F16_TOL 5e-3
#define UNET_Q8_TOL 1.5e-1
/* int8 compute (weights per output row, activations per pixel / token,
   exact int32 sums; nn/q8.h): measured max abs error 9.9e-2 from the f32
   and from the q8 file, 1.5x the q8 weights' own 6.6e-2. The bound leaves
   2x headroom, so a packing or scaling bug (errors of order 1) cannot pass. */
#define UNET_INT8_TOL 2e-1
/* The same sample alone or inside a batch: only the sgemm blocking (the
   row count) differs, so the results agree to float32 rounding; measured
   max difference 1.4e-6 on outputs of order 1. */
#define UNET_BATCH_TOL 1e-5

typedef struct {
    dc__weights w;
    dc__unet m;
    dc__runner r;
    int open;
} unet_model;

/* dc__unet holds its pools inline (tens of KB): keep it off the stack.
   int8: pack the matrices for int8 compute, as dc_model_load does. */
static unet_model *unet_load_compute(const char *path, int int8)
{
    dc_error err;
    unet_model *um = calloc(1, sizeof *um);
    if (!um) {
        CHECK(0, "out of memory");
        return NULL;
    }
    if (dc__weights_open(&um->w, path, 1, &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        free(um);
        return NULL;
    }
    um->open = 1;
    if ((int8 && t_int8_begin(&um->w, &err) != DC_OK) ||
        dc__unet_build(&um->m, &um->w, "unet.", &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        dc__weights_close(&um->w);
        free(um);
        return NULL;
    }
    if (int8) dc__runner_use_int8(&um->r, &um->w);
    return um;
}

static unet_model *unet_load(const char *path) { return unet_load_compute(path, 0); }

static void unet_unload(unet_model *um)
{
    if (!um) return;
    dc__runner_free(&um->r);
    if (um->open) dc__weights_close(&um->w);
    free(um);
}

/* A case folder's inputs and expected output */
typedef struct {
    dc__npy sample, t, ctx, want;
    int n, h, w, L;
} unet_case;

static int unet_case_load(unet_case *c, const char *dir, const char *expect)
{
    dc_error err;
    memset(c, 0, sizeof *c);
    if (dc__npy_load_f32(&c->sample, t_path(dir, "sample.npy"), &err) != DC_OK ||
        dc__npy_load_f32(&c->t, t_path(dir, "timesteps.npy"), &err) != DC_OK ||
        dc__npy_load_f32(&c->ctx, t_path(dir, "encoder_hidden_states.npy"), &err) != DC_OK ||
        dc__npy_load_f32(&c->want, t_path(dir, "%s", expect), &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    if (c->sample.ndim != 4 || c->t.ndim != 1 || c->ctx.ndim != 3 || c->want.ndim != 4) {
        CHECK(0, "%s: unexpected input ranks", dir);
        return 0;
    }
    c->n = (int)c->sample.shape[0], c->h = (int)c->sample.shape[2], c->w = (int)c->sample.shape[3];
    c->L = (int)c->ctx.shape[1];
    return 1;
}

static void unet_case_free(unet_case *c)
{
    dc__npy_free(&c->sample), dc__npy_free(&c->t), dc__npy_free(&c->ctx), dc__npy_free(&c->want);
}

/* Runs the model file on the case in dir and compares with dir/expect:
   passes when max |out - want| <= tol (t_close prints the errors). Returns
   the max abs error, or -1 when it could not run. */
static double unet_compare_compute(const char *model_path, const char *dir, const char *expect, double tol,
                                   const char *label, int int8)
{
    double maxerr = -1;
    unet_case c;
    char d[512]; /* t_path's buffers rotate: keep a copy */
    snprintf(d, sizeof d, "%s", dir);
    dir = d;
    unet_model *um = unet_load_compute(model_path, int8);
    if (!um) return -1;
    if (!unet_case_load(&c, dir, expect)) {
        unet_case_free(&c);
        unet_unload(um);
        return -1;
    }
    const dc__unet *m = &um->m;
    int ok = c.sample.shape[1] == m->in_ch && c.t.shape[0] == c.n && c.ctx.shape[0] == c.n &&
             c.ctx.shape[2] == m->cross_dim && c.want.shape[0] == c.n && c.want.shape[1] == m->out_ch &&
             c.want.shape[2] == c.h && c.want.shape[3] == c.w;
    CHECK(ok, "%s: the case's shapes do not fit the model", label);
    float *out = ok ? malloc(sizeof(float) * (size_t)c.want.numel) : NULL;
    if (out) {
        dc_error err;
        dc_status st = dc__unet_forward(m, &um->r, out, c.sample.data, c.t.data, c.ctx.data, c.n, c.h, c.w,
                                        c.L, &err);
        CHECK(st == DC_OK, "%s: %s", label, err.msg);
        if (st == DC_OK) {
            const float *want = c.want.data;
            t_close(label, out, want, (size_t)c.want.numel, tol, 0);
            maxerr = 0;
            for (int64_t i = 0; i < c.want.numel; i++) {
                double d = fabs((double)out[i] - want[i]);
                if (!(d <= maxerr)) maxerr = d; /* NaN propagates */
            }
        }
    }
    free(out);
    unet_case_free(&c);
    unet_unload(um);
    return maxerr;
}

static double unet_compare(const char *model_path, const char *dir, const char *expect, double tol,
                           const char *label)
{
    return unet_compare_compute(model_path, dir, expect, tol, label, 0);
}

static int unet_have_fixture(void)
{
    return t_readable(t_path(T.fixtures, "unet_sd1/out_sample.npy"));
}

static void unet_should_match_diffusers_on_the_sd1_fixture(void)
{
    NEED(unet_have_fixture(), "tests/fixtures/unet_sd1 missing (part of the repository)");
    unet_compare(t_path(T.tmp, "unet_fixture_f32.dcw"), t_path(T.fixtures, "unet_sd1"), "out_sample.npy",
                 UNET_FIXTURE_TOL, "UNet fixture (SD1-like), f32");
}

static void unet_should_stay_close_with_f16_and_q8_weights(void)
{
    NEED(unet_have_fixture(), "tests/fixtures/unet_sd1 missing (part of the repository)");
    char dir[512]; /* t_path's buffers rotate: keep a copy */
    snprintf(dir, sizeof dir, "%s", t_path(T.fixtures, "unet_sd1"));
    unet_compare(t_path(T.tmp, "unet_fixture_f16.dcw"), dir, "out_sample.npy", UNET_F16_TOL,
                 "UNet fixture, f16 weights");
    unet_compare(t_path(T.tmp, "unet_fixture_q8.dcw"), dir, "out_sample.npy", UNET_Q8_TOL,
                 "UNet fixture, q8 weights");
}

static void unet_should_stay_close_in_int8(void)
{
    NEED_INT8();
    NEED(unet_have_fixture(), "tests/fixtures/unet_sd1 missing (part of the repository)");
    char dir[512]; /* t_path's buffers rotate: keep a copy */
    snprintf(dir, sizeof dir, "%s", t_path(T.fixtures, "unet_sd1"));
    double e32 = unet_compare_compute(t_path(T.tmp, "unet_fixture_f32.dcw"), dir, "out_sample.npy", UNET_INT8_TOL,
                                      "UNet fixture, int8 compute", 1);
    unet_compare_compute(t_path(T.tmp, "unet_fixture_q8.dcw"), dir, "out_sample.npy", UNET_INT8_TOL,
                         "UNet fixture, q8 weights, int8 compute", 1);
    /* int8 really ran: its error is quantisation's, far above f32 rounding */
    CHECK(e32 > UNET_FIXTURE_TOL, "int8 compute gave f32's result (max abs err %g)", e32);
}

static void unet_should_match_torch_with_linear_projections_and_head_lists(void)
{
    unet_compare(t_path(T.tmp, "unet_sd2_linear.dcw"), t_path(T.data, "unet/sd2_linear"), "out_sample.npy",
                 UNET_FIXTURE_TOL, "UNet sd2_linear (torch reference)");
}

static void unet_should_match_torch_with_odd_heads_and_other_options(void)
{
    unet_compare(t_path(T.tmp, "unet_odd_config.dcw"), t_path(T.data, "unet/odd_config"), "out_sample.npy",
                 UNET_FIXTURE_TOL, "UNet odd_config (torch reference)");
}

static void unet_should_take_heads_from_num_attention_heads_when_set(void)
{
    /* the same weights as sd2_linear with heads in num_attention_heads and a
       wrong attention_head_dim: the output must be sd2_linear's */
    unet_compare(t_path(T.tmp, "unet_sd2_linear_numheads.dcw"), t_path(T.data, "unet/sd2_linear"),
                 "out_sample.npy", UNET_FIXTURE_TOL, "UNet sd2_linear, heads from num_attention_heads");
    unet_model *um = unet_load(t_path(T.tmp, "unet_sd2_linear_numheads.dcw"));
    if (!um) return;
    CHECK(um->m.heads[0] == 1 && um->m.heads[1] == 2 && um->m.heads[2] == 2, "heads %d %d %d",
          um->m.heads[0], um->m.heads[1], um->m.heads[2]);
    unet_unload(um);
}

static void unet_should_give_each_sample_what_it_gets_alone(void)
{
    /* odd_config: a batch of 3 with different timesteps and contexts; run
       each sample alone through the same runner and compare with its row of
       the batch (a wrong batch stride in any layer would mix samples) */
    unet_model *um = unet_load(t_path(T.tmp, "unet_odd_config.dcw"));
    unet_case c;
    if (!um) return;
    if (!unet_case_load(&c, t_path(T.data, "unet/odd_config"), "out_sample.npy")) {
        unet_case_free(&c);
        unet_unload(um);
        return;
    }
    dc_error err;
    size_t per = (size_t)c.want.numel / c.n, in_per = (size_t)c.sample.numel / c.n;
    size_t ctx_per = (size_t)c.ctx.numel / c.n;
    float *batch = malloc(sizeof(float) * (size_t)c.want.numel), *one = malloc(sizeof(float) * per);
    if (batch && one &&
        dc__unet_forward(&um->m, &um->r, batch, c.sample.data, c.t.data, c.ctx.data, c.n, c.h, c.w, c.L,
                         &err) == DC_OK) {
        size_t cap = um->r.arena.cap;
        size_t planned = dc__unet_arena_bytes(&um->m, c.n, c.h, c.w, c.L);
        CHECK(planned > 0 && planned <= cap, "arena: planned %zu bytes, runner holds %zu", planned, cap);
        printf("  arena for batch %d of %dx%d: %zu bytes\n", c.n, c.h, c.w, planned);
        for (int i = 0; i < c.n; i++) {
            char label[64];
            snprintf(label, sizeof label, "sample %d alone vs in the batch", i);
            const float *x = (const float *)c.sample.data + i * in_per;
            const float *ti = (const float *)c.t.data + i, *ctx = (const float *)c.ctx.data + i * ctx_per;
            dc_status st = dc__unet_forward(&um->m, &um->r, one, x, ti, ctx, 1, c.h, c.w, c.L, &err);
            CHECK(st == DC_OK, "%s", err.msg);
            if (st == DC_OK) t_close(label, one, batch + i * per, per, UNET_BATCH_TOL, 0);
        }
        CHECK(um->r.arena.cap == cap, "the runner grew for a smaller batch");
    } else {
        CHECK(0, "batch forward: %s", batch && one ? err.msg : "out of memory");
    }
    free(batch), free(one);
    unet_case_free(&c);
    unet_unload(um);
}

static void unet_should_share_the_prefix_of_repeated_samples(void)
{
    /* the classifier's batches repeat one (sample, timestep) under several
       contexts: the class-independent prefix runs once per distinct pair
       and is copied (unet_share_prefix). Items 0, 1 and 3 share sample 0
       and timestep 0 under three contexts, item 2 is sample 1; each must
       get what it gets alone. */
    unet_model *um = unet_load(t_path(T.tmp, "unet_odd_config.dcw"));
    unet_case c;
    if (!um) return;
    if (!unet_case_load(&c, t_path(T.data, "unet/odd_config"), "out_sample.npy") || c.n < 3) {
        unet_case_free(&c);
        unet_unload(um);
        return;
    }
    const float *S = c.sample.data, *Tm = c.t.data, *C = c.ctx.data;
    size_t in_per = (size_t)c.sample.numel / c.n, ctx_per = (size_t)c.ctx.numel / c.n;
    size_t per = (size_t)c.want.numel / c.n;
    static const int pick_sample[4] = {0, 0, 1, 0}, pick_ctx[4] = {0, 1, 2, 2};
    float *x = malloc(sizeof(float) * in_per * 4), *ctx = malloc(sizeof(float) * ctx_per * 4);
    float *t = malloc(sizeof(float) * 4), *batch = malloc(sizeof(float) * per * 4), *one = malloc(sizeof(float) * per);
    dc_error err;
    if (x && ctx && t && batch && one) {
        for (int i = 0; i < 4; i++) {
            memcpy(x + i * in_per, S + pick_sample[i] * in_per, sizeof(float) * in_per);
            memcpy(ctx + i * ctx_per, C + pick_ctx[i] * ctx_per, sizeof(float) * ctx_per);
            t[i] = Tm[pick_sample[i]];
        }
        dc_status st = dc__unet_forward(&um->m, &um->r, batch, x, t, ctx, 4, c.h, c.w, c.L, &err);
        CHECK(st == DC_OK, "batch: %s", err.msg);
        for (int i = 0; st == DC_OK && i < 4; i++) {
            char label[64];
            snprintf(label, sizeof label, "item %d alone vs in a batch with repeats", i);
            CHECK(dc__unet_forward(&um->m, &um->r, one, x + i * in_per, t + i, ctx + i * ctx_per, 1, c.h, c.w,
                                   c.L, &err) == DC_OK, "%s", err.msg);
            t_close(label, one, batch + i * per, per, UNET_BATCH_TOL, 0);
        }
    } else {
        CHECK(0, "out of memory");
    }
    free(x), free(ctx), free(t), free(batch), free(one);
    unet_case_free(&c);
    unet_unload(um);
}

static void unet_should_refuse_latents_that_do_not_divide(void)
{
    unet_model *um = unet_load(t_path(T.tmp, "unet_sd2_linear.dcw"));
    if (!um) return;
    /* 3 blocks: 2 downsamplers, so sides must be multiples of 4 */
    float x[4 * 12 * 8] = {0}, t[1] = {5}, ctx[5 * 12] = {0}, out[4 * 12 * 8];
    dc_error err;
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, ctx, 1, 12, 8, 5, &err) == DC_OK, "12x8: %s", err.msg);
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, ctx, 1, 10, 8, 5, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "latent 10 x 8") && strstr(err.msg, "multiples of 4"),
          "10x8: %s", err.msg);
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, ctx, 1, 8, 6, 5, &err) == DC_ERR_INVALID, "8x6: %s",
          err.msg);
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, ctx, 0, 8, 8, 5, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "batch 0"), "n = 0: %s", err.msg);
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, ctx, 1, 8, 8, 0, &err) == DC_ERR_INVALID,
          "ctx_len 0: %s", err.msg);
    CHECK(dc__unet_forward(&um->m, &um->r, out, x, t, NULL, 1, 8, 8, 5, &err) == DC_ERR_INVALID,
          "NULL context: %s", err.msg);
    CHECK(dc__unet_arena_bytes(&um->m, 1, 10, 8, 5) == 0, "arena bytes for a bad size");
    unet_unload(um);
}

static void unet_should_name_missing_and_misshaped_tensors(void)
{
    static const struct {
        const char *file, *want;
    } cases[] = {
        {"unet_missing.dcw", "'unet.up_blocks.2.attentions.1.transformer_blocks.0.ff.net.2.bias' is missing"},
        {"unet_misshaped.dcw",
         "'unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight' has shape [16, 11], "
         "the model's config needs [16, 12]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dc__weights w;
        dc_error err;
        if (!t_weights(&w, t_path(T.tmp, "%s", cases[i].file))) continue;
        dc__unet *m = malloc(sizeof *m);
        if (m) {
            dc_status st = dc__unet_build(m, &w, "unet.", &err);
            CHECK(st != DC_OK && strstr(err.msg, cases[i].want), "%s: %s", cases[i].file,
                  st == DC_OK ? "accepted" : err.msg);
        }
        free(m);
        dc__weights_close(&w);
    }
}

static void unet_converter_should_name_unknown_tensors(void)
{
    FILE *f = fopen(t_path(T.tmp, "unet_unknown_tensor.txt"), "r");
    char line[512] = "";
    CHECK(f != NULL, "unet_unknown_tensor.txt missing (run tools/refs/prepare_tests.py)");
    if (!f) return;
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    CHECK(strstr(line, "does not have") &&
              strstr(line, "mid_block.attentions.0.transformer_blocks.0.attn1.rotary.weight"),
          "converter message: %s", line);
}

static void unet_converter_should_match_the_real_sd_key_lists(void)
{
    FILE *f = fopen(t_path(T.tmp, "unet_key_lists.txt"), "r");
    char line[512];
    int ok = 0;
    CHECK(f != NULL, "unet_key_lists.txt missing (run tools/refs/prepare_tests.py)");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        printf("  %s", line);
        if (strstr(line, ": ok")) ok++;
    }
    fclose(f);
    CHECK(ok == 2, "expected SD 1.5 and SD 2.1 to check out, %d did", ok);
}

void suite_unet(void)
{
    RUN(unet_should_match_diffusers_on_the_sd1_fixture);
    RUN(unet_should_stay_close_with_f16_and_q8_weights);
    RUN(unet_should_stay_close_in_int8);
    RUN(unet_should_match_torch_with_linear_projections_and_head_lists);
    RUN(unet_should_match_torch_with_odd_heads_and_other_options);
    RUN(unet_should_take_heads_from_num_attention_heads_when_set);
    RUN(unet_should_give_each_sample_what_it_gets_alone);
    RUN(unet_should_share_the_prefix_of_repeated_samples);
    RUN(unet_should_refuse_latents_that_do_not_divide);
    RUN(unet_should_name_missing_and_misshaped_tensors);
    RUN(unet_converter_should_name_unknown_tensors);
    RUN(unet_converter_should_match_the_real_sd_key_lists);
}
