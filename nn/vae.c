/* nn/vae.c - the Stable Diffusion VAE encoder (AutoencoderKL's encoder +
   quant_conv, diffusers 0.25 structure), any size.

   The classifier works in latent space: each image is encoded once, and its
   latent mean (times scaling_factor) is what gets noised and denoised.

     x = conv_in(image)                                   [ch0, H, W]
     per down block i (width ch[i], resolution H/2^i):
       layers x ResnetBlock2D:  h = conv1(SiLU(GN(x))); h = conv2(SiLU(GN(h)))
                                x = (x or conv_shortcut(x)) + h
       then, except on the last block, Downsample2D:
                                x = conv3x3 stride 2 of x padded (0,1,0,1)
     mid: resnet; x += to_out(attention(GN(x))) (one head, width C); resnet
     moments = quant_conv(conv_out(SiLU(GN(x))))          [2L, H/f, W/f]
     mean = moments[:L]; std = exp(0.5 * clamp(moments[L:], -30, 20))

   GroupNorm eps is 1e-6 everywhere; output_scale_factor and
   rescale_output_factor are 1 in the VAE, so they do not appear.

   Memory. At 512 px the first maps are 128 x 512 x 512 floats, 134 MB
   each; a resnet needs three of them alive (its input for the residual, the
   normalised input, the first conv's output). So an image is encoded with
   three maps of the largest size, A (the running state) and B, C (scratch),
   and images go one at a time: the arena does not grow with the batch (the
   sgemms are already wide, N = h*w, so batching would gain nothing). The
   mid attention's buffers (normalised tokens, q, k, v, score blocks) reuse
   the memory of B and C, which hold nothing then. Peak, any batch:
   3 maps + im2col tiles (2.4 MB per thread), about 3 * 4 * ch0 * h * w
   bytes: for SD's VAE 105.4 MB at 256 px and 407.4 MB at 512 px with 2
   threads (tests/test_vae.c prints them). Weights stored f16 or q8 are
   decoded one layer at a time into the runner's scratch.

   Measured on the 2-core development machine, SD-size encoder (random
   weights): 1.26 s at 256 px and 5.25 s at 512 px per image, against 1.70 s
   and 6.85 s for PyTorch 1.13 fp32 in the same session; max |mean - torch
   fp32| 4.9e-6. */
#include "nn.h"

#include <math.h>
#include <string.h>

#define VAE_EPS 1e-6f
#define VAE_MAX_SIDE 16384 /* keeps h*w and every int size in range */

/* ---- build ---- */

static dc_status vae_meta_int(const dc__weights *w, const char *prefix, const char *key, int *v,
                              int lo, int hi, dc_error *err)
{
    char full[320];
    snprintf(full, sizeof full, "%s%s", prefix, key);
    return dc__meta_int_in(w, full, v, lo, hi, err);
}

/* ResnetBlock2D `name` from cin to cout channels */
static dc_status vae_load_resnet(dc__loader *L, dc__vae_resnet *r, int cin, int cout, const char *name)
{
    dc_status st;
    memset(r, 0, sizeof *r);
    r->cin = cin, r->cout = cout;
    if ((st = dc__load_norm(L, &r->norm1_w, &r->norm1_b, cin, "%s.norm1", name)) ||
        (st = dc__load_conv(L, &r->conv1_w, &r->conv1_b, cout, cin, 3, "%s.conv1", name)) ||
        (st = dc__load_norm(L, &r->norm2_w, &r->norm2_b, cout, "%s.norm2", name)) ||
        (st = dc__load_conv(L, &r->conv2_w, &r->conv2_b, cout, cout, 3, "%s.conv2", name)))
        return st;
    if (cin != cout)
        return dc__load_conv(L, &r->short_w, &r->short_b, cout, cin, 1, "%s.conv_shortcut", name);
    return DC_OK;
}

/* Reads and checks prefix + the metadata into m */
static dc_status vae_read_config(dc__vae *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    dc_status st;
    char key[320];
    int64_t ch[DC_VAE_MAX_BLOCKS];
    uint32_t nch = 0;
    double sf;
    if ((st = vae_meta_int(w, prefix, "in_channels", &m->in_ch, 1, 64, err)) ||
        (st = vae_meta_int(w, prefix, "latent_channels", &m->latent_ch, 1, 256, err)) ||
        (st = vae_meta_int(w, prefix, "layers_per_block", &m->layers, 1, DC_VAE_MAX_LAYERS, err)) ||
        (st = vae_meta_int(w, prefix, "norm_num_groups", &m->groups, 1, 4096, err)) ||
        (st = vae_meta_int(w, prefix, "sample_size", &m->sample_size, 1, 1 << 16, err)))
        return st;
    snprintf(key, sizeof key, "%sscaling_factor", prefix);
    if ((st = dc__meta_float(w, key, &sf, err))) return st;
    if (!(sf > 0 && sf < 1e6))
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s' = %g is not a positive scale",
                        w->path, key, sf);
    m->scaling_factor = (float)sf;
    snprintf(key, sizeof key, "%sblock_out_channels", prefix);
    if ((st = dc__meta_ints(w, key, ch, DC_VAE_MAX_BLOCKS, &nch, err))) return st;
    if (nch < 1)
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s' is empty", w->path, key);
    m->blocks = (int)nch;
    for (int i = 0; i < m->blocks; i++) {
        if (ch[i] < 1 || ch[i] > 8192 || ch[i] % m->groups)
            return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s'[%d] = %lld: need 1..8192 and a "
                            "multiple of norm_num_groups %d", w->path, key, i, (long long)ch[i],
                            m->groups);
        m->ch[i] = (int)ch[i];
    }
    return DC_OK;
}

dc_status dc__vae_build(dc__vae *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    memset(m, 0, sizeof *m);
    dc_status st;
    if (!prefix) prefix = "";
    if (strlen(prefix) > 64)
        return dc__fail(err, DC_ERR_INVALID, "VAE: tensor prefix '%.64s...' is too long", prefix);
    if ((st = vae_read_config(m, w, prefix, err))) return st;

    /* tensors, in forward order */
    int C = m->ch[m->blocks - 1], L2 = 2 * m->latent_ch;
    dc__loader L = {w, prefix, err, 0};
    char n[256];
    if ((st = dc__load_conv(&L, &m->conv_in_w, &m->conv_in_b, m->ch[0], m->in_ch, 3, "encoder.conv_in")))
        return st;
    for (int i = 0; i < m->blocks; i++) {
        for (int j = 0; j < m->layers; j++) {
            int cin = j == 0 ? m->ch[i > 0 ? i - 1 : 0] : m->ch[i];
            snprintf(n, sizeof n, "encoder.down_blocks.%d.resnets.%d", i, j);
            if ((st = vae_load_resnet(&L, &m->down[i][j], cin, m->ch[i], n))) return st;
        }
        if (i < m->blocks - 1 &&
            (st = dc__load_conv(&L, &m->down_w[i], &m->down_b[i], m->ch[i], m->ch[i], 3,
                                "encoder.down_blocks.%d.downsamplers.0.conv", i)))
            return st;
    }
#define VAE_ATTN "encoder.mid_block.attentions.0."
    if ((st = vae_load_resnet(&L, &m->mid[0], C, C, "encoder.mid_block.resnets.0")) ||
        (st = dc__load_norm(&L, &m->attn_norm_w, &m->attn_norm_b, C, VAE_ATTN "group_norm")) ||
        (st = dc__load_linear(&L, &m->q_w, &m->q_b, C, C, VAE_ATTN "to_q")) ||
        (st = dc__load_linear(&L, &m->k_w, &m->k_b, C, C, VAE_ATTN "to_k")) ||
        (st = dc__load_linear(&L, &m->v_w, &m->v_b, C, C, VAE_ATTN "to_v")) ||
        (st = dc__load_linear(&L, &m->o_w, &m->o_b, C, C, VAE_ATTN "to_out.0")) ||
        (st = vae_load_resnet(&L, &m->mid[1], C, C, "encoder.mid_block.resnets.1")) ||
        (st = dc__load_norm(&L, &m->norm_out_w, &m->norm_out_b, C, "encoder.conv_norm_out")) ||
        (st = dc__load_conv(&L, &m->conv_out_w, &m->conv_out_b, L2, C, 3, "encoder.conv_out")) ||
        (st = dc__load_conv(&L, &m->quant_w, &m->quant_b, L2, L2, 1, "quant_conv")))
        return st;
#undef VAE_ATTN
    m->decode_floats = L.decode_floats;
    return DC_OK;
}

/* ---- memory plan ---- */

/* The sizes one image needs, in floats (0 = overflow). */
typedef struct {
    int f;              /* downsampling factor 2^(blocks-1) */
    int hl, wl;         /* latent size */
    size_t map;         /* the largest feature map: A, B and C each hold one */
    size_t cols;        /* im2col tiles of the widest 3x3 conv */
    size_t tok;         /* C x hl*wl: the attention's token buffers */
    size_t ascratch;    /* the attention's score blocks */
} vae_sizes;

static int vae_sizes_of(const dc__vae *m, int h, int w, vae_sizes *s)
{
    memset(s, 0, sizeof *s);
    s->f = 1 << (m->blocks - 1);
    s->hl = h / s->f, s->wl = w / s->f;
    int maxc = m->in_ch;
    for (int i = 0; i < m->blocks; i++) {
        /* block i runs at h/2^i x w/2^i with its input width and its own */
        size_t hw = (size_t)(h >> i) * (size_t)(w >> i), sz;
        int cin = m->ch[i > 0 ? i - 1 : 0], c = cin > m->ch[i] ? cin : m->ch[i];
        if (!dc__mul_size(&sz, hw, (size_t)c)) return 0;
        if (sz > s->map) s->map = sz;
        if (c > maxc) maxc = c;
    }
    size_t hwl = (size_t)s->hl * s->wl, out;
    if (!dc__mul_size(&out, hwl, 2 * (size_t)m->latent_ch)) return 0;
    if (out > s->map) s->map = out; /* conv_out's and quant_conv's outputs live in B, C */
    dc__conv2d_shape cs = {1, maxc, 8, 8, 1, 3, 3, 1, 1, 1, 1, 1};
    s->cols = dc__conv2d_scratch_floats(&cs);
    s->tok = hwl * (size_t)m->ch[m->blocks - 1];
    s->ascratch = dc__attention_scratch_floats((int)hwl);
    return 1;
}

typedef struct {
    float *cols;                /* im2col tiles */
    float *A;                   /* [map] the running state, every phase */
    float *B, *C;               /* [map] scratch of the resnets, stem and head */
    float *tok, *q, *k, *v, *S; /* mid attention: [hw, C] x 4 and score blocks; over B and C */
} vae_bufs;

/* Hands out the buffers of one image. Run on a measuring arena it sizes the
   plan; on the real one it gives the same offsets. The attention buffers
   start where B does: B and C are dead while the attention runs. */
static void vae_layout(dc__arena *a, const vae_sizes *s, vae_bufs *b)
{
    b->cols = dc__arena_floats(a, s->cols);
    b->A = dc__arena_floats(a, s->map);
    size_t mark = dc__arena_mark(a);
    b->B = dc__arena_floats(a, s->map);
    b->C = dc__arena_floats(a, s->map);
    dc__arena_reset(a, mark);
    b->tok = dc__arena_floats(a, s->tok);
    b->q = dc__arena_floats(a, s->tok);
    b->k = dc__arena_floats(a, s->tok);
    b->v = dc__arena_floats(a, s->tok);
    b->S = dc__arena_floats(a, s->ascratch);
}

static dc_status vae_check_size(const dc__vae *m, int h, int w, dc_error *err)
{
    int f = 1 << (m->blocks - 1);
    if (h < 1 || w < 1 || h > VAE_MAX_SIDE || w > VAE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "VAE: image size %dx%d (h x w) is out of range "
                        "[1, %d]", h, w, VAE_MAX_SIDE);
    if (h % f || w % f)
        return dc__fail(err, DC_ERR_INVALID, "VAE: image size %dx%d (h x w) must be a multiple of "
                        "%d in both sides (the encoder halves it %d times)", h, w, f,
                        m->blocks - 1);
    return DC_OK;
}

size_t dc__vae_arena_bytes(const dc__vae *m, int h, int w)
{
    vae_sizes s;
    vae_bufs b;
    dc__arena plan;
    if (vae_check_size(m, h, w, NULL) != DC_OK || !vae_sizes_of(m, h, w, &s)) return 0;
    dc__arena_measure(&plan);
    vae_layout(&plan, &s, &b);
    return plan.peak;
}

/* ---- layers ---- */

/* y = conv(x) on one image, W [cout, cin, k, k] padded k/2: the size is kept */
static void vae_conv(dc__runner *r, float *y, const float *x, const dc__tensor *W,
                     const dc__tensor *bias, int h, int w, float *cols)
{
    dc__conv2d_shape s = dc__conv2d_shape_of(W, 1, h, w, 1);
    dc__conv2d(r, y, x, W, bias, &s, cols);
}

static void vae_gn_silu(const dc__vae *m, float *y, const float *x, const dc__tensor *g,
                        const dc__tensor *b, int c, int hw)
{
    dc__group_norm_forward(y, x, g->data, b->data, 1, c, hw, m->groups, VAE_EPS, 1);
}

/* ResnetBlock2D on A [cin, h, w] -> A [cout, h, w]; B and C are scratch. */
static void vae_resnet(const dc__vae *m, dc__runner *r, const dc__vae_resnet *rn, vae_bufs *b,
                       int h, int w)
{
    int hw = h * w;
    vae_gn_silu(m, b->B, b->A, rn->norm1_w, rn->norm1_b, rn->cin, hw);   /* B [cin, hw] */
    vae_conv(r, b->C, b->B, rn->conv1_w, rn->conv1_b, h, w, b->cols);    /* C [cout, hw] */
    vae_gn_silu(m, b->C, b->C, rn->norm2_w, rn->norm2_b, rn->cout, hw);  /* in place */
    vae_conv(r, b->B, b->C, rn->conv2_w, rn->conv2_b, h, w, b->cols);    /* B [cout, hw] */
    size_t n = (size_t)rn->cout * hw;
    if (rn->short_w) {
        vae_conv(r, b->C, b->A, rn->short_w, rn->short_b, h, w, b->cols); /* 1x1 */
        dc__add_forward(b->A, b->C, b->B, n);                            /* A [cout, hw] */
    } else {
        dc__add_forward(b->A, b->A, b->B, n);
    }
}

/* Downsample2D: A [c, h, w] -> A [c, h/2, w/2], a 3x3 stride-2 conv of A
   padded right and bottom by one, through B */
static void vae_downsample(const dc__vae *m, dc__runner *r, int i, vae_bufs *b, int h, int w)
{
    dc__conv2d_shape s = dc__conv2d_shape_of(m->down_w[i], 1, h, w, 2);
    s.pad_t = s.pad_l = 0, s.pad_b = s.pad_r = 1;
    dc__conv2d(r, b->B, b->A, m->down_w[i], m->down_b[i], &s, b->cols);
    memcpy(b->A, b->B, sizeof(float) * (size_t)m->ch[i] * (h / 2) * (w / 2));
}

/* dst [cols, rows] = src [rows, cols]^T, in 32x32 tiles */
static void vae_transpose(float *dst, const float *src, int rows, int cols)
{
    int tr = (rows + 31) / 32, tc = (cols + 31) / 32;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < tr * tc; t++) {
        int r0 = (t / tc) * 32, c0 = (t % tc) * 32;
        int r1 = r0 + 32 < rows ? r0 + 32 : rows, c1 = c0 + 32 < cols ? c0 + 32 : cols;
        for (int i = r0; i < r1; i++)
            for (int j = c0; j < c1; j++) dst[(size_t)j * rows + i] = src[(size_t)i * cols + j];
    }
}

/* The mid block's self-attention on A [C, hw], in place: one head of width
   C over the hw positions, group norm first, residual. */
static void vae_attention(const dc__vae *m, dc__runner *r, vae_bufs *b, int hw)
{
    int C = m->ch[m->blocks - 1];
    dc__group_norm_forward(b->v, b->A, m->attn_norm_w->data, m->attn_norm_b->data, 1, C, hw,
                           m->groups, VAE_EPS, 0);                  /* v [C, hw] */
    vae_transpose(b->tok, b->v, C, hw);                              /* tok [hw, C] */
    dc__linear(r, b->q, b->tok, m->q_w, m->q_b, hw);                 /* [hw, C] each */
    dc__linear(r, b->k, b->tok, m->k_w, m->k_b, hw);
    dc__linear(r, b->v, b->tok, m->v_w, m->v_b, hw);
    size_t bs = (size_t)hw * C;
    dc__attn_shape as = {1, 1, hw, hw, C, C, C, C, C, bs, bs, bs, bs, 1.0f / sqrtf((float)C), 0};
    dc__attention_forward(b->tok, b->q, b->k, b->v, &as, b->S);     /* tok [hw, C] */
    dc__linear(r, b->q, b->tok, m->o_w, m->o_b, hw);                 /* q [hw, C] */
    vae_transpose(b->v, b->q, hw, C);                                /* v [C, hw] */
    dc__add_forward(b->A, b->A, b->v, bs);
}

/* ---- encode ---- */

/* One image [in_ch, h, w] -> moments [2L, h/f, w/f], left in B */
static void vae_encode_one(const dc__vae *m, dc__runner *r, vae_bufs *b, const float *image, int h,
                           int w)
{
    int C = m->ch[m->blocks - 1];
    vae_conv(r, b->A, image, m->conv_in_w, m->conv_in_b, h, w, b->cols);    /* A [ch0, h, w] */
    for (int i = 0; i < m->blocks; i++) {
        for (int j = 0; j < m->layers; j++) vae_resnet(m, r, &m->down[i][j], b, h, w);
        if (i < m->blocks - 1) {                                             /* A [ch[i], h/2, w/2] */
            vae_downsample(m, r, i, b, h, w);
            h /= 2, w /= 2;
        }
    }
    /* mid block (the attention's buffers overlay B and C) */
    vae_resnet(m, r, &m->mid[0], b, h, w);
    vae_attention(m, r, b, h * w);
    vae_resnet(m, r, &m->mid[1], b, h, w);
    /* head: moments = quant_conv(conv_out(SiLU(GN(A)))) */
    vae_gn_silu(m, b->B, b->A, m->norm_out_w, m->norm_out_b, C, h * w);
    vae_conv(r, b->C, b->B, m->conv_out_w, m->conv_out_b, h, w, b->cols);
    vae_conv(r, b->B, b->C, m->quant_w, m->quant_b, h, w, b->cols);         /* B [2L, h, w] */
}

dc_status dc__vae_encode(const dc__vae *m, dc__runner *r, float *mean, float *std_or_null,
                         const float *image, int n, int h, int w, dc_error *err)
{
    dc_status st;
    if (!m || !r || !mean || !image || n < 1)
        return dc__fail(err, DC_ERR_INVALID, "VAE: encode needs a model, a runner, an image, a "
                        "mean buffer and n >= 1 (n = %d)", n);
    if ((st = vae_check_size(m, h, w, err))) return st;
    vae_sizes s;
    if (!vae_sizes_of(m, h, w, &s))
        return dc__fail(err, DC_ERR_NOMEM, "VAE: a %dx%d image needs more memory than size_t "
                        "counts", h, w);

    /* plan, then allocate: vae_layout measures, then hands out the memory */
    dc__arena plan;
    vae_bufs b;
    dc__arena_measure(&plan);
    vae_layout(&plan, &s, &b);
    if ((st = dc__runner_reserve_plan(r, &plan, m->decode_floats, err))) return st;
    vae_layout(&r->arena, &s, &b);

    size_t img = (size_t)m->in_ch * h * w, lat = (size_t)m->latent_ch * s.hl * s.wl;
    for (int i = 0; i < n; i++) {
        vae_encode_one(m, r, &b, image + i * img, h, w);
        memcpy(mean + i * lat, b.B, sizeof(float) * lat);
        if (std_or_null) {
            const float *lv = b.B + lat;
            float *sd = std_or_null + i * lat;
            for (size_t k = 0; k < lat; k++) {
                float x = lv[k] < -30.0f ? -30.0f : lv[k] > 20.0f ? 20.0f : lv[k]; /* NaN stays */
                sd[k] = expf(0.5f * x);
            }
        }
    }
    return DC_OK;
}
