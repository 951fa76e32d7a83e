/* nn/unet.c - the Stable Diffusion UNet (diffusers 0.25's
   UNet2DConditionModel, as SD 1.x and 2.x use it), any size its config
   describes. This is the classifier's hot path: every (timestep, noise,
   class) triple is one evaluation, 803 GFLOP per sample for SD 1.5 at a
   64x64 latent.

     emb  = linear_2(SiLU(linear_1(sinusoid(t))))            [n, Td]
     x    = conv_in(sample)                                  skip 0
     down block i (width ch[i], resolution h/2^i):
       layers x { x = resnet(x, emb); CrossAttn: x = transformer(x, ctx); keep x as a skip }
       except the last: x = conv3x3 stride 2 pad 1 (x); keep x as a skip
     mid:  x = resnet(x); x = transformer(x); x = resnet(x)   (mid_block_scale_factor)
     up block i (mirror order), layers + 1 times:
       x = resnet(concat(x, last skip), emb); CrossAttn: x = transformer(x, ctx)
       except the last: x = conv3x3(nearest 2x(x))
     out  = conv_out(SiLU(GroupNorm(x)))

   resnet(x, emb):  h = conv1(SiLU(GN(x))) + time_emb_proj(SiLU(emb))[:, :, None, None]
                    h = conv2(SiLU(GN(h)));  out = ((x or conv_shortcut(x)) + h) / scale
   transformer(x):  t = proj_in(GN(x) as tokens [n, hw, C])            GN eps 1e-6
                    per block: t += attn1(LN1(t)); t += attn2(LN2(t), ctx);
                               t += ff.net.2(GEGLU(ff.net.0.proj(LN3(t))))
                    x = x + proj_out(t) as NCHW
   With use_linear_projection (SD 2.x) proj_in/out are nn.Linear applied to
   the tokens; without (SD 1.x) they are 1x1 convs applied before the
   permute (in) and after it (out). A 1x1 conv is the same per-pixel linear
   map, so both run here as one sgemm over the n * hw token rows: the
   permute order changes nothing but the layout, and this way all samples
   share one sgemm.

   Layout. Activations are NCHW between layers; the transformer works on
   tokens [n, hw, D] where heads are column slices (dc__attention_forward
   reads q/k/v in place). Linear layers run over all n * tokens rows at
   once through dc__linear; convolutions go through dc__conv2d, which tiles
   im2col per (sample, pixel tile).

   Memory: plan, then allocate, as every network in nn/ does (nn/nn.h).
   Here the walk itself is the plan: unet_walk runs first on a measuring
   arena, where every step only counts its buffers, then on the runner's
   arena of exactly the measured peak. Buffers that must live on (the time
   embedding, each skip until the up path pops it, the up path's running
   state) are taken and never given back; each step takes its scratch
   above them and returns it when done, so the scratch of a resnet, a
   transformer or an upsampler share one region. The transformer's
   feed-forward hidden layer (8D floats per token before GEGLU) is
   computed in row chunks to keep that region small. Weights stored f16 or
   q8 are decoded a layer at a time into the runner's scratch (both
   feed-forward matrices at once, since the chunks alternate them).

   The file reads bottom-up: build, the state of one call and the
   class-independent prefix, the layers (resnet, transformer), the walk's
   other steps, then unet_walk, the network on one screen. Speed and memory at SD 1.5 size, next to
   PyTorch: bench/sd_bench.c, figures in bench/README.md. */
#include "nn.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#define UNET_TF_GN_EPS 1e-6f      /* Transformer2DModel's GroupNorm */
#define UNET_LN_EPS 1e-5f         /* BasicTransformerBlock's LayerNorms (norm_eps default) */
#define UNET_MAX_PERIOD 10000.0f  /* get_timestep_embedding's max_period */
#define UNET_MAX_SIDE 65536       /* keeps h*w and every int size in range */
/* Floats of feed-forward hidden state per chunk of token rows ([rows, 8D]
   before GEGLU, [rows, 4D] after): 16 MB, enough rows (>= 270 at D = 1280)
   for an efficient sgemm. */
#define UNET_FF_CHUNK_FLOATS ((size_t)1 << 22)
#define UNET_MAX_SKIPS (1 + DC_UNET_MAX_BLOCKS * (DC_UNET_MAX_LAYERS + 1))

/* ---- build ---- */

typedef struct {
    dc__unet *m;
    dc__loader t;   /* the tensors; its prefix is the metadata keys' too */
    int skips[UNET_MAX_SKIPS], nskip; /* channels of each activation the down path keeps */
} unet_loader;

/* A GroupNorm's affine, base + sub, on c channels, which norm_num_groups must divide */
static dc_status unet_norm(unet_loader *L, const dc__tensor **g, const dc__tensor **b, int c,
                           const char *base, const char *sub)
{
    if (c % L->m->groups)
        return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: %s%s%s has %d channels, not divisible by "
                        "norm_num_groups %d", L->t.w->path, L->t.prefix, base, sub, c, L->m->groups);
    return dc__load_norm(&L->t, g, b, c, "%s%s", base, sub);
}

/* The next resnet of the pool, named b (a diffusers module path) */
static dc_status unet_load_resnet(unet_loader *L, int cin, int cout, const char *b)
{
    dc__unet *m = L->m;
    dc__loader *T = &L->t;
    if (m->n_resnets >= DC_UNET_MAX_RESNETS)
        return dc__fail(T->err, DC_ERR_FORMAT, "%s: more than %d resnets", T->w->path,
                        DC_UNET_MAX_RESNETS);
    dc__unet_resnet *r = &m->resnets[m->n_resnets++];
    r->cin = cin, r->cout = cout;
    dc_status st;
    if ((st = unet_norm(L, &r->norm1_w, &r->norm1_b, cin, b, ".norm1")) ||
        (st = dc__load_conv(T, &r->conv1_w, &r->conv1_b, cout, cin, 3, "%s.conv1", b)) ||
        (st = dc__load_linear(T, &r->temb_w, &r->temb_b, cout, m->temb_dim, "%s.time_emb_proj", b)) ||
        (st = unet_norm(L, &r->norm2_w, &r->norm2_b, cout, b, ".norm2")) ||
        (st = dc__load_conv(T, &r->conv2_w, &r->conv2_b, cout, cout, 3, "%s.conv2", b)))
        return st;
    if (cin != cout &&
        (st = dc__load_conv(T, &r->short_w, &r->short_b, cout, cin, 1, "%s.conv_shortcut", b)))
        return st;
    return DC_OK;
}

/* The next transformer of the pool (and its blocks), named b; *index gets its place */
static dc_status unet_load_transformer(unet_loader *L, int *index, int c, int heads, int layers,
                                       const char *b)
{
    dc__unet *m = L->m;
    dc__loader *T = &L->t;
    if (m->n_transformers >= DC_UNET_MAX_TRANSFORMERS || m->n_tblocks + layers > DC_UNET_MAX_TBLOCKS)
        return dc__fail(T->err, DC_ERR_FORMAT, "%s: more than %d transformer blocks", T->w->path,
                        DC_UNET_MAX_TBLOCKS);
    *index = m->n_transformers;
    dc__unet_transformer *tf = &m->transformers[m->n_transformers++];
    /* diffusers: Transformer2DModel(heads, c // heads, in_channels=c) */
    tf->c = c, tf->heads = heads, tf->dh = c / heads, tf->inner = heads * (c / heads);
    tf->layers = layers, tf->first = m->n_tblocks;
    m->n_tblocks += layers;
    int D = tf->inner, X = m->cross_dim;
    dc_status st;
    /* proj_in/out: nn.Linear with use_linear_projection, else a 1x1 conv */
    if ((st = unet_norm(L, &tf->norm_w, &tf->norm_b, c, b, ".norm")) ||
        (st = m->linear_proj
                  ? dc__load_linear(T, &tf->proj_in_w, &tf->proj_in_b, D, c, "%s.proj_in", b)
                  : dc__load_conv(T, &tf->proj_in_w, &tf->proj_in_b, D, c, 1, "%s.proj_in", b)) ||
        (st = m->linear_proj
                  ? dc__load_linear(T, &tf->proj_out_w, &tf->proj_out_b, c, D, "%s.proj_out", b)
                  : dc__load_conv(T, &tf->proj_out_w, &tf->proj_out_b, c, D, 1, "%s.proj_out", b)))
        return st;
    for (int k = 0; k < layers; k++) {
        dc__unet_tblock *t = &m->tblocks[tf->first + k];
#define UNET_BLK "%s.transformer_blocks.%d."
        if ((st = dc__load_norm(T, &t->norm1_w, &t->norm1_b, D, UNET_BLK "norm1", b, k)) ||
            (st = dc__load_linear(T, &t->q1, NULL, D, D, UNET_BLK "attn1.to_q", b, k)) ||
            (st = dc__load_linear(T, &t->k1, NULL, D, D, UNET_BLK "attn1.to_k", b, k)) ||
            (st = dc__load_linear(T, &t->v1, NULL, D, D, UNET_BLK "attn1.to_v", b, k)) ||
            (st = dc__load_linear(T, &t->o1_w, &t->o1_b, D, D, UNET_BLK "attn1.to_out.0", b, k)) ||
            (st = dc__load_norm(T, &t->norm2_w, &t->norm2_b, D, UNET_BLK "norm2", b, k)) ||
            (st = dc__load_linear(T, &t->q2, NULL, D, D, UNET_BLK "attn2.to_q", b, k)) ||
            (st = dc__load_linear(T, &t->k2, NULL, D, X, UNET_BLK "attn2.to_k", b, k)) ||
            (st = dc__load_linear(T, &t->v2, NULL, D, X, UNET_BLK "attn2.to_v", b, k)) ||
            (st = dc__load_linear(T, &t->o2_w, &t->o2_b, D, D, UNET_BLK "attn2.to_out.0", b, k)) ||
            (st = dc__load_norm(T, &t->norm3_w, &t->norm3_b, D, UNET_BLK "norm3", b, k)) ||
            (st = dc__load_linear(T, &t->ff1_w, &t->ff1_b, 8 * (int64_t)D, D,
                                  UNET_BLK "ff.net.0.proj", b, k)) ||
            (st = dc__load_linear(T, &t->ff2_w, &t->ff2_b, D, 4 * (int64_t)D, UNET_BLK "ff.net.2",
                                  b, k)))
            return st;
#undef UNET_BLK
        /* the feed-forward chunks use both matrices in turn: decode them side by side */
        size_t both = dc__decode_floats(t->ff1_w) + dc__decode_floats(t->ff2_w);
        if (both > T->decode_floats) T->decode_floats = both;
    }
    return DC_OK;
}

static dc_status unet_meta_int(unet_loader *L, const char *key, int *v, int lo, int hi)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s", L->t.prefix, key);
    return dc__meta_int_in(L->t.w, full, v, lo, hi, L->t.err);
}

static dc_status unet_meta_float(unet_loader *L, const char *key, float *v, double lo, double hi)
{
    char full[160];
    double x;
    snprintf(full, sizeof full, "%s%s", L->t.prefix, key);
    dc_status st = dc__meta_float(L->t.w, full, &x, L->t.err);
    if (st != DC_OK) return st;
    if (!(x >= lo && x <= hi))
        return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s' = %g is out of range [%g, %g]",
                        L->t.w->path, full, x, lo, hi);
    *v = (float)x;
    return DC_OK;
}

/* An int array with one value per block (count must be m->blocks, unless
   blocks is 0: then it sets m->blocks), each in [lo, hi]. */
static dc_status unet_meta_blocks(unet_loader *L, const char *key, int *v, int lo, int hi)
{
    char full[160];
    int64_t x[DC_UNET_MAX_BLOCKS];
    uint32_t count;
    snprintf(full, sizeof full, "%s%s", L->t.prefix, key);
    dc_status st = dc__meta_ints(L->t.w, full, x, DC_UNET_MAX_BLOCKS, &count, L->t.err);
    if (st != DC_OK) return st;
    if (L->m->blocks == 0) {
        if (count < 1)
            return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s' is empty", L->t.w->path, full);
        L->m->blocks = (int)count;
    } else if ((int)count != L->m->blocks) {
        return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s' has %u values for %d blocks",
                        L->t.w->path, full, count, L->m->blocks);
    }
    for (uint32_t i = 0; i < count; i++) {
        if (x[i] < lo || x[i] > hi)
            return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s'[%u] = %lld is out of range "
                            "[%d, %d]", L->t.w->path, full, i, (long long)x[i], lo, hi);
        v[i] = (int)x[i];
    }
    return DC_OK;
}

/* Block types: cross[i] = 1 for `cross_name`, 0 for `plain_name`. */
static dc_status unet_meta_types(unet_loader *L, const char *key, int *cross, const char *cross_name,
                                 const char *plain_name)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s", L->t.prefix, key);
    const dc__meta *mt = dc__meta_find(L->t.w, full);
    if (mt && mt->kind == DC_META_STRS && (int)mt->count != L->m->blocks)
        return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s' has %u types for %d blocks",
                        L->t.w->path, full, mt->count, L->m->blocks);
    for (int i = 0; i < L->m->blocks; i++) {
        const char *s;
        uint32_t len;
        dc_status st = dc__meta_strs_at(L->t.w, full, (uint32_t)i, &s, &len, L->t.err);
        if (st != DC_OK) return st;
        if (len == strlen(cross_name) && !memcmp(s, cross_name, len)) cross[i] = 1;
        else if (len == strlen(plain_name) && !memcmp(s, plain_name, len)) cross[i] = 0;
        else
            return dc__fail(L->t.err, DC_ERR_FORMAT, "%s: metadata '%s'[%d] = '%.*s': dc runs %s "
                            "and %s", L->t.w->path, full, i, (int)len, s, cross_name, plain_name);
    }
    return DC_OK;
}

/* The per-block config that shapes the pools but is not kept in dc__unet */
typedef struct {
    int layers[DC_UNET_MAX_BLOCKS];         /* layers_per_block */
    int tlayers[DC_UNET_MAX_BLOCKS];        /* transformer_layers_per_block */
    int down_cross[DC_UNET_MAX_BLOCKS], up_cross[DC_UNET_MAX_BLOCKS]; /* CrossAttn* blocks */
} unet_config;

/* Reads and checks the metadata: hyper-parameters into L->m, the rest into c */
static dc_status unet_read_config(unet_loader *L, unet_config *c)
{
    dc__unet *m = L->m;
    const dc__weights *w = L->t.w;
    dc_error *err = L->t.err;
    int head_dim[DC_UNET_MAX_BLOCKS];
    dc_status st;
    const int big = 1 << 16;
    if ((st = unet_meta_blocks(L, "block_out_channels", m->ch, 1, big)) ||
        (st = unet_meta_blocks(L, "layers_per_block", c->layers, 1, DC_UNET_MAX_LAYERS)) ||
        (st = unet_meta_blocks(L, "transformer_layers_per_block", c->tlayers, 1, DC_UNET_MAX_TBLOCKS)) ||
        (st = unet_meta_blocks(L, "attention_head_dim", head_dim, 1, big)) ||
        (st = unet_meta_types(L, "down_block_types", c->down_cross, "CrossAttnDownBlock2D", "DownBlock2D")) ||
        (st = unet_meta_types(L, "up_block_types", c->up_cross, "CrossAttnUpBlock2D", "UpBlock2D")) ||
        (st = unet_meta_int(L, "in_channels", &m->in_ch, 1, big)) ||
        (st = unet_meta_int(L, "out_channels", &m->out_ch, 1, big)) ||
        (st = unet_meta_int(L, "norm_num_groups", &m->groups, 1, big)) ||
        (st = unet_meta_int(L, "cross_attention_dim", &m->cross_dim, 1, big)) ||
        (st = unet_meta_int(L, "time_embed_dim", &m->temb_dim, 1, big)) ||
        (st = unet_meta_int(L, "sample_size", &m->sample_size, 1, big)) ||
        (st = unet_meta_int(L, "use_linear_projection", &m->linear_proj, 0, 1)) ||
        (st = unet_meta_int(L, "upcast_attention", &m->upcast_attention, 0, 1)) ||
        (st = unet_meta_int(L, "flip_sin_to_cos", &m->flip_sin_to_cos, 0, 1)) ||
        (st = unet_meta_int(L, "center_input_sample", &m->center_input, 0, 1)) ||
        (st = unet_meta_float(L, "freq_shift", &m->freq_shift, -1e6, 1e6)) ||
        (st = unet_meta_float(L, "norm_eps", &m->norm_eps, 1e-30, 1.0)) ||
        (st = unet_meta_float(L, "mid_block_scale_factor", &m->mid_scale, 1e-6, 1e6)))
        return st;
    int B = m->blocks;
    /* heads per block: diffusers 0.25 passes `num_attention_heads or
       attention_head_dim` to the blocks as the number of heads */
    char key[160];
    snprintf(key, sizeof key, "%snum_attention_heads", L->t.prefix);
    if (dc__meta_find(w, key)) {
        if ((st = unet_meta_blocks(L, "num_attention_heads", m->heads, 1, big))) return st;
    } else {
        memcpy(m->heads, head_dim, sizeof head_dim);
    }
    for (int i = 0; i < B; i++)
        if (m->heads[i] > m->ch[i])
            return dc__fail(err, DC_ERR_FORMAT, "%s: block %d has %d heads for %d channels", w->path,
                            i, m->heads[i], m->ch[i]);
    if (m->ch[0] % 2)
        return dc__fail(err, DC_ERR_FORMAT, "%s: block_out_channels[0] = %d: the timestep "
                        "embedding needs an even width", w->path, m->ch[0]);
    int half = m->ch[0] / 2;
    if ((float)half - m->freq_shift == 0.0f)
        return dc__fail(err, DC_ERR_FORMAT, "%s: freq_shift %g divides by zero in the timestep "
                        "embedding", w->path, m->freq_shift);
    return DC_OK;
}

/* Down block i: its resnets (+ transformers), then its downsampler; the
   channels of every output are pushed on L->skips */
static dc_status unet_load_down(unet_loader *L, const unet_config *cf, int i)
{
    dc__unet *m = L->m;
    dc__unet_block *blk = &m->down[i];
    int c = m->ch[i], cin = m->ch[i > 0 ? i - 1 : 0];
    dc_status st;
    blk->cross = cf->down_cross[i], blk->layers = cf->layers[i], blk->cout = c;
    blk->resnet0 = m->n_resnets, blk->attn0 = m->n_transformers;
    for (int j = 0; j < blk->layers; j++) {
        int ti;
        char rb[64], tb[64];
        snprintf(rb, sizeof rb, "down_blocks.%d.resnets.%d", i, j);
        snprintf(tb, sizeof tb, "down_blocks.%d.attentions.%d", i, j);
        if ((st = unet_load_resnet(L, j ? c : cin, c, rb)) ||
            (blk->cross && (st = unet_load_transformer(L, &ti, c, m->heads[i], cf->tlayers[i], tb))))
            return st;
        L->skips[L->nskip++] = c;
    }
    if (i < m->blocks - 1) {
        if ((st = dc__load_conv(&L->t, &blk->resample_w, &blk->resample_b, c, c, 3,
                                "down_blocks.%d.downsamplers.0.conv", i)))
            return st;
        L->skips[L->nskip++] = c;
    }
    return DC_OK;
}

/* Up block i: mirrors down block r = B-1-i and pops its skips */
static dc_status unet_load_up(unet_loader *L, const unet_config *cf, int i)
{
    dc__unet *m = L->m;
    dc__unet_block *blk = &m->up[i];
    int B = m->blocks, r = B - 1 - i, co = m->ch[r], ci = m->ch[r > 0 ? r - 1 : 0];
    int prev = m->ch[i > 0 ? B - i : B - 1]; /* the previous up block's width, or the mid block's */
    dc_status st;
    blk->cross = cf->up_cross[i], blk->layers = cf->layers[r] + 1, blk->cout = co;
    blk->resnet0 = m->n_resnets, blk->attn0 = m->n_transformers;
    for (int j = 0; j < blk->layers; j++) {
        /* diffusers' res_skip_channels; it always matches the skip the
           down path left on top of the stack (block r's resnets, then
           block r-1's downsampler or conv_in), whatever the layer counts */
        int skip = j == blk->layers - 1 ? ci : co;
        DC_ASSERT(L->nskip > 0 && L->skips[L->nskip - 1] == skip);
        L->nskip--;
        int ti;
        char rb[64], tb[64];
        snprintf(rb, sizeof rb, "up_blocks.%d.resnets.%d", i, j);
        snprintf(tb, sizeof tb, "up_blocks.%d.attentions.%d", i, j);
        if ((st = unet_load_resnet(L, (j ? co : prev) + skip, co, rb)) ||
            (blk->cross && (st = unet_load_transformer(L, &ti, co, m->heads[r], cf->tlayers[r], tb))))
            return st;
    }
    if (i < B - 1 && (st = dc__load_conv(&L->t, &blk->resample_w, &blk->resample_b, co, co, 3,
                                         "up_blocks.%d.upsamplers.0.conv", i)))
        return st;
    return DC_OK;
}

dc_status dc__unet_build(dc__unet *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    memset(m, 0, sizeof *m);
    unet_loader L = {m, {w, prefix, err, 0}, {0}, 0};
    unet_config cf;
    dc_status st = unet_read_config(&L, &cf);
    if (st != DC_OK) return st;
    int B = m->blocks, c0 = m->ch[0], C = m->ch[B - 1], Td = m->temb_dim;

    if ((st = dc__load_conv(&L.t, &m->conv_in_w, &m->conv_in_b, c0, m->in_ch, 3, "conv_in")) ||
        (st = dc__load_linear(&L.t, &m->t1_w, &m->t1_b, Td, c0, "time_embedding.linear_1")) ||
        (st = dc__load_linear(&L.t, &m->t2_w, &m->t2_b, Td, Td, "time_embedding.linear_2")))
        return st;
    L.skips[L.nskip++] = c0;
    for (int i = 0; i < B; i++)
        if ((st = unet_load_down(&L, &cf, i))) return st;
    m->mid_resnet0 = m->n_resnets;
    if ((st = unet_load_resnet(&L, C, C, "mid_block.resnets.0")) ||
        (st = unet_load_transformer(&L, &m->mid_attn, C, m->heads[B - 1], cf.tlayers[B - 1],
                                    "mid_block.attentions.0")) ||
        (st = unet_load_resnet(&L, C, C, "mid_block.resnets.1")))
        return st;
    for (int i = 0; i < B; i++)
        if ((st = unet_load_up(&L, &cf, i))) return st;
    DC_ASSERT(L.nskip == 0); /* conv_in + sum(layers) + (B - 1) downsamplers were pushed */
    if ((st = unet_norm(&L, &m->norm_out_w, &m->norm_out_b, c0, "conv_norm_out", "")) ||
        (st = dc__load_conv(&L.t, &m->conv_out_w, &m->conv_out_b, m->out_ch, c0, 3, "conv_out")))
        return st;
    m->decode_floats = L.t.decode_floats;
    return DC_OK;
}

/* ---- forward: the state of one call ---- */

/* The skips: every down-path output, kept (for all items) until the up path reads it */
typedef struct {
    float *x[UNET_MAX_SKIPS];
    size_t per_item[UNET_MAX_SKIPS];    /* floats per item: c * h * w */
    int c[UNET_MAX_SKIPS];
    int n;
} unet_skips;

typedef struct {
    const dc__unet *m;
    dc__runner *r;
    dc__arena *a;
    int run;                /* 0: measuring pass: buffers are counted, nothing is computed */
    int n, ctx_len;
    const float *context;   /* [n, ctx_len, cross_dim] */
    float *stemb;           /* SiLU(emb) [n, Td]: what every resnet's time_emb_proj reads */
    unet_skips skips;
    /* the class-independent prefix (unet_share_prefix): while `shared`, the
       layers run on the n distinct (sample, timestep) items only */
    int shared, n_all;
    int *unique_of;         /* [n] item -> its distinct item's slot, then [n] scratch */
    float *stemb_all;
} unet_run;

static size_t unet_max(size_t a, size_t b) { return a > b ? a : b; }

/* ---- forward: the class-independent prefix ----

   Everything before the first cross-attention sees only the noised sample
   and the timestep, not the prompt. The classifier sends every class at
   one (timestep, noise) with the same sample and timestep, so the prefix
   (conv_in and the resnets before the first transformer: for SD 1.x
   conv_in and the first 320-channel resnet at full size, ~2% of the work)
   runs once per distinct (sample, timestep) pair and is copied to the
   other items. Items are compared bit for bit, so any caller gets the
   same result as without sharing. The buffers are planned at full size. */

/* Finds the distinct items; if some repeat, the layers from here to
   unet_end_prefix run on those only (u->n of them, in first-seen order).
   Returns the sample they read. */
static const float *unet_share_prefix(unet_run *u, const float *sample, const float *timesteps, int H,
                                      int W)
{
    int n = u->n, nu = 0, Td = u->m->temb_dim;
    size_t per_item = (size_t)u->m->in_ch * H * W;
    float *sample_u = dc__arena_take(u->a, n, per_item, 1), *stemb_u = dc__arena_take(u->a, n, Td, 1);
    u->unique_of = (int *)dc__arena_take(u->a, n, 2, 1); /* float-sized slots hold ints */
    u->n_all = n, u->stemb_all = u->stemb;
    if (!u->run) return sample;
    int *first = u->unique_of + n; /* [n] scratch: slot -> its first item */
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < nu && !(timesteps[first[k]] == timesteps[i] &&
                           !memcmp(sample + (size_t)first[k] * per_item, sample + (size_t)i * per_item,
                                   sizeof(float) * per_item)))
            k++;
        if (k == nu) first[nu++] = i;
        u->unique_of[i] = k;
    }
    if (nu == n) return sample;
    for (int k = 0; k < nu; k++) {
        memcpy(sample_u + (size_t)k * per_item, sample + (size_t)first[k] * per_item, sizeof(float) * per_item);
        memcpy(stemb_u + (size_t)k * Td, u->stemb + (size_t)first[k] * Td, sizeof(float) * Td);
    }
    u->shared = 1;
    u->n = nu;
    u->stemb = stemb_u;
    return sample_u;
}

/* End of the prefix: the skips so far hold the distinct items; spread
   them to all n items in place. Item i needs slot unique_of[i] <= i (slots
   are in first-seen order), so walking down from the last item never
   overwrites a slot that is still to be read. */
static void unet_end_prefix(unet_run *u)
{
    if (!u->shared) return;
    const unet_skips *S = &u->skips;
    u->shared = 0;
    u->n = u->n_all;
    u->stemb = u->stemb_all;
    for (int k = 0; k < S->n; k++)
        for (int i = u->n - 1; i >= 0; i--)
            if (u->unique_of[i] != i)
                memcpy(S->x[k] + (size_t)i * S->per_item[k], S->x[k] + (size_t)u->unique_of[i] * S->per_item[k],
                       sizeof(float) * S->per_item[k]);
}

/* ---- forward: the layers ---- */

static void unet_group_norm(float *y, const float *x, const dc__tensor *g, const dc__tensor *b, int n,
                            int c, int hw, int groups, float eps, int silu)
{
    dc__group_norm_forward(y, x, (const float *)g->data, (const float *)b->data, n, c, hw, groups,
                           eps, silu);
}

/* y = conv(x) with its own im2col scratch; W [cout, cin, k, k], padding k/2 */
static void unet_conv(unet_run *u, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                      int h, int w, int stride)
{
    dc__conv2d_shape s = dc__conv2d_shape_of(W, u->n, h, w, stride);
    size_t mark = dc__arena_mark(u->a);
    float *cols = dc__arena_floats(u->a, dc__conv2d_scratch_floats(&s));
    if (u->run) dc__conv2d(u->r, y, x, W, b, &s, cols);
    dc__arena_reset(u->a, mark);
}

/* y [n, cout, h, w] = resnet(x [n, cin, h, w]); y must not alias x */
static void unet_resnet(unet_run *u, const dc__unet_resnet *rn, float *y, const float *x, int h, int w,
                        float out_scale)
{
    const dc__unet *m = u->m;
    int n = u->n, ci = rn->cin, co = rn->cout, hw = h * w;
    size_t mark = dc__arena_mark(u->a);
    float *a = dc__arena_take(u->a, n, unet_max(ci, co), hw);   /* GN+SiLU of the input, then of h */
    float *hb = dc__arena_take(u->a, n, co, hw);                /* conv1 output; later the shortcut */
    float *tp = dc__arena_take(u->a, n, co, 1);                 /* time_emb_proj(SiLU(emb)) [n, co] */
    /* conv1 and conv2 share one im2col region, the larger of the two */
    dc__conv2d_shape s1 = dc__conv2d_shape_of(rn->conv1_w, n, h, w, 1);
    dc__conv2d_shape s2 = dc__conv2d_shape_of(rn->conv2_w, n, h, w, 1);
    float *cols = dc__arena_floats(u->a, unet_max(dc__conv2d_scratch_floats(&s1),
                                                  dc__conv2d_scratch_floats(&s2)));
    if (u->run) {
        const dc__kernels *k = dc__kern();
        unet_group_norm(a, x, rn->norm1_w, rn->norm1_b, n, ci, hw, m->groups, m->norm_eps, 1);
        dc__conv2d(u->r, hb, a, rn->conv1_w, rn->conv1_b, &s1, cols);
        dc__linear(u->r, tp, u->stemb, rn->temb_w, rn->temb_b, n);
#pragma omp parallel for
        for (int i = 0; i < n * co; i++) /* h[s, c, :] += tp[s, c] */
            k->scale_shift(hb + (size_t)i * hw, hb + (size_t)i * hw, (size_t)hw, 1.0f, tp[i]);
        unet_group_norm(a, hb, rn->norm2_w, rn->norm2_b, n, co, hw, m->groups, m->norm_eps, 1);
        dc__conv2d(u->r, y, a, rn->conv2_w, rn->conv2_b, &s2, cols);
        if (rn->short_w) {
            dc__conv2d_shape s = dc__conv2d_shape_of(rn->short_w, n, h, w, 1);
            dc__conv2d(u->r, hb, x, rn->short_w, rn->short_b, &s, NULL); /* 1x1: no im2col */
            dc__add_forward(y, y, hb, (size_t)n * co * hw);
        } else {
            dc__add_forward(y, y, x, (size_t)n * co * hw);
        }
        if (out_scale != 1.0f) {
            size_t total = (size_t)n * co * hw;
            for (size_t i = 0; i < total; i++) y[i] /= out_scale;
        }
    }
    dc__arena_reset(u->a, mark);
}

/* dst[s, t, c] = src[s, c, t]: NCHW -> tokens, in 32 x 32 tiles */
static void unet_to_tokens(float *dst, const float *src, int n, int C, int T)
{
    int tc = (C + 31) / 32, tt = (T + 31) / 32, jobs = n * tc * tt;
#pragma omp parallel for
    for (int j = 0; j < jobs; j++) {
        int s = j / (tc * tt), c0 = (j / tt) % tc * 32, t0 = j % tt * 32;
        int c1 = c0 + 32 < C ? c0 + 32 : C, t1 = t0 + 32 < T ? t0 + 32 : T;
        const float *xs = src + (size_t)s * C * T;
        float *ys = dst + (size_t)s * T * C;
        for (int c = c0; c < c1; c++)
            for (int t = t0; t < t1; t++) ys[(size_t)t * C + c] = xs[(size_t)c * T + t];
    }
}

/* x[s, c, t] += tok[s, t, c]: the transformer's residual, back in NCHW */
static void unet_add_tokens(float *x, const float *tok, int n, int C, int T)
{
    int tc = (C + 31) / 32, tt = (T + 31) / 32, jobs = n * tc * tt;
#pragma omp parallel for
    for (int j = 0; j < jobs; j++) {
        int s = j / (tc * tt), c0 = (j / tt) % tc * 32, t0 = j % tt * 32;
        int c1 = c0 + 32 < C ? c0 + 32 : C, t1 = t0 + 32 < T ? t0 + 32 : T;
        float *xs = x + (size_t)s * C * T;
        const float *ts = tok + (size_t)s * T * C;
        for (int c = c0; c < c1; c++)
            for (int t = t0; t < t1; t++) xs[(size_t)c * T + t] += ts[(size_t)t * C + c];
    }
}

/* The transformer's working buffers (all [rows = n * T, width] row-major) */
typedef struct {
    float *tok;     /* hidden states [rows, D] */
    float *nrm;     /* normalised [rows, max(C, D)] */
    float *q;       /* queries; also each sublayer's output before the residual add [rows, max(C, D)] */
    float *k, *v;   /* [n * max(T, ctx_len), D] */
    float *o;       /* attention output [rows, D] */
    float *ff;      /* one chunk of feed-forward hidden: [rc, 8D] then [rc, 4D] */
    float *scores;  /* attention score blocks */
    size_t rc;      /* token rows per feed-forward chunk */
} unet_tbufs;

static void unet_tblock(unet_run *u, const dc__unet_transformer *tf, const dc__unet_tblock *b,
                        const unet_tbufs *t, int T)
{
    int n = u->n, D = tf->inner, L = u->ctx_len, F = 4 * D, rows = n * T;
    size_t nd = (size_t)rows * D;
    float scale = 1.0f / sqrtf((float)tf->dh);
    /* heads are column slices of width dh in rows of D floats */
    dc__attn_shape self = {n, tf->heads, T, T, tf->dh, D, D, D, D, (size_t)T * D, (size_t)T * D,
                           (size_t)T * D, (size_t)T * D, scale, 0};
    dc__attn_shape cross = {n, tf->heads, T, L, tf->dh, D, D, D, D, (size_t)T * D, (size_t)L * D,
                            (size_t)L * D, (size_t)T * D, scale, 0};

    /* self-attention: q, k, v from the same normalised tokens */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm1_w->data, b->norm1_b->data, rows, D, UNET_LN_EPS);
    dc__linear(u->r, t->q, t->nrm, b->q1, NULL, rows);
    dc__linear(u->r, t->k, t->nrm, b->k1, NULL, rows);
    dc__linear(u->r, t->v, t->nrm, b->v1, NULL, rows);
    dc__attention_forward(t->o, t->q, t->k, t->v, &self, t->scores);
    dc__linear(u->r, t->q, t->o, b->o1_w, b->o1_b, rows);
    dc__add_forward(t->tok, t->tok, t->q, nd);

    /* cross-attention: k, v from each sample's own context */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm2_w->data, b->norm2_b->data, rows, D, UNET_LN_EPS);
    dc__linear(u->r, t->q, t->nrm, b->q2, NULL, rows);
    dc__linear(u->r, t->k, u->context, b->k2, NULL, n * L);
    dc__linear(u->r, t->v, u->context, b->v2, NULL, n * L);
    dc__attention_forward(t->o, t->q, t->k, t->v, &cross, t->scores);
    dc__linear(u->r, t->q, t->o, b->o2_w, b->o2_b, rows);
    dc__add_forward(t->tok, t->tok, t->q, nd);

    /* feed-forward, GEGLU: in chunks of rc rows, the hidden state never
       whole; both matrices are made ready once, side by side */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm3_w->data, b->norm3_b->data, rows, D, UNET_LN_EPS);
    dc__matrix w1 = dc__matrix_of(u->r, b->ff1_w, 0);
    dc__matrix w2 = dc__matrix_of(u->r, b->ff2_w, dc__decode_floats(b->ff1_w));
    float *hid = t->ff, *gated = t->ff + t->rc * 2 * F;
    for (size_t r0 = 0; r0 < (size_t)rows; r0 += t->rc) {
        int rc = (int)((size_t)rows - r0 < t->rc ? (size_t)rows - r0 : t->rc);
        dc__matmul(hid, t->nrm + r0 * D, &w1, b->ff1_b->data, rc);        /* [rc, 8D] */
        dc__geglu_forward(gated, hid, rc, F);                              /* [rc, 4D] */
        dc__matmul(t->q + r0 * D, gated, &w2, b->ff2_b->data, rc);         /* [rc, D] */
    }
    dc__add_forward(t->tok, t->tok, t->q, nd);
}

/* x [n, C, h*w] += Transformer2DModel(x), in place */
static void unet_transformer(unet_run *u, const dc__unet_transformer *tf, float *x, int T)
{
    const dc__unet *m = u->m;
    unet_end_prefix(u); /* cross-attention reads the prompt: from here every item is its own */
    int n = u->n, C = tf->c, D = tf->inner, rows = n * T;
    size_t cd = unet_max(C, D), kv = unet_max(T, u->ctx_len);
    size_t rc = UNET_FF_CHUNK_FLOATS / (12 * (size_t)D) / 64 * 64;
    if (rc < 64) rc = 64;
    if (rc > (size_t)rows) rc = rows;
    size_t mark = dc__arena_mark(u->a);
    unet_tbufs t;
    t.tok = dc__arena_take(u->a, rows, D, 1);
    t.nrm = dc__arena_take(u->a, rows, cd, 1);
    t.q = dc__arena_take(u->a, rows, cd, 1);
    t.k = dc__arena_take(u->a, n, kv, D);
    t.v = dc__arena_take(u->a, n, kv, D);
    t.o = dc__arena_take(u->a, rows, D, 1);
    t.ff = dc__arena_take(u->a, rc, 12, D);
    t.scores = dc__arena_floats(u->a, dc__attention_scratch_floats((int)kv));
    t.rc = rc;
    if (u->run) {
        /* GN on NCHW (into q), to tokens, proj_in: a linear or 1x1 conv, the same map */
        unet_group_norm(t.q, x, tf->norm_w, tf->norm_b, n, C, T, m->groups, UNET_TF_GN_EPS, 0);
        unet_to_tokens(t.nrm, t.q, n, C, T);
        dc__linear(u->r, t.tok, t.nrm, tf->proj_in_w, tf->proj_in_b, rows);
        for (int l = 0; l < tf->layers; l++) unet_tblock(u, tf, &m->tblocks[tf->first + l], &t, T);
        dc__linear(u->r, t.nrm, t.tok, tf->proj_out_w, tf->proj_out_b, rows); /* [rows, C] */
        unet_add_tokens(x, t.nrm, n, C, T);
    }
    dc__arena_reset(u->a, mark);
}

/* ---- forward: the steps of the walk that are not a resnet or a transformer ---- */

/* stemb [n, Td] = SiLU(linear_2(SiLU(linear_1(sinusoid(t))))): lives to the end */
static void unet_time_embedding(unet_run *u, const float *timesteps)
{
    const dc__unet *m = u->m;
    int n = u->n, c0 = m->ch[0], Td = m->temb_dim;
    float *freq = dc__arena_take(u->a, n, c0, 1), *t1 = dc__arena_take(u->a, n, Td, 1);
    float *emb = dc__arena_take(u->a, n, Td, 1);
    u->stemb = dc__arena_take(u->a, n, Td, 1);
    if (!u->run) return;
    dc__timestep_embedding(freq, timesteps, n, c0, m->flip_sin_to_cos, m->freq_shift, UNET_MAX_PERIOD);
    dc__linear(u->r, t1, freq, m->t1_w, m->t1_b, n);
    dc__act_forward(t1, t1, (size_t)n * Td, DC_ACT_SILU);
    dc__linear(u->r, emb, t1, m->t2_w, m->t2_b, n);
    dc__act_forward(u->stemb, emb, (size_t)n * Td, DC_ACT_SILU);
}

/* The next skip [n_all, c, h, w], kept until the up path pops it */
static float *unet_push_skip(unet_run *u, int c, int h, int w)
{
    unet_skips *S = &u->skips;
    DC_ASSERT(S->n < UNET_MAX_SKIPS);
    float *x = dc__arena_take(u->a, u->n_all, c, (size_t)h * w);
    S->x[S->n] = x, S->c[S->n] = c, S->per_item[S->n] = (size_t)c * h * w;
    S->n++;
    return x;
}

/* skip 0 = conv_in(sample), the sample centred first (2 * sample - 1) if the config says so */
static void unet_conv_in(unet_run *u, float *y, const float *sample, int H, int W)
{
    const dc__unet *m = u->m;
    size_t mark = dc__arena_mark(u->a);
    if (m->center_input) {
        float *centered = dc__arena_take(u->a, u->n, m->in_ch, (size_t)H * W);
        if (u->run)
            dc__kern()->scale_shift(centered, sample, (size_t)u->n * m->in_ch * H * W, 2.0f, -1.0f);
        sample = centered;
    }
    unet_conv(u, y, sample, m->conv_in_w, m->conv_in_b, H, W, 1);
    dc__arena_reset(u->a, mark);
}

/* The up path's running state [n, per item]: as large as its largest activation */
static float *unet_up_state(unet_run *u, int H, int W)
{
    const dc__unet *m = u->m;
    int B = m->blocks;
    size_t per_item = (size_t)m->ch[B - 1] * (H >> (B - 1)) * (W >> (B - 1));
    for (int i = 0; i < B; i++) {
        size_t hw = (size_t)(H >> (B - 1 - i)) * (W >> (B - 1 - i));
        per_item = unet_max(per_item, m->up[i].cout * hw * (m->up[i].resample_w ? 4 : 1));
    }
    return dc__arena_take(u->a, u->n, per_item, 1);
}

/* x [n, c, h, w] = resnet(x), in place through a temporary */
static void unet_resnet_inplace(unet_run *u, const dc__unet_resnet *rn, float *x, int h, int w,
                                float out_scale)
{
    size_t mark = dc__arena_mark(u->a);
    float *tmp = dc__arena_take(u->a, u->n, rn->cout, (size_t)h * w);
    unet_resnet(u, rn, tmp, x, h, w, out_scale);
    if (u->run) memcpy(x, tmp, sizeof(float) * (size_t)u->n * rn->cout * h * w);
    dc__arena_reset(u->a, mark);
}

/* cur [n, cout, h, w] = resnet(concat(cur, the last skip)); pops the skip */
static void unet_resnet_skip(unet_run *u, const dc__unet_resnet *rn, float *cur, int h, int w)
{
    unet_skips *S = &u->skips;
    DC_ASSERT(S->n > 0);
    int k = --S->n, cc = rn->cin - S->c[k], hw = h * w; /* cc: cur's channels */
    DC_ASSERT(cc > 0);
    size_t mark = dc__arena_mark(u->a);
    float *cat = dc__arena_take(u->a, u->n, rn->cin, hw);
    if (u->run) dc__concat_forward(cat, cur, S->x[k], u->n, cc, S->c[k], hw);
    unet_resnet(u, rn, cur, cat, h, w, 1.0f);
    dc__arena_reset(u->a, mark);
}

/* cur [n, c, h, w] -> [n, c, 2h, 2w]: nearest 2x, then the block's conv3x3 */
static void unet_upsample(unet_run *u, const dc__unet_block *blk, float *cur, int h, int w)
{
    size_t mark = dc__arena_mark(u->a);
    float *up = dc__arena_take(u->a, u->n, blk->cout, (size_t)4 * h * w);
    if (u->run) dc__upsample2x_forward(up, cur, u->n, blk->cout, h, w);
    unet_conv(u, cur, up, blk->resample_w, blk->resample_b, 2 * h, 2 * w, 1);
    dc__arena_reset(u->a, mark);
}

/* out [n, out_ch, H, W] = conv_out(SiLU(GroupNorm(x))) */
static void unet_conv_out(unet_run *u, float *out, const float *x, int H, int W)
{
    const dc__unet *m = u->m;
    size_t mark = dc__arena_mark(u->a);
    float *a = dc__arena_take(u->a, u->n, m->ch[0], (size_t)H * W);
    if (u->run)
        unet_group_norm(a, x, m->norm_out_w, m->norm_out_b, u->n, m->ch[0], H * W, m->groups,
                        m->norm_eps, 1);
    unet_conv(u, out, a, m->conv_out_w, m->conv_out_b, H, W, 1);
    dc__arena_reset(u->a, mark);
}

/* ---- forward: the network ---- */

/* The whole UNet. Every step takes its buffers from u->a and computes only
   on the run pass, so with u->run == 0 this sizes the arena. Shapes are
   per item: latent H x W, C = ch[B-1] at hl x wl = (H, W) / 2^(B-1). */
static void unet_walk(unet_run *u, float *out, const float *sample, const float *timesteps, int H, int W)
{
    const dc__unet *m = u->m;
    int B = m->blocks, hl = H >> (B - 1), wl = W >> (B - 1);
    unet_time_embedding(u, timesteps);                              /* stemb [Td] */
    sample = unet_share_prefix(u, sample, timesteps, H, W);         /* distinct items only */

    /* down path: every output is pushed as a skip */
    float *x = unet_push_skip(u, m->ch[0], H, W);
    unet_conv_in(u, x, sample, H, W);                               /* [ch0, H, W] */
    for (int i = 0; i < B; i++) {
        const dc__unet_block *blk = &m->down[i];
        int h = H >> i, w = W >> i;
        for (int j = 0; j < blk->layers; j++) {                     /* [ch[i], h, w] */
            float *y = unet_push_skip(u, blk->cout, h, w);
            unet_resnet(u, &m->resnets[blk->resnet0 + j], y, x, h, w, 1.0f);
            if (blk->cross) unet_transformer(u, &m->transformers[blk->attn0 + j], y, h * w);
            x = y;
        }
        if (blk->resample_w) {                                      /* [ch[i], h/2, w/2] */
            float *y = unet_push_skip(u, blk->cout, h / 2, w / 2);
            unet_conv(u, y, x, blk->resample_w, blk->resample_b, h, w, 2);
            x = y;
        }
    }
    unet_end_prefix(u); /* at the latest here, without cross-attention in the down path */

    /* mid block, into the up path's running state */
    float *cur = unet_up_state(u, H, W);
    unet_resnet(u, &m->resnets[m->mid_resnet0], cur, x, hl, wl, m->mid_scale);  /* [C, hl, wl] */
    unet_transformer(u, &m->transformers[m->mid_attn], cur, hl * wl);
    unet_resnet_inplace(u, &m->resnets[m->mid_resnet0 + 1], cur, hl, wl, m->mid_scale);

    /* up path: each resnet reads concat(cur, the last skip) */
    for (int i = 0; i < B; i++) {
        const dc__unet_block *blk = &m->up[i];
        int h = H >> (B - 1 - i), w = W >> (B - 1 - i);
        for (int j = 0; j < blk->layers; j++) {                     /* [cout, h, w] */
            unet_resnet_skip(u, &m->resnets[blk->resnet0 + j], cur, h, w);
            if (blk->cross) unet_transformer(u, &m->transformers[blk->attn0 + j], cur, h * w);
        }
        if (blk->resample_w) unet_upsample(u, blk, cur, h, w);      /* [cout, 2h, 2w] */
    }
    DC_ASSERT(u->skips.n == 0);
    unet_conv_out(u, out, cur, H, W);                               /* [out_ch, H, W] */
}

/* ---- forward: planning and the entry point ---- */

static dc_status unet_check_sizes(const dc__unet *m, int n, int h, int w, int ctx_len, dc_error *err)
{
    int f = 1 << (m->blocks - 1);
    if (n < 1 || ctx_len < 1)
        return dc__fail(err, DC_ERR_INVALID, "UNet: batch %d and context length %d must be positive",
                        n, ctx_len);
    if (h < 1 || w < 1 || h > UNET_MAX_SIDE || w > UNET_MAX_SIDE || h % f || w % f)
        return dc__fail(err, DC_ERR_INVALID, "UNet: latent %d x %d: height and width must be "
                        "positive multiples of %d (%d downsamplers), at most %d", h, w, f,
                        m->blocks - 1, UNET_MAX_SIDE);
    /* sgemm and kernel sizes are ints: rows = n * h * w tokens, n * ctx_len context rows */
    if ((int64_t)n * h * w > INT_MAX / 16 || (int64_t)n * ctx_len > INT_MAX / 16)
        return dc__fail(err, DC_ERR_INVALID, "UNet: batch %d of %d x %d latents (context %d) is too "
                        "large for one call", n, h, w, ctx_len);
    return DC_OK;
}

/* The measuring pass: the walk on a measuring arena */
static void unet_plan(dc__arena *plan, const dc__unet *m, int n, int h, int w, int ctx_len)
{
    unet_run u;
    memset(&u, 0, sizeof u);
    dc__arena_measure(plan);
    u.m = m, u.a = plan, u.n = n, u.ctx_len = ctx_len;
    unet_walk(&u, NULL, NULL, NULL, h, w);
}

size_t dc__unet_arena_bytes(const dc__unet *m, int n, int h, int w, int ctx_len)
{
    dc__arena plan;
    if (unet_check_sizes(m, n, h, w, ctx_len, NULL) != DC_OK) return 0;
    unet_plan(&plan, m, n, h, w, ctx_len);
    return plan.overflow ? 0 : plan.peak;
}

dc_status dc__unet_forward(const dc__unet *m, dc__runner *r, float *out, const float *sample,
                           const float *timesteps, const float *context, int n, int h, int w,
                           int ctx_len, dc_error *err)
{
    if (!m || !r || !out || !sample || !timesteps || !context)
        return dc__fail(err, DC_ERR_INVALID, "UNet: NULL argument");
    dc_status st = unet_check_sizes(m, n, h, w, ctx_len, err);
    if (st != DC_OK) return st;
    dc__arena plan;
    unet_plan(&plan, m, n, h, w, ctx_len);
    if ((st = dc__runner_reserve_plan(r, &plan, m->decode_floats, err)) != DC_OK) return st;
    unet_run u;
    memset(&u, 0, sizeof u);
    u.m = m, u.r = r, u.a = &r->arena, u.run = 1, u.n = n, u.ctx_len = ctx_len, u.context = context;
    unet_walk(&u, out, sample, timesteps, h, w);
    dc__ok(err);
    return DC_OK;
}
