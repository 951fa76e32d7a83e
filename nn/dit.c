/* nn/dit.c - DiT, the class-conditional diffusion transformer (Peebles &
   Xie, "Scalable Diffusion Models with Transformers", 2023), any size.

   x [n, C, H, W] latent, t [n] timesteps, y [n] class ids (num_classes =
   the null class) -> [n, out_channels, H, W]; with learned sigma the first
   C output channels are the noise prediction.

     tokens = patchify(x) + pos_embed                  [n, T, D]
     c      = MLP(sinusoid(t)) + label_table[y]        [n, D]
     each block (adaLN-Zero):
       shift1, scale1, gate1, shift2, scale2, gate2 = Linear(SiLU(c))
       tokens += gate1 * Attn(LN(tokens) * (1 + scale1) + shift1)
       tokens += gate2 * MLP (LN(tokens) * (1 + scale2) + shift2)
     out = Linear(LN(tokens) * (1 + scale) + shift), unpatchified

   Tensor names are the original checkpoint's (DiT-XL-2-256x256.pt), which
   are dc's canonical DiT names; metadata keys are `dit.*` (tools/convert/convert.py). */
#include "nn.h"

#include <math.h>
#include <string.h>

#define DIT_FREQ_DIM 256 /* TimestepEmbedder's frequency_embedding_size */

static dc_status get(const dc__weights *w, const dc__tensor **t, const char *name, int ndim,
                     int64_t d0, int64_t d1, int64_t d2, int64_t d3, dc_error *err)
{
    int64_t shape[4] = {d0, d1, d2, d3};
    return dc__tensor_get(w, name, ndim, shape, t, err);
}

dc_status dc__dit_build(dc__dit *m, const dc__weights *w, dc_error *err)
{
    memset(m, 0, sizeof *m);
    dc_status st;
    double ratio;
    if ((st = dc__meta_int_in(w, "dit.input_size", &m->input_size, 1, 4096, err)) ||
        (st = dc__meta_int_in(w, "dit.patch_size", &m->patch, 1, 64, err)) ||
        (st = dc__meta_int_in(w, "dit.in_channels", &m->in_ch, 1, 1024, err)) ||
        (st = dc__meta_int_in(w, "dit.hidden_size", &m->hidden, 1, 1 << 16, err)) ||
        (st = dc__meta_int_in(w, "dit.depth", &m->depth, 1, DC_DIT_MAX_DEPTH, err)) ||
        (st = dc__meta_int_in(w, "dit.num_heads", &m->heads, 1, 1024, err)) ||
        (st = dc__meta_int_in(w, "dit.num_classes", &m->num_classes, 1, 1 << 20, err)) ||
        (st = dc__meta_int_in(w, "dit.learn_sigma", &m->learn_sigma, 0, 1, err)) ||
        (st = dc__meta_float(w, "dit.mlp_ratio", &ratio, err)))
        return st;
    if (m->input_size % m->patch || m->hidden % m->heads || !(ratio > 0 && ratio <= 64))
        return dc__fail(err, DC_ERR_FORMAT, "%s: inconsistent DiT config (input %d, patch %d, "
                        "hidden %d, heads %d, mlp_ratio %g)", w->path, m->input_size, m->patch,
                        m->hidden, m->heads, ratio);
    m->out_ch = m->learn_sigma ? 2 * m->in_ch : m->in_ch;
    m->mlp_hidden = (int)(m->hidden * ratio); /* int(hidden_size * mlp_ratio), as DiT does */
    int D = m->hidden, p = m->patch, g = m->input_size / p;
    m->tokens = g * g;

    if ((st = get(w, &m->pos_embed, "pos_embed", 3, 1, m->tokens, D, 0, err)) ||
        (st = get(w, &m->patch_w, "x_embedder.proj.weight", 4, D, m->in_ch, p, p, err)) ||
        (st = get(w, &m->patch_b, "x_embedder.proj.bias", 1, D, 0, 0, 0, err)) ||
        (st = get(w, &m->t0_w, "t_embedder.mlp.0.weight", 2, D, DIT_FREQ_DIM, 0, 0, err)) ||
        (st = get(w, &m->t0_b, "t_embedder.mlp.0.bias", 1, D, 0, 0, 0, err)) ||
        (st = get(w, &m->t2_w, "t_embedder.mlp.2.weight", 2, D, D, 0, 0, err)) ||
        (st = get(w, &m->t2_b, "t_embedder.mlp.2.bias", 1, D, 0, 0, 0, err)) ||
        (st = get(w, &m->label_table, "y_embedder.embedding_table.weight", 2, -1, D, 0, 0, err)) ||
        (st = get(w, &m->final_mod_w, "final_layer.adaLN_modulation.1.weight", 2, 2 * D, D, 0, 0, err)) ||
        (st = get(w, &m->final_mod_b, "final_layer.adaLN_modulation.1.bias", 1, 2 * D, 0, 0, 0, err)) ||
        (st = get(w, &m->final_w, "final_layer.linear.weight", 2, p * p * m->out_ch, D, 0, 0, err)) ||
        (st = get(w, &m->final_b, "final_layer.linear.bias", 1, p * p * m->out_ch, 0, 0, 0, err)))
        return st;
    /* the table has num_classes rows, plus the null class when trained with
       label dropout (always, for DiT's released models) */
    if (m->label_table->shape[0] != m->num_classes && m->label_table->shape[0] != m->num_classes + 1)
        return dc__fail(err, DC_ERR_FORMAT, "%s: y_embedder.embedding_table.weight has %lld rows, "
                        "dit.num_classes %d needs %d or %d", w->path,
                        (long long)m->label_table->shape[0], m->num_classes, m->num_classes,
                        m->num_classes + 1);
    for (int i = 0; i < m->depth; i++) {
        dc__dit_block *b = &m->blocks[i];
        char n[8][96];
        snprintf(n[0], 96, "blocks.%d.attn.qkv.weight", i);
        snprintf(n[1], 96, "blocks.%d.attn.qkv.bias", i);
        snprintf(n[2], 96, "blocks.%d.attn.proj.weight", i);
        snprintf(n[3], 96, "blocks.%d.attn.proj.bias", i);
        snprintf(n[4], 96, "blocks.%d.mlp.fc1.weight", i);
        snprintf(n[5], 96, "blocks.%d.mlp.fc1.bias", i);
        snprintf(n[6], 96, "blocks.%d.mlp.fc2.weight", i);
        snprintf(n[7], 96, "blocks.%d.mlp.fc2.bias", i);
        char mw[96], mb[96];
        snprintf(mw, 96, "blocks.%d.adaLN_modulation.1.weight", i);
        snprintf(mb, 96, "blocks.%d.adaLN_modulation.1.bias", i);
        if ((st = get(w, &b->qkv_w, n[0], 2, 3 * D, D, 0, 0, err)) ||
            (st = get(w, &b->qkv_b, n[1], 1, 3 * D, 0, 0, 0, err)) ||
            (st = get(w, &b->proj_w, n[2], 2, D, D, 0, 0, err)) ||
            (st = get(w, &b->proj_b, n[3], 1, D, 0, 0, 0, err)) ||
            (st = get(w, &b->fc1_w, n[4], 2, m->mlp_hidden, D, 0, 0, err)) ||
            (st = get(w, &b->fc1_b, n[5], 1, m->mlp_hidden, 0, 0, 0, err)) ||
            (st = get(w, &b->fc2_w, n[6], 2, D, m->mlp_hidden, 0, 0, err)) ||
            (st = get(w, &b->fc2_b, n[7], 1, D, 0, 0, 0, err)) ||
            (st = get(w, &b->mod_w, mw, 2, 6 * D, D, 0, 0, err)) ||
            (st = get(w, &b->mod_b, mb, 1, 6 * D, 0, 0, 0, err)))
            return st;
    }
    /* biases and the position embedding are read as f32 directly */
    const dc__tensor *f32s[] = {m->pos_embed, m->patch_b, m->t0_b, m->t2_b, m->final_mod_b, m->final_b};
    for (size_t i = 0; i < sizeof f32s / sizeof f32s[0]; i++)
        if (f32s[i]->dtype != DC_F32)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s' must be f32", w->path,
                            f32s[i]->name_len, f32s[i]->name);
    for (int i = 0; i < m->depth; i++) {
        const dc__dit_block *b = &m->blocks[i];
        if (b->qkv_b->dtype || b->proj_b->dtype || b->fc1_b->dtype || b->fc2_b->dtype || b->mod_b->dtype)
            return dc__fail(err, DC_ERR_FORMAT, "%s: block %d has a non-f32 bias", w->path, i);
    }
    /* the largest weight that may need decoding */
    const dc__tensor *ws[] = {m->patch_w, m->t0_w, m->t2_w, m->final_mod_w, m->final_w,
                              m->blocks[0].qkv_w, m->blocks[0].proj_w, m->blocks[0].fc1_w,
                              m->blocks[0].fc2_w, m->blocks[0].mod_w};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        if (ws[i]->dtype != DC_F32 && (size_t)ws[i]->numel > m->decode_floats)
            m->decode_floats = (size_t)ws[i]->numel;
    if (m->label_table->dtype != DC_F32 && (size_t)D > m->decode_floats) m->decode_floats = (size_t)D;
    return DC_OK;
}

/* y = x . W^T + b for a weight of any dtype (decoded into the runner's scratch) */
static void linear(dc__runner *r, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                   int n)
{
    dc__scratch s = {r->wbuf, r->wcap};
    dc__linear_forward(y, x, dc__weight_f32(W, &s), b ? b->data : NULL, n, (int)(W->numel / W->shape[0]),
                       (int)W->shape[0]);
}

/* x[n, T, D] <- LN(x) * (1 + scale[n]) + shift[n]; mod rows hold shift at
   offset 0 and scale at offset D (strided by ld) */
static void ln_modulate(float *y, const float *x, const float *shift, const float *scale, size_t ld,
                        int n, int T, int D)
{
    dc__layer_norm_forward(y, x, NULL, NULL, n * T, D, 1e-6f);
#pragma omp parallel for if ((size_t)n * T * D > 65536)
    for (int i = 0; i < n * T; i++) {
        const float *sh = shift + (size_t)(i / T) * ld, *sc = scale + (size_t)(i / T) * ld;
        float *yi = y + (size_t)i * D;
        for (int d = 0; d < D; d++) yi[d] = yi[d] * (1.0f + sc[d]) + sh[d];
    }
}

/* x[n, T, D] += gate[n] * a[n, T, D] */
static void gated_add(float *x, const float *a, const float *gate, size_t ld, int n, int T, int D)
{
#pragma omp parallel for if ((size_t)n * T * D > 65536)
    for (int i = 0; i < n * T; i++) {
        const float *g = gate + (size_t)(i / T) * ld;
        float *xi = x + (size_t)i * D;
        const float *ai = a + (size_t)i * D;
        for (int d = 0; d < D; d++) xi[d] += g[d] * ai[d];
    }
}

dc_status dc__dit_forward(const dc__dit *m, dc__runner *r, float *out, const float *x,
                          const float *t, const int64_t *y, int n, dc_error *err)
{
    int D = m->hidden, T = m->tokens, p = m->patch, g = m->input_size / p, Dm = m->mlp_hidden;
    int C = m->in_ch, Co = m->out_ch, P = p * p * Co;
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->label_table->shape[0])
            return dc__fail(err, DC_ERR_INVALID, "DiT: class id %lld out of range [0, %lld)",
                            (long long)y[i], (long long)m->label_table->shape[0]);
    dc__conv2d_shape cs = {n, C, m->input_size, m->input_size, D, p, p, p, 0, 0, 0, 0};
    dc__attn_shape as = {n, m->heads, T, T, D / m->heads, 3 * D, 3 * D, 3 * D, D,
                         (size_t)T * 3 * D, (size_t)T * 3 * D, (size_t)T * 3 * D, (size_t)T * D,
                         1.0f / sqrtf((float)(D / m->heads)), 0};

    /* plan, then allocate: the same calls measure and then hand out memory */
    for (int pass = 0; pass < 2; pass++) {
        dc__arena *a = &r->arena;
        if (pass == 0) {
            dc__arena plan;
            dc__arena_measure(&plan);
            a = &plan;
            dc__arena_floats(a, (size_t)n * D * T);              /* patches */
            dc__arena_floats(a, dc__conv2d_scratch_floats(&cs)); /* im2col */
            dc__arena_floats(a, (size_t)n * T * D * 2);          /* tokens, normed */
            dc__arena_floats(a, (size_t)n * T * 3 * D);          /* qkv */
            dc__arena_floats(a, (size_t)n * T * D * 2);          /* attn out, proj */
            dc__arena_floats(a, (size_t)n * T * (Dm > P ? Dm : P)); /* mlp hidden / final */
            dc__arena_floats(a, dc__attention_scratch_floats(T));
            dc__arena_floats(a, (size_t)n * (DIT_FREQ_DIM + 3 * D + 6 * D));
            dc_status st = dc__runner_reserve(r, plan.peak, m->decode_floats, err);
            if (st != DC_OK) return st;
            continue;
        }
        float *patches = dc__arena_floats(a, (size_t)n * D * T);
        float *cols = dc__arena_floats(a, dc__conv2d_scratch_floats(&cs));
        float *tok = dc__arena_floats(a, (size_t)n * T * D * 2), *h = tok + (size_t)n * T * D;
        float *qkv = dc__arena_floats(a, (size_t)n * T * 3 * D);
        float *att = dc__arena_floats(a, (size_t)n * T * D * 2), *proj = att + (size_t)n * T * D;
        float *mlp = dc__arena_floats(a, (size_t)n * T * (Dm > P ? Dm : P));
        float *ascratch = dc__arena_floats(a, dc__attention_scratch_floats(T));
        float *freq = dc__arena_floats(a, (size_t)n * (DIT_FREQ_DIM + 3 * D + 6 * D));
        float *th = freq + (size_t)n * DIT_FREQ_DIM, *c = th + (size_t)n * D, *sc = c + (size_t)n * D;
        float *mod = sc + (size_t)n * D;
        DC_ASSERT(mod && mlp && ascratch && qkv && att && patches);

        /* tokens = patchify(x) + pos_embed: a stride-p conv, then [D, T] -> [T, D] */
        {
            dc__scratch s = {r->wbuf, r->wcap};
            dc__conv2d_forward(patches, x, dc__weight_f32(m->patch_w, &s), m->patch_b->data, &cs,
                               cols);
        }
        const float *pos = m->pos_embed->data;
        for (int i = 0; i < n; i++)
            for (int tk = 0; tk < T; tk++)
                for (int d = 0; d < D; d++)
                    tok[((size_t)i * T + tk) * D + d] =
                        patches[((size_t)i * D + d) * T + tk] + pos[(size_t)tk * D + d];

        /* c = MLP(sinusoid(t)) + label_table[y]; blocks see SiLU(c) */
        dc__timestep_embedding(freq, t, n, DIT_FREQ_DIM, 1, 0.0f, 10000.0f);
        linear(r, th, freq, m->t0_w, m->t0_b, n);
        dc__act_forward(th, th, (size_t)n * D, DC_ACT_SILU);
        linear(r, c, th, m->t2_w, m->t2_b, n);
        for (int i = 0; i < n; i++) {
            float *row = th; /* reuse: one decoded label row */
            dc__decode_rows(row, m->label_table, y[i], y[i] + 1);
            dc__add_forward(c + (size_t)i * D, c + (size_t)i * D, row, (size_t)D);
        }
        dc__act_forward(sc, c, (size_t)n * D, DC_ACT_SILU);

        for (int b = 0; b < m->depth; b++) {
            const dc__dit_block *blk = &m->blocks[b];
            size_t ld = 6 * (size_t)D; /* mod rows: shift1 scale1 gate1 shift2 scale2 gate2 */
            linear(r, mod, sc, blk->mod_w, blk->mod_b, n);
            ln_modulate(h, tok, mod, mod + D, ld, n, T, D);
            linear(r, qkv, h, blk->qkv_w, blk->qkv_b, n * T);   /* [n*T, (q|k|v)(heads, dh)] */
            dc__attention_forward(att, qkv, qkv + D, qkv + 2 * D, &as, ascratch);
            linear(r, proj, att, blk->proj_w, blk->proj_b, n * T);
            gated_add(tok, proj, mod + 2 * D, ld, n, T, D);
            ln_modulate(h, tok, mod + 3 * D, mod + 4 * D, ld, n, T, D);
            linear(r, mlp, h, blk->fc1_w, blk->fc1_b, n * T);
            dc__act_forward(mlp, mlp, (size_t)n * T * Dm, DC_ACT_GELU_TANH);
            linear(r, proj, mlp, blk->fc2_w, blk->fc2_b, n * T);
            gated_add(tok, proj, mod + 5 * D, ld, n, T, D);
        }

        /* final layer: shift, scale = Linear(SiLU(c)); out = Linear(modulated LN) */
        linear(r, mod, sc, m->final_mod_w, m->final_mod_b, n);
        ln_modulate(h, tok, mod, mod + D, 2 * (size_t)D, n, T, D);
        linear(r, mlp, h, m->final_w, m->final_b, n * T);        /* [n, T, p*p*Co] */

        /* unpatchify: token (gy, gx), entry (py*p + px)*Co + c -> out[c, gy*p+py, gx*p+px] */
        int S = m->input_size;
        for (int i = 0; i < n; i++)
            for (int tk = 0; tk < T; tk++) {
                int gy = tk / g, gx = tk % g;
                const float *e = mlp + ((size_t)i * T + tk) * P;
                for (int py = 0; py < p; py++)
                    for (int px = 0; px < p; px++)
                        for (int ch = 0; ch < Co; ch++)
                            out[(((size_t)i * Co + ch) * S + gy * p + py) * S + gx * p + px] =
                                e[(py * p + px) * Co + ch];
            }
    }
    return DC_OK;
}
