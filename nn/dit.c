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
   are dc's canonical DiT names; metadata keys are `dit.*` (tools/convert/convert.py).

   Layout. Tokens are rows [n * T, D]; heads are column slices of the
   fused qkv rows, which dc__attention_forward reads in place. Every
   buffer lives for the whole forward (dit_layout lists them), so the
   arena is planned by running that list on a measuring arena first. */
#include "nn.h"

#include <math.h>
#include <string.h>

#define DIT_FREQ_DIM 256 /* TimestepEmbedder's frequency_embedding_size */

/* ---- build ---- */

/* Reads and checks the dit.* metadata into m */
static dc_status dit_read_config(dc__dit *m, const dc__weights *w, dc_error *err)
{
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
    m->tokens = (m->input_size / m->patch) * (m->input_size / m->patch);
    return DC_OK;
}

dc_status dc__dit_build(dc__dit *m, const dc__weights *w, dc_error *err)
{
    memset(m, 0, sizeof *m);
    dc_status st = dit_read_config(m, w, err);
    if (st != DC_OK) return st;
    int D = m->hidden, p = m->patch, Dm = m->mlp_hidden;

    dc__loader L = {w, "", err, 0};
    if ((st = dc__load(&L, &m->pos_embed, DC_USE_F32, 3, 1, m->tokens, D, 0, "pos_embed")) ||
        (st = dc__load_conv(&L, &m->patch_w, &m->patch_b, D, m->in_ch, p, "x_embedder.proj")) ||
        (st = dc__load_linear(&L, &m->t0_w, &m->t0_b, D, DIT_FREQ_DIM, "t_embedder.mlp.0")) ||
        (st = dc__load_linear(&L, &m->t2_w, &m->t2_b, D, D, "t_embedder.mlp.2")) ||
        (st = dc__load(&L, &m->label_table, DC_USE_ROWS, 2, -1, D, 0, 0,
                       "y_embedder.embedding_table.weight")) ||
        (st = dc__load_linear(&L, &m->final_mod_w, &m->final_mod_b, 2 * D, D,
                              "final_layer.adaLN_modulation.1")) ||
        (st = dc__load_linear(&L, &m->final_w, &m->final_b, p * p * m->out_ch, D,
                              "final_layer.linear")))
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
        if ((st = dc__load_linear(&L, &b->qkv_w, &b->qkv_b, 3 * D, D, "blocks.%d.attn.qkv", i)) ||
            (st = dc__load_linear(&L, &b->proj_w, &b->proj_b, D, D, "blocks.%d.attn.proj", i)) ||
            (st = dc__load_linear(&L, &b->fc1_w, &b->fc1_b, Dm, D, "blocks.%d.mlp.fc1", i)) ||
            (st = dc__load_linear(&L, &b->fc2_w, &b->fc2_b, D, Dm, "blocks.%d.mlp.fc2", i)) ||
            (st = dc__load_linear(&L, &b->mod_w, &b->mod_b, 6 * D, D, "blocks.%d.adaLN_modulation.1", i)))
            return st;
    }
    m->decode_floats = L.decode_floats;
    return DC_OK;
}

/* ---- forward ---- */

/* The forward's buffers; all of them live for the whole forward. */
typedef struct {
    float *patches;     /* [n, D, T] the patch conv's output (NCHW) */
    float *cols;        /* its im2col tiles */
    float *tok;         /* [n, T, D] the residual stream */
    float *h;           /* [n, T, D] modulated LayerNorm of tok */
    float *qkv;         /* [n, T, 3D] q | k | v */
    float *att;         /* [n, T, D] attention output */
    float *proj;        /* [n, T, D] a sublayer's output before its gated add */
    float *mlp;         /* [n, T, max(Dm, P)] MLP hidden; the final linear's output [n, T, P] */
    float *scores;      /* attention score blocks */
    float *freq;        /* [n, 256] sinusoid of t */
    float *th;          /* [n, D] timestep MLP hidden, then one decoded label row */
    float *c;           /* [n, D] the conditioning c */
    float *sc;          /* [n, D] SiLU(c): what every modulation reads */
    float *mod;         /* [n, 6D] a block's shift1 scale1 gate1 shift2 scale2 gate2 */
} dit_bufs;

/* patchify as a conv: kernel p, stride p, no padding: x [n, C, S, S] -> [n, D, T] */
static dc__conv2d_shape dit_patch_shape(const dc__dit *m, int n)
{
    int S = m->input_size, p = m->patch;
    dc__conv2d_shape s = {n, m->in_ch, S, S, m->hidden, p, p, p, 0, 0, 0, 0};
    return s;
}

static void dit_layout(dc__arena *a, const dc__dit *m, int n, dit_bufs *b)
{
    size_t D = (size_t)m->hidden, T = (size_t)m->tokens, Dm = (size_t)m->mlp_hidden;
    size_t P = (size_t)m->patch * m->patch * m->out_ch;
    dc__conv2d_shape cs = dit_patch_shape(m, n);
    b->patches = dc__arena_take(a, n, D, T);
    b->cols = dc__arena_floats(a, dc__conv2d_scratch_floats(&cs));
    b->tok = dc__arena_take(a, n, T, D);
    b->h = dc__arena_take(a, n, T, D);
    b->qkv = dc__arena_take(a, n, T, 3 * D);
    b->att = dc__arena_take(a, n, T, D);
    b->proj = dc__arena_take(a, n, T, D);
    b->mlp = dc__arena_take(a, n, T, Dm > P ? Dm : P);
    b->scores = dc__arena_floats(a, dc__attention_scratch_floats(m->tokens));
    b->freq = dc__arena_take(a, n, DIT_FREQ_DIM, 1);
    b->th = dc__arena_take(a, n, D, 1);
    b->c = dc__arena_take(a, n, D, 1);
    b->sc = dc__arena_take(a, n, D, 1);
    b->mod = dc__arena_take(a, n, 6 * D, 1);
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

/* tok [n, T, D] = patchify(x) + pos_embed: a stride-p conv, then [D, T] -> [T, D] */
static void dit_embed(const dc__dit *m, dc__runner *r, const dit_bufs *b, const float *x, int n)
{
    int D = m->hidden, T = m->tokens;
    dc__conv2d_shape cs = dit_patch_shape(m, n);
    dc__conv2d(r, b->patches, x, m->patch_w, m->patch_b, &cs, b->cols);
    const float *pos = m->pos_embed->data;
    for (int i = 0; i < n; i++)
        for (int tk = 0; tk < T; tk++)
            for (int d = 0; d < D; d++)
                b->tok[((size_t)i * T + tk) * D + d] =
                    b->patches[((size_t)i * D + d) * T + tk] + pos[(size_t)tk * D + d];
}

/* sc [n, D] = SiLU(c), c = MLP(sinusoid(t)) + label_table[y] */
static void dit_condition(const dc__dit *m, dc__runner *r, const dit_bufs *b, const float *t,
                          const int64_t *y, int n)
{
    int D = m->hidden;
    dc__timestep_embedding(b->freq, t, n, DIT_FREQ_DIM, 1, 0.0f, 10000.0f);
    dc__linear(r, b->th, b->freq, m->t0_w, m->t0_b, n);
    dc__act_forward(b->th, b->th, (size_t)n * D, DC_ACT_SILU);
    dc__linear(r, b->c, b->th, m->t2_w, m->t2_b, n);
    for (int i = 0; i < n; i++) {
        float *row = b->th; /* one decoded label row */
        dc__decode_rows(row, m->label_table, y[i], y[i] + 1);
        dc__add_forward(b->c + (size_t)i * D, b->c + (size_t)i * D, row, (size_t)D);
    }
    dc__act_forward(b->sc, b->c, (size_t)n * D, DC_ACT_SILU);
}

/* tok += gate1 * Attn(modulated LN(tok)); tok += gate2 * MLP(modulated LN(tok)) */
static void dit_block(const dc__dit *m, dc__runner *r, const dc__dit_block *blk, const dit_bufs *b,
                      int n)
{
    int D = m->hidden, T = m->tokens, dh = D / m->heads, rows = n * T;
    size_t ld = 6 * (size_t)D; /* mod rows: shift1 scale1 gate1 shift2 scale2 gate2 */
    /* heads are column slices of width dh in the fused rows of 3D floats */
    dc__attn_shape as = {n, m->heads, T, T, dh, 3 * D, 3 * D, 3 * D, D,
                         (size_t)T * 3 * D, (size_t)T * 3 * D, (size_t)T * 3 * D, (size_t)T * D,
                         1.0f / sqrtf((float)dh), 0};
    float *mod = b->mod;
    dc__linear(r, mod, b->sc, blk->mod_w, blk->mod_b, n);                /* [n, 6D] */
    ln_modulate(b->h, b->tok, mod, mod + D, ld, n, T, D);
    dc__linear(r, b->qkv, b->h, blk->qkv_w, blk->qkv_b, rows);          /* [n*T, 3D] */
    dc__attention_forward(b->att, b->qkv, b->qkv + D, b->qkv + 2 * D, &as, b->scores);
    dc__linear(r, b->proj, b->att, blk->proj_w, blk->proj_b, rows);
    gated_add(b->tok, b->proj, mod + 2 * D, ld, n, T, D);
    ln_modulate(b->h, b->tok, mod + 3 * D, mod + 4 * D, ld, n, T, D);
    dc__linear(r, b->mlp, b->h, blk->fc1_w, blk->fc1_b, rows);          /* [n*T, Dm] */
    dc__act_forward(b->mlp, b->mlp, (size_t)rows * m->mlp_hidden, DC_ACT_GELU_TANH);
    dc__linear(r, b->proj, b->mlp, blk->fc2_w, blk->fc2_b, rows);
    gated_add(b->tok, b->proj, mod + 5 * D, ld, n, T, D);
}

/* out [n, Co, S, S] = unpatchify(Linear(LN(tok) * (1 + scale) + shift)),
   shift, scale = Linear(SiLU(c)) */
static void dit_final(const dc__dit *m, dc__runner *r, const dit_bufs *b, float *out, int n)
{
    int D = m->hidden, T = m->tokens, p = m->patch, g = m->input_size / p, Co = m->out_ch;
    int P = p * p * Co, S = m->input_size;
    dc__linear(r, b->mod, b->sc, m->final_mod_w, m->final_mod_b, n);
    ln_modulate(b->h, b->tok, b->mod, b->mod + D, 2 * (size_t)D, n, T, D);
    dc__linear(r, b->mlp, b->h, m->final_w, m->final_b, n * T);         /* [n, T, P] */
    /* token (gy, gx), entry (py*p + px)*Co + c -> out[c, gy*p+py, gx*p+px] */
    for (int i = 0; i < n; i++)
        for (int tk = 0; tk < T; tk++) {
            int gy = tk / g, gx = tk % g;
            const float *e = b->mlp + ((size_t)i * T + tk) * P;
            for (int py = 0; py < p; py++)
                for (int px = 0; px < p; px++)
                    for (int ch = 0; ch < Co; ch++)
                        out[(((size_t)i * Co + ch) * S + gy * p + py) * S + gx * p + px] =
                            e[(py * p + px) * Co + ch];
        }
}

dc_status dc__dit_forward(const dc__dit *m, dc__runner *r, float *out, const float *x,
                          const float *t, const int64_t *y, int n, dc_error *err)
{
    for (int i = 0; i < n; i++)
        if (y[i] < 0 || y[i] >= m->label_table->shape[0])
            return dc__fail(err, DC_ERR_INVALID, "DiT: class id %lld out of range [0, %lld)",
                            (long long)y[i], (long long)m->label_table->shape[0]);
    /* plan, then allocate: dit_layout measures, then hands out the memory */
    dit_bufs b;
    dc__arena plan;
    dc__arena_measure(&plan);
    dit_layout(&plan, m, n, &b);
    dc_status st = dc__runner_reserve_plan(r, &plan, m->decode_floats, err);
    if (st != DC_OK) return st;
    dit_layout(&r->arena, m, n, &b);

    dit_embed(m, r, &b, x, n);                                  /* tok [n, T, D] */
    dit_condition(m, r, &b, t, y, n);                           /* sc [n, D] */
    for (int i = 0; i < m->depth; i++) dit_block(m, r, &m->blocks[i], &b, n);
    dit_final(m, r, &b, out, n);                                /* out [n, Co, S, S] */
    return DC_OK;
}
