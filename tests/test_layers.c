/* tests/test_layers.c - every layer against the float64 references that
   tools/refs/make_layer_refs.py made with numpy (and cross-checked with torch),
   and the fast conv/attention against their plain reference twins. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

static void linear_should_match_numpy(void)
{
    dc__npy x, w, b, y;
    if (!t_npy(&x, "layers/linear_x") || !t_npy(&w, "layers/linear_w") ||
        !t_npy(&b, "layers/linear_b") || !t_npy(&y, "layers/linear_y"))
        return;
    float out[15];
    dc__linear_forward(out, x.data, w.data, b.data, 5, 7, 3);
    t_close("linear", out, y.data, 15, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__npy_free(&x), dc__npy_free(&w), dc__npy_free(&b), dc__npy_free(&y);
}

static void conv_case(const char *c)
{
    dc__npy x, w, b, y, p;
    char name[64];
    if (!t_npy(&x, "layers/conv_%s_x", c) || !t_npy(&w, "layers/conv_%s_w", c) ||
        !t_npy(&b, "layers/conv_%s_b", c) || !t_npy(&y, "layers/conv_%s_y", c))
        return;
    dc_error err;
    if (dc__npy_load(&p, t_path(T.data, "layers/conv_%s_p.npy", c), &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const int64_t *q = p.data;
    dc__conv2d_shape s = {(int)q[0], (int)q[1], (int)q[2], (int)q[3], (int)q[4], (int)q[5],
                          (int)q[6], (int)q[7], (int)q[8], (int)q[9], (int)q[10], (int)q[11]};
    size_t n_out = (size_t)s.n * s.cout * dc__conv2d_out_h(&s) * dc__conv2d_out_w(&s);
    CHECK(n_out == (size_t)y.numel, "conv %s: output size %zu, reference %lld", c, n_out,
          (long long)y.numel);
    if (n_out == (size_t)y.numel) {
        float *out = malloc(n_out * 4), *ref = malloc(n_out * 4);
        float *cols = malloc((dc__conv2d_scratch_floats(&s) + 1) * 4);
        dc__conv2d_forward(out, x.data, w.data, b.data, &s, cols);
        snprintf(name, sizeof name, "conv_%s (sgemm)", c);
        t_close(name, out, y.data, n_out, DC_TOL_LAYER, DC_TOL_LAYER);
        dc__conv2d_ref(ref, x.data, w.data, b.data, &s);
        snprintf(name, sizeof name, "conv_%s (direct twin)", c);
        t_close(name, ref, y.data, n_out, DC_TOL_LAYER, DC_TOL_LAYER);
        free(out), free(ref), free(cols);
    }
    dc__npy_free(&x), dc__npy_free(&w), dc__npy_free(&b), dc__npy_free(&y), dc__npy_free(&p);
}

static void conv2d_should_match_numpy_for_every_padding_and_stride(void)
{
    const char *cases[] = {"a", "b", "c", "d", "e", "f"};
    for (int i = 0; i < 6; i++) conv_case(cases[i]);
}

static void group_norm_should_match_numpy(void)
{
    dc__npy x, g, b, y, ys;
    if (!t_npy(&x, "layers/group_norm_x") || !t_npy(&g, "layers/group_norm_gamma") ||
        !t_npy(&b, "layers/group_norm_beta") || !t_npy(&y, "layers/group_norm_y") ||
        !t_npy(&ys, "layers/group_norm_y_silu"))
        return;
    float out[2 * 8 * 15];
    dc__group_norm_forward(out, x.data, g.data, b.data, 2, 8, 15, 4, 1e-6f, 0);
    t_close("group_norm", out, y.data, 240, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__group_norm_forward(out, x.data, g.data, b.data, 2, 8, 15, 4, 1e-6f, 1);
    t_close("group_norm+silu", out, ys.data, 240, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__npy_free(&x), dc__npy_free(&g), dc__npy_free(&b), dc__npy_free(&y), dc__npy_free(&ys);
}

static void layer_norm_should_match_numpy_with_and_without_affine(void)
{
    dc__npy x, g, b, y, yp;
    if (!t_npy(&x, "layers/layer_norm_x") || !t_npy(&g, "layers/layer_norm_gamma") ||
        !t_npy(&b, "layers/layer_norm_beta") || !t_npy(&y, "layers/layer_norm_y") ||
        !t_npy(&yp, "layers/layer_norm_y_plain"))
        return;
    float out[4 * 33];
    dc__layer_norm_forward(out, x.data, g.data, b.data, 4, 33, 1e-5f);
    t_close("layer_norm", out, y.data, 132, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__layer_norm_forward(out, x.data, NULL, NULL, 4, 33, 1e-5f);
    t_close("layer_norm (no affine)", out, yp.data, 132, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__npy_free(&x), dc__npy_free(&g), dc__npy_free(&b), dc__npy_free(&y), dc__npy_free(&yp);
}

static void activations_should_match_numpy(void)
{
    static const struct { const char *name; int act; } acts[] = {
        {"silu", DC_ACT_SILU}, {"gelu", DC_ACT_GELU}, {"gelu_tanh", DC_ACT_GELU_TANH},
        {"quick_gelu", DC_ACT_QUICK_GELU}};
    dc__npy x, y;
    if (!t_npy(&x, "layers/act_x")) return;
    float *out = malloc((size_t)x.numel * 4);
    for (int i = 0; i < 4; i++) {
        if (!t_npy(&y, "layers/act_%s", acts[i].name)) continue;
        dc__act_forward(out, x.data, (size_t)x.numel, acts[i].act);
        t_close(acts[i].name, out, y.data, (size_t)x.numel, DC_TOL_SIMD_ABS * 4, DC_TOL_SIMD_REL);
        dc__npy_free(&y);
    }
    free(out);
    dc__npy_free(&x);
}

static void geglu_and_softmax_should_match_numpy(void)
{
    dc__npy x, y;
    float out[64];
    if (t_npy(&x, "layers/geglu_x") && t_npy(&y, "layers/geglu_y")) {
        dc__geglu_forward(out, x.data, 3, 10);
        t_close("geglu", out, y.data, 30, DC_TOL_SIMD_ABS * 4, DC_TOL_SIMD_REL);
        dc__npy_free(&x), dc__npy_free(&y);
    }
    if (t_npy(&x, "layers/softmax_x") && t_npy(&y, "layers/softmax_y")) {
        dc__softmax_forward(x.data, 3, 17);
        t_close("softmax", x.data, y.data, 51, DC_TOL_SIMD_ABS, DC_TOL_SIMD_REL);
        dc__npy_free(&x), dc__npy_free(&y);
    }
}

static void attn_case(const char *c)
{
    dc__npy q, k, v, o, p;
    dc_error err;
    if (!t_npy(&q, "layers/attn_%s_q", c) || !t_npy(&k, "layers/attn_%s_k", c) ||
        !t_npy(&v, "layers/attn_%s_v", c) || !t_npy(&o, "layers/attn_%s_o", c))
        return;
    if (dc__npy_load(&p, t_path(T.data, "layers/attn_%s_p.npy", c), &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    const int64_t *a = p.data;
    int nb = (int)a[0], heads = (int)a[1], lq = (int)a[2], lk = (int)a[3], dh = (int)a[4];
    int C = heads * dh;
    dc__attn_shape s = {nb, heads, lq, lk, dh, C, C, C, C, (size_t)lq * C, (size_t)lk * C,
                        (size_t)lk * C, (size_t)lq * C, 1.0f / sqrtf((float)dh), (int)a[5]};
    float *out = malloc((size_t)o.numel * 4), *scratch = malloc(dc__attention_scratch_floats(lk) * 4);
    char name[64];
    dc__attention_forward(out, q.data, k.data, v.data, &s, scratch);
    snprintf(name, sizeof name, "attention %s (blocked)", c);
    t_close(name, out, o.data, (size_t)o.numel, DC_TOL_LAYER, DC_TOL_LAYER);
    dc__attention_ref(out, q.data, k.data, v.data, &s);
    snprintf(name, sizeof name, "attention %s (reference twin)", c);
    t_close(name, out, o.data, (size_t)o.numel, DC_TOL_LAYER, DC_TOL_LAYER);
    free(out), free(scratch);
    dc__npy_free(&q), dc__npy_free(&k), dc__npy_free(&v), dc__npy_free(&o), dc__npy_free(&p);
}

static void attention_should_match_numpy_self_causal_and_cross(void)
{
    attn_case("self");
    attn_case("causal");
    attn_case("cross");
}

static void attention_should_hold_only_query_blocks_of_scores(void)
{
    /* SD at 512 px: 4096 keys. The scratch is per-thread blocks, never
       lq x lk (64 MB per head). */
    size_t per_thread = dc__attention_scratch_floats(4096) / (size_t)dc__num_threads();
    CHECK(per_thread == (size_t)DC_ATTN_QBLOCK * 4096, "scratch per thread %zu floats", per_thread);
    CHECK(per_thread * 4 <= 1u << 20, "a thread's score block is %zu bytes", per_thread * 4);
}

static void upsample_and_concat_should_match_numpy(void)
{
    dc__npy x, y, a, b;
    float out[2 * 8 * 6 * 2 * 10];
    if (t_npy(&x, "layers/upsample_x") && t_npy(&y, "layers/upsample_y")) {
        dc__upsample2x_forward(out, x.data, 2, 3, 4, 5);
        CHECK(!memcmp(out, y.data, (size_t)y.numel * 4), "upsample differs");
        dc__npy_free(&x), dc__npy_free(&y);
    }
    if (t_npy(&a, "layers/concat_a") && t_npy(&b, "layers/concat_b") && t_npy(&y, "layers/concat_y")) {
        dc__concat_forward(out, a.data, b.data, 2, 3, 5, 6);
        CHECK(!memcmp(out, y.data, (size_t)y.numel * 4), "concat differs");
        dc__npy_free(&a), dc__npy_free(&b), dc__npy_free(&y);
    }
}

static void timestep_embedding_should_match_numpy_in_both_orders(void)
{
    const char *cases[] = {"sd", "sd_shift1", "sincos", "odd"};
    for (int i = 0; i < 4; i++) {
        dc__npy t, y, p;
        dc_error err;
        if (!t_npy(&t, "layers/temb_%s_t", cases[i]) || !t_npy(&y, "layers/temb_%s_y", cases[i]))
            continue;
        if (dc__npy_load(&p, t_path(T.data, "layers/temb_%s_p.npy", cases[i]), &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        const int64_t *a = p.data;
        float out[5 * 33];
        dc__timestep_embedding(out, t.data, 5, (int)a[0], (int)a[1], (float)a[2], 10000.0f);
        char name[64];
        snprintf(name, sizeof name, "timestep embedding %s", cases[i]);
        /* angles up to 999 rad computed in f32, as diffusers and DiT do:
           the f32 rounding of t*freq (ulp 6e-5 at 999) bounds the error */
        t_close(name, out, y.data, (size_t)y.numel, 2e-4, 0);
        dc__npy_free(&t), dc__npy_free(&y), dc__npy_free(&p);
    }
}

void suite_layers(void)
{
    RUN(linear_should_match_numpy);
    RUN(conv2d_should_match_numpy_for_every_padding_and_stride);
    RUN(group_norm_should_match_numpy);
    RUN(layer_norm_should_match_numpy_with_and_without_affine);
    RUN(activations_should_match_numpy);
    RUN(geglu_and_softmax_should_match_numpy);
    RUN(attention_should_match_numpy_self_causal_and_cross);
    RUN(attention_should_hold_only_query_blocks_of_scores);
    RUN(upsample_and_concat_should_match_numpy);
    RUN(timestep_embedding_should_match_numpy_in_both_orders);
}
