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
   once; convolutions go through dc__conv2d_forward, which tiles im2col per
   (sample, pixel tile).

   Memory: plan, then allocate. The forward is written once (unet_walk) and
   run twice: first against a measuring arena, where every buffer request
   only counts bytes and nothing is computed, then against a runner arena of
   exactly the measured peak. Buffers that must live on (the time
   embedding, each skip connection until the up path consumes it, the up
   path's running state) are taken from the arena and never given back;
   each layer takes its scratch above them and returns it when done, so the
   scratch of a resnet, a transformer or an upsampler share one region.
   The transformer's feed-forward hidden layer (8D floats per token before
   GEGLU) is computed in row chunks to keep that region small. Weights
   stored f16 or q8 are decoded a layer at a time into the runner's scratch
   (both feed-forward matrices at once, since the chunks alternate them).

   Measured on the 2-core development machine, SD 1.5 size with random
   weights, f32, OPENBLAS_CORETYPE=SkylakeX (tools/ has no bench for it yet):
     32x32 latent, batch 1: 1.8 s per sample, arena 34.5 MB
     32x32 latent, batch 8: 1.33 s per sample, arena 156.4 MB
     64x64 latent, batch 1: 5.9 s per sample, arena 87.3 MB
   (180 and 803 GFLOP: about 100 and 135 GFLOP/s; nearly all of it in sgemm);
   with Debian's default Prescott kernel 5.1-5.7 s at 32x32; with f16
   weights 2.3 s at 32x32 (1.7 GB decoded per call, scratch 118 MB). */
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
    const dc__weights *w;
    const char *prefix;
    dc_error *err;
} unet_loader;

/* Finds prefix + base + suffix with the given shape; 1-D tensors (norms,
   biases) must be f32; a weight stored f16/q8 grows decode_floats. */
static dc_status unet_get(unet_loader *L, const dc__tensor **t, int ndim, int64_t d0, int64_t d1,
                          int64_t d2, int64_t d3, const char *base, const char *suffix)
{
    char full[320];
    snprintf(full, sizeof full, "%s%s%s", L->prefix, base, suffix);
    int64_t shape[4] = {d0, d1, d2, d3};
    dc_status st = dc__tensor_get(L->w, full, ndim, shape, t, L->err);
    if (st != DC_OK) return st;
    if (ndim == 1 && (*t)->dtype != DC_F32)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: tensor '%s' must be f32 (norms and biases "
                        "are never quantised)", L->w->path, full);
    if ((*t)->dtype != DC_F32 && (size_t)(*t)->numel > L->m->decode_floats)
        L->m->decode_floats = (size_t)(*t)->numel;
    return DC_OK;
}

/* base.weight with shape (d0, d1, d2, d3) of ndim dims and, if b, base.bias [d0] */
static dc_status unet_pair(unet_loader *L, const char *base, const dc__tensor **wt,
                           const dc__tensor **bt, int ndim, int64_t d0, int64_t d1, int64_t d2,
                           int64_t d3)
{
    dc_status st = unet_get(L, wt, ndim, d0, d1, d2, d3, base, ".weight");
    if (st == DC_OK && bt) st = unet_get(L, bt, 1, d0, 0, 0, 0, base, ".bias");
    return st;
}

static dc_status unet_norm(unet_loader *L, const char *base, const dc__tensor **wt,
                           const dc__tensor **bt, int c)
{
    if (c % L->m->groups)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: %s%s has %d channels, not divisible by "
                        "norm_num_groups %d", L->w->path, L->prefix, base, c, L->m->groups);
    return unet_pair(L, base, wt, bt, 1, c, 0, 0, 0);
}

/* The next resnet of the pool, named b (a diffusers module path) */
static dc_status unet_load_resnet(unet_loader *L, int cin, int cout, const char *b)
{
    dc__unet *m = L->m;
    if (m->n_resnets >= DC_UNET_MAX_RESNETS)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: more than %d resnets", L->w->path,
                        DC_UNET_MAX_RESNETS);
    dc__unet_resnet *r = &m->resnets[m->n_resnets++];
    char n[240];
    r->cin = cin, r->cout = cout;
    dc_status st;
#define UNET_SUB(s) (snprintf(n, sizeof n, "%s." s, b), n)
    if ((st = unet_norm(L, UNET_SUB("norm1"), &r->norm1_w, &r->norm1_b, cin)) ||
        (st = unet_pair(L, UNET_SUB("conv1"), &r->conv1_w, &r->conv1_b, 4, cout, cin, 3, 3)) ||
        (st = unet_pair(L, UNET_SUB("time_emb_proj"), &r->temb_w, &r->temb_b, 2, cout, m->temb_dim, 0, 0)) ||
        (st = unet_norm(L, UNET_SUB("norm2"), &r->norm2_w, &r->norm2_b, cout)) ||
        (st = unet_pair(L, UNET_SUB("conv2"), &r->conv2_w, &r->conv2_b, 4, cout, cout, 3, 3)))
        return st;
    if (cin != cout &&
        (st = unet_pair(L, UNET_SUB("conv_shortcut"), &r->short_w, &r->short_b, 4, cout, cin, 1, 1)))
        return st;
    return DC_OK;
}

/* The next transformer of the pool (and its blocks), named b; *index gets its place */
static dc_status unet_load_transformer(unet_loader *L, int *index, int c, int heads, int layers,
                                       const char *b)
{
    dc__unet *m = L->m;
    if (m->n_transformers >= DC_UNET_MAX_TRANSFORMERS || m->n_tblocks + layers > DC_UNET_MAX_TBLOCKS)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: more than %d transformer blocks", L->w->path,
                        DC_UNET_MAX_TBLOCKS);
    *index = m->n_transformers;
    dc__unet_transformer *tf = &m->transformers[m->n_transformers++];
    /* diffusers: Transformer2DModel(heads, c // heads, in_channels=c) */
    tf->c = c, tf->heads = heads, tf->dh = c / heads, tf->inner = heads * (c / heads);
    tf->layers = layers, tf->first = m->n_tblocks;
    m->n_tblocks += layers;
    int D = tf->inner, X = m->cross_dim, lp = m->linear_proj;
    char n[240];
    dc_status st;
    if ((st = unet_norm(L, UNET_SUB("norm"), &tf->norm_w, &tf->norm_b, c)) ||
        (st = unet_pair(L, UNET_SUB("proj_in"), &tf->proj_in_w, &tf->proj_in_b, lp ? 2 : 4, D, c,
                        lp ? 0 : 1, lp ? 0 : 1)) ||
        (st = unet_pair(L, UNET_SUB("proj_out"), &tf->proj_out_w, &tf->proj_out_b, lp ? 2 : 4, c, D,
                        lp ? 0 : 1, lp ? 0 : 1)))
        return st;
    for (int k = 0; k < layers; k++) {
        dc__unet_tblock *t = &m->tblocks[tf->first + k];
#define UNET_BLK(s) (snprintf(n, sizeof n, "%s.transformer_blocks.%d." s, b, k), n)
        if ((st = unet_pair(L, UNET_BLK("norm1"), &t->norm1_w, &t->norm1_b, 1, D, 0, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn1.to_q"), &t->q1, NULL, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn1.to_k"), &t->k1, NULL, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn1.to_v"), &t->v1, NULL, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn1.to_out.0"), &t->o1_w, &t->o1_b, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("norm2"), &t->norm2_w, &t->norm2_b, 1, D, 0, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn2.to_q"), &t->q2, NULL, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn2.to_k"), &t->k2, NULL, 2, D, X, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn2.to_v"), &t->v2, NULL, 2, D, X, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("attn2.to_out.0"), &t->o2_w, &t->o2_b, 2, D, D, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("norm3"), &t->norm3_w, &t->norm3_b, 1, D, 0, 0, 0)) ||
            (st = unet_pair(L, UNET_BLK("ff.net.0.proj"), &t->ff1_w, &t->ff1_b, 2, 8 * (int64_t)D, D,
                            0, 0)) ||
            (st = unet_pair(L, UNET_BLK("ff.net.2"), &t->ff2_w, &t->ff2_b, 2, D, 4 * (int64_t)D, 0,
                            0)))
            return st;
#undef UNET_BLK
        /* the feed-forward chunks use both matrices in turn: decode them side by side */
        size_t both = (t->ff1_w->dtype != DC_F32 ? (size_t)t->ff1_w->numel : 0) +
                      (t->ff2_w->dtype != DC_F32 ? (size_t)t->ff2_w->numel : 0);
        if (both > m->decode_floats) m->decode_floats = both;
    }
    return DC_OK;
}
#undef UNET_SUB

static dc_status unet_meta_int(unet_loader *L, const char *key, int *v, int lo, int hi)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s", L->prefix, key);
    return dc__meta_int_in(L->w, full, v, lo, hi, L->err);
}

static dc_status unet_meta_float(unet_loader *L, const char *key, float *v, double lo, double hi)
{
    char full[160];
    double x;
    snprintf(full, sizeof full, "%s%s", L->prefix, key);
    dc_status st = dc__meta_float(L->w, full, &x, L->err);
    if (st != DC_OK) return st;
    if (!(x >= lo && x <= hi))
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s' = %g is out of range [%g, %g]",
                        L->w->path, full, x, lo, hi);
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
    snprintf(full, sizeof full, "%s%s", L->prefix, key);
    dc_status st = dc__meta_ints(L->w, full, x, DC_UNET_MAX_BLOCKS, &count, L->err);
    if (st != DC_OK) return st;
    if (L->m->blocks == 0) {
        if (count < 1)
            return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s' is empty", L->w->path, full);
        L->m->blocks = (int)count;
    } else if ((int)count != L->m->blocks) {
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s' has %u values for %d blocks",
                        L->w->path, full, count, L->m->blocks);
    }
    for (uint32_t i = 0; i < count; i++) {
        if (x[i] < lo || x[i] > hi)
            return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s'[%u] = %lld is out of range "
                            "[%d, %d]", L->w->path, full, i, (long long)x[i], lo, hi);
        v[i] = (int)x[i];
    }
    return DC_OK;
}

/* Block types: cross[i] = 1 for `cross_name`, 0 for `plain_name`. */
static dc_status unet_meta_types(unet_loader *L, const char *key, int *cross, const char *cross_name,
                                 const char *plain_name)
{
    char full[160];
    snprintf(full, sizeof full, "%s%s", L->prefix, key);
    const dc__meta *mt = dc__meta_find(L->w, full);
    if (mt && mt->kind == DC_META_STRS && (int)mt->count != L->m->blocks)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s' has %u types for %d blocks",
                        L->w->path, full, mt->count, L->m->blocks);
    for (int i = 0; i < L->m->blocks; i++) {
        const char *s;
        uint32_t len;
        dc_status st = dc__meta_strs_at(L->w, full, (uint32_t)i, &s, &len, L->err);
        if (st != DC_OK) return st;
        if (len == strlen(cross_name) && !memcmp(s, cross_name, len)) cross[i] = 1;
        else if (len == strlen(plain_name) && !memcmp(s, plain_name, len)) cross[i] = 0;
        else
            return dc__fail(L->err, DC_ERR_FORMAT, "%s: metadata '%s'[%d] = '%.*s': dc runs %s "
                            "and %s", L->w->path, full, i, (int)len, s, cross_name, plain_name);
    }
    return DC_OK;
}

dc_status dc__unet_build(dc__unet *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    memset(m, 0, sizeof *m);
    unet_loader L = {m, w, prefix, err};
    int layers[DC_UNET_MAX_BLOCKS], tlayers[DC_UNET_MAX_BLOCKS], head_dim[DC_UNET_MAX_BLOCKS];
    int down_cross[DC_UNET_MAX_BLOCKS], up_cross[DC_UNET_MAX_BLOCKS];
    dc_status st;
    const int big = 1 << 16;
    if ((st = unet_meta_blocks(&L, "block_out_channels", m->ch, 1, big)) ||
        (st = unet_meta_blocks(&L, "layers_per_block", layers, 1, DC_UNET_MAX_LAYERS)) ||
        (st = unet_meta_blocks(&L, "transformer_layers_per_block", tlayers, 1, DC_UNET_MAX_TBLOCKS)) ||
        (st = unet_meta_blocks(&L, "attention_head_dim", head_dim, 1, big)) ||
        (st = unet_meta_types(&L, "down_block_types", down_cross, "CrossAttnDownBlock2D", "DownBlock2D")) ||
        (st = unet_meta_types(&L, "up_block_types", up_cross, "CrossAttnUpBlock2D", "UpBlock2D")) ||
        (st = unet_meta_int(&L, "in_channels", &m->in_ch, 1, big)) ||
        (st = unet_meta_int(&L, "out_channels", &m->out_ch, 1, big)) ||
        (st = unet_meta_int(&L, "norm_num_groups", &m->groups, 1, big)) ||
        (st = unet_meta_int(&L, "cross_attention_dim", &m->cross_dim, 1, big)) ||
        (st = unet_meta_int(&L, "time_embed_dim", &m->temb_dim, 1, big)) ||
        (st = unet_meta_int(&L, "sample_size", &m->sample_size, 1, big)) ||
        (st = unet_meta_int(&L, "use_linear_projection", &m->linear_proj, 0, 1)) ||
        (st = unet_meta_int(&L, "upcast_attention", &m->upcast_attention, 0, 1)) ||
        (st = unet_meta_int(&L, "flip_sin_to_cos", &m->flip_sin_to_cos, 0, 1)) ||
        (st = unet_meta_int(&L, "center_input_sample", &m->center_input, 0, 1)) ||
        (st = unet_meta_float(&L, "freq_shift", &m->freq_shift, -1e6, 1e6)) ||
        (st = unet_meta_float(&L, "norm_eps", &m->norm_eps, 1e-30, 1.0)) ||
        (st = unet_meta_float(&L, "mid_block_scale_factor", &m->mid_scale, 1e-6, 1e6)))
        return st;
    int B = m->blocks;
    /* heads per block: diffusers 0.25 passes `num_attention_heads or
       attention_head_dim` to the blocks as the number of heads */
    char key[160];
    snprintf(key, sizeof key, "%snum_attention_heads", prefix);
    if (dc__meta_find(w, key)) {
        if ((st = unet_meta_blocks(&L, "num_attention_heads", m->heads, 1, big))) return st;
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

    int c0 = m->ch[0], Td = m->temb_dim;
    if ((st = unet_pair(&L, "conv_in", &m->conv_in_w, &m->conv_in_b, 4, c0, m->in_ch, 3, 3)) ||
        (st = unet_pair(&L, "time_embedding.linear_1", &m->t1_w, &m->t1_b, 2, Td, c0, 0, 0)) ||
        (st = unet_pair(&L, "time_embedding.linear_2", &m->t2_w, &m->t2_b, 2, Td, Td, 0, 0)))
        return st;

    /* down path; skips[] tracks the channels of each kept activation */
    int skips[UNET_MAX_SKIPS], nskip = 0, cin = c0;
    skips[nskip++] = c0;
    for (int i = 0; i < B; i++) {
        dc__unet_block *blk = &m->down[i];
        blk->cross = down_cross[i], blk->layers = layers[i], blk->cout = m->ch[i];
        blk->resnet0 = m->n_resnets, blk->attn0 = m->n_transformers;
        for (int j = 0; j < layers[i]; j++) {
            int ti;
            char rb[64], tb[64];
            snprintf(rb, sizeof rb, "down_blocks.%d.resnets.%d", i, j);
            snprintf(tb, sizeof tb, "down_blocks.%d.attentions.%d", i, j);
            if ((st = unet_load_resnet(&L, j ? m->ch[i] : cin, m->ch[i], rb)) ||
                (blk->cross &&
                 (st = unet_load_transformer(&L, &ti, m->ch[i], m->heads[i], tlayers[i], tb))))
                return st;
            skips[nskip++] = m->ch[i];
        }
        if (i < B - 1) {
            char b[96];
            snprintf(b, sizeof b, "down_blocks.%d.downsamplers.0.conv", i);
            if ((st = unet_pair(&L, b, &blk->resample_w, &blk->resample_b, 4, m->ch[i], m->ch[i], 3, 3)))
                return st;
            skips[nskip++] = m->ch[i];
        }
        cin = m->ch[i];
    }

    /* mid block */
    int C = m->ch[B - 1];
    m->mid_resnet0 = m->n_resnets;
    if ((st = unet_load_resnet(&L, C, C, "mid_block.resnets.0")) ||
        (st = unet_load_transformer(&L, &m->mid_attn, C, m->heads[B - 1], tlayers[B - 1],
                                    "mid_block.attentions.0")) ||
        (st = unet_load_resnet(&L, C, C, "mid_block.resnets.1")))
        return st;

    /* up path: block i mirrors down block B-1-i and pops its skips */
    int prev = C;
    for (int i = 0; i < B; i++) {
        int r = B - 1 - i, co = m->ch[r], ci = m->ch[r > 0 ? r - 1 : 0];
        dc__unet_block *blk = &m->up[i];
        blk->cross = up_cross[i], blk->layers = layers[r] + 1, blk->cout = co;
        blk->resnet0 = m->n_resnets, blk->attn0 = m->n_transformers;
        for (int j = 0; j < blk->layers; j++) {
            /* diffusers' res_skip_channels; it always matches the skip the
               down path left on top of the stack (block r's resnets, then
               block r-1's downsampler or conv_in), whatever the layer counts */
            int skip = j == blk->layers - 1 ? ci : co;
            DC_ASSERT(nskip > 0 && skips[nskip - 1] == skip);
            nskip--;
            int ti;
            char rb[64], tb[64];
            snprintf(rb, sizeof rb, "up_blocks.%d.resnets.%d", i, j);
            snprintf(tb, sizeof tb, "up_blocks.%d.attentions.%d", i, j);
            if ((st = unet_load_resnet(&L, (j ? co : prev) + skip, co, rb)) ||
                (blk->cross && (st = unet_load_transformer(&L, &ti, co, m->heads[r], tlayers[r], tb))))
                return st;
        }
        if (i < B - 1) {
            char b[96];
            snprintf(b, sizeof b, "up_blocks.%d.upsamplers.0.conv", i);
            if ((st = unet_pair(&L, b, &blk->resample_w, &blk->resample_b, 4, co, co, 3, 3)))
                return st;
        }
        prev = co;
    }
    DC_ASSERT(nskip == 0); /* conv_in + sum(layers) + (B - 1) downsamplers were pushed */

    if ((st = unet_norm(&L, "conv_norm_out", &m->norm_out_w, &m->norm_out_b, c0)) ||
        (st = unet_pair(&L, "conv_out", &m->conv_out_w, &m->conv_out_b, 4, m->out_ch, c0, 3, 3)))
        return st;
    return DC_OK;
}

/* ---- forward ---- */

typedef struct {
    const dc__unet *m;
    dc__runner *r;
    dc__arena *a;
    int run;                /* 0: measuring pass: buffers are counted, nothing is computed */
    int bad;                /* a size overflowed while measuring */
    int n, ctx_len;
    const float *context;   /* [n, ctx_len, cross_dim] */
    float *stemb;           /* SiLU(emb) [n, Td]: what every resnet's time_emb_proj reads */
    /* the class-independent prefix (unet_share_prefix): while `shared`, ops
       run on the n_unique distinct (sample, timestep) items only */
    int shared, n_all;
    int *unique_of;         /* [n] item -> its distinct item's slot */
    float *stemb_all;
} unet_run;

static size_t unet_max(size_t a, size_t b) { return a > b ? a : b; }

/* a * b * c floats from the arena (NULL while measuring) */
static float *unet_buf(unet_run *u, size_t a, size_t b, size_t c)
{
    size_t ab, abc, before = u->a->used;
    if (!dc__mul_size(&ab, a, b) || !dc__mul_size(&abc, ab, c)) {
        u->bad = 1;
        return NULL;
    }
    float *p = dc__arena_floats(u->a, abc);
    if (!u->run && u->a->used == before && abc) u->bad = 1; /* the running total overflowed */
    if (u->run) DC_ASSERT(p != NULL);                        /* the plan covers every request */
    return p;
}

/* An f32 view of weight t, decoded at float offset off of the runner's scratch if stored f16/q8 */
static const float *unet_weight(unet_run *u, const dc__tensor *t, size_t off)
{
    if (t->dtype == DC_F32) return (const float *)t->data;
    dc__scratch s = {u->r->wbuf + off, u->r->wcap - off};
    return dc__weight_f32(t, &s);
}

/* y[rows, out] = x[rows, in] . W^T + b, W [out, in] (or a 1x1 conv's [out, in, 1, 1]) */
static void unet_linear(unet_run *u, float *y, const float *x, const dc__tensor *W,
                        const dc__tensor *b, size_t rows)
{
    dc__linear_forward(y, x, unet_weight(u, W, 0), b ? (const float *)b->data : NULL, (int)rows,
                       (int)(W->numel / W->shape[0]), (int)W->shape[0]);
}

/* The shape of a k x k conv (padding k/2) with weight W on x [n, cin, h, w] */
static dc__conv2d_shape unet_conv_shape(const unet_run *u, const dc__tensor *W, int h, int w, int stride)
{
    int k = (int)W->shape[2], p = k / 2;
    dc__conv2d_shape s = {u->n, (int)W->shape[1], h, w, (int)W->shape[0], k, k, stride, p, p, p, p};
    return s;
}

static float *unet_conv_cols(unet_run *u, const dc__tensor *W, int h, int w, int stride)
{
    dc__conv2d_shape s = unet_conv_shape(u, W, h, w, stride);
    return unet_buf(u, dc__conv2d_scratch_floats(&s), 1, 1);
}

static void unet_conv(unet_run *u, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                      int h, int w, int stride, float *cols)
{
    dc__conv2d_shape s = unet_conv_shape(u, W, h, w, stride);
    dc__conv2d_forward(y, x, unet_weight(u, W, 0), (const float *)b->data, &s, cols);
}

static void unet_group_norm(float *y, const float *x, const dc__tensor *g, const dc__tensor *b, int n,
                            int c, int hw, int groups, float eps, int silu)
{
    dc__group_norm_forward(y, x, (const float *)g->data, (const float *)b->data, n, c, hw, groups,
                           eps, silu);
}

/* y [n, cout, h, w] = resnet(x [n, cin, h, w]); y must not alias x */
static void unet_resnet(unet_run *u, const dc__unet_resnet *rn, float *y, const float *x, int h, int w,
                        float out_scale)
{
    const dc__unet *m = u->m;
    int n = u->n, ci = rn->cin, co = rn->cout, hw = h * w;
    size_t mark = dc__arena_mark(u->a);
    float *a = unet_buf(u, n, unet_max(ci, co), hw);   /* GN+SiLU of the input, then of h */
    float *hb = unet_buf(u, n, co, hw);                /* conv1 output; later the shortcut */
    float *tp = unet_buf(u, n, co, 1);                 /* time_emb_proj(SiLU(emb)) [n, co] */
    /* conv1 and conv2 share one im2col region, the larger of the two */
    dc__conv2d_shape s1 = unet_conv_shape(u, rn->conv1_w, h, w, 1);
    dc__conv2d_shape s2 = unet_conv_shape(u, rn->conv2_w, h, w, 1);
    float *cols = unet_buf(u, unet_max(dc__conv2d_scratch_floats(&s1), dc__conv2d_scratch_floats(&s2)), 1, 1);
    if (u->run) {
        const dc__kernels *k = dc__kern();
        unet_group_norm(a, x, rn->norm1_w, rn->norm1_b, n, ci, hw, m->groups, m->norm_eps, 1);
        unet_conv(u, hb, a, rn->conv1_w, rn->conv1_b, h, w, 1, cols);
        unet_linear(u, tp, u->stemb, rn->temb_w, rn->temb_b, (size_t)n);
#pragma omp parallel for
        for (int i = 0; i < n * co; i++) /* h[s, c, :] += tp[s, c] */
            k->scale_shift(hb + (size_t)i * hw, hb + (size_t)i * hw, (size_t)hw, 1.0f, tp[i]);
        unet_group_norm(a, hb, rn->norm2_w, rn->norm2_b, n, co, hw, m->groups, m->norm_eps, 1);
        unet_conv(u, y, a, rn->conv2_w, rn->conv2_b, h, w, 1, cols);
        if (rn->short_w) {
            unet_conv(u, hb, x, rn->short_w, rn->short_b, h, w, 1, NULL); /* 1x1: no im2col */
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
    int n = u->n, D = tf->inner, L = u->ctx_len, F = 4 * D;
    size_t rows = (size_t)n * T, nd = rows * D;
    float scale = 1.0f / sqrtf((float)tf->dh);
    /* heads are column slices of width dh in rows of D floats */
    dc__attn_shape self = {n, tf->heads, T, T, tf->dh, D, D, D, D, (size_t)T * D, (size_t)T * D,
                           (size_t)T * D, (size_t)T * D, scale, 0};
    dc__attn_shape cross = {n, tf->heads, T, L, tf->dh, D, D, D, D, (size_t)T * D, (size_t)L * D,
                            (size_t)L * D, (size_t)T * D, scale, 0};

    /* self-attention: q, k, v from the same normalised tokens */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm1_w->data, b->norm1_b->data, (int)rows, D, UNET_LN_EPS);
    unet_linear(u, t->q, t->nrm, b->q1, NULL, rows);
    unet_linear(u, t->k, t->nrm, b->k1, NULL, rows);
    unet_linear(u, t->v, t->nrm, b->v1, NULL, rows);
    dc__attention_forward(t->o, t->q, t->k, t->v, &self, t->scores);
    unet_linear(u, t->q, t->o, b->o1_w, b->o1_b, rows);
    dc__add_forward(t->tok, t->tok, t->q, nd);

    /* cross-attention: k, v from each sample's own context */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm2_w->data, b->norm2_b->data, (int)rows, D, UNET_LN_EPS);
    unet_linear(u, t->q, t->nrm, b->q2, NULL, rows);
    unet_linear(u, t->k, u->context, b->k2, NULL, (size_t)n * L);
    unet_linear(u, t->v, u->context, b->v2, NULL, (size_t)n * L);
    dc__attention_forward(t->o, t->q, t->k, t->v, &cross, t->scores);
    unet_linear(u, t->q, t->o, b->o2_w, b->o2_b, rows);
    dc__add_forward(t->tok, t->tok, t->q, nd);

    /* feed-forward, GEGLU: in chunks of rc rows, the hidden state never whole */
    dc__layer_norm_forward(t->nrm, t->tok, b->norm3_w->data, b->norm3_b->data, (int)rows, D, UNET_LN_EPS);
    const float *w1 = unet_weight(u, b->ff1_w, 0);
    const float *w2 = unet_weight(u, b->ff2_w, b->ff1_w->dtype != DC_F32 ? (size_t)b->ff1_w->numel : 0);
    float *hid = t->ff, *gated = t->ff + t->rc * 2 * F;
    for (size_t r0 = 0; r0 < rows; r0 += t->rc) {
        int rc = (int)(rows - r0 < t->rc ? rows - r0 : t->rc);
        dc__linear_forward(hid, t->nrm + r0 * D, w1, b->ff1_b->data, rc, D, 2 * F);
        dc__geglu_forward(gated, hid, rc, F);
        dc__linear_forward(t->q + r0 * D, gated, w2, b->ff2_b->data, rc, F, D);
    }
    dc__add_forward(t->tok, t->tok, t->q, nd);
}

/* x [n, C, h*w] += Transformer2DModel(x), in place */
static void unet_transformer(unet_run *u, const dc__unet_transformer *tf, float *x, int T)
{
    const dc__unet *m = u->m;
    int n = u->n, C = tf->c, D = tf->inner;
    size_t rows = (size_t)n * T, cd = unet_max(C, D), kv = unet_max(T, u->ctx_len);
    size_t rc = UNET_FF_CHUNK_FLOATS / (12 * (size_t)D) / 64 * 64;
    if (rc < 64) rc = 64;
    if (rc > rows) rc = rows;
    size_t mark = dc__arena_mark(u->a);
    unet_tbufs t;
    t.tok = unet_buf(u, rows, D, 1);
    t.nrm = unet_buf(u, rows, cd, 1);
    t.q = unet_buf(u, rows, cd, 1);
    t.k = unet_buf(u, n, kv, D);
    t.v = unet_buf(u, n, kv, D);
    t.o = unet_buf(u, rows, D, 1);
    t.ff = unet_buf(u, rc, 12, D);
    t.scores = unet_buf(u, dc__attention_scratch_floats((int)kv), 1, 1);
    t.rc = rc;
    if (u->run) {
        /* GN on NCHW (into q), to tokens, proj_in: a linear or 1x1 conv, the same map */
        unet_group_norm(t.q, x, tf->norm_w, tf->norm_b, n, C, T, m->groups, UNET_TF_GN_EPS, 0);
        unet_to_tokens(t.nrm, t.q, n, C, T);
        unet_linear(u, t.tok, t.nrm, tf->proj_in_w, tf->proj_in_b, rows);
        for (int l = 0; l < tf->layers; l++) unet_tblock(u, tf, &m->tblocks[tf->first + l], &t, T);
        unet_linear(u, t.nrm, t.tok, tf->proj_out_w, tf->proj_out_b, rows); /* [rows, C] */
        unet_add_tokens(x, t.nrm, n, C, T);
    }
    dc__arena_reset(u->a, mark);
}

/* The class-independent prefix. Everything before the first cross-attention
   sees only the noised sample and the timestep, not the prompt. The
   classifier sends every class at one (timestep, noise) with the same sample
   and timestep, so the prefix (conv_in and the resnets before the first
   transformer: for SD 1.x conv_in and the first 320-channel resnet at full
   size, ~2% of the work) runs once per distinct (sample, timestep) pair and
   is copied to the other items. Items are compared bit for bit, so any
   caller gets the same result as without sharing. Returns the number of
   distinct items, packed into sample_u / stemb_u in first-seen order. */
static int unet_share_prefix(unet_run *u, const float *sample, const float *timesteps, size_t per_item,
                             float *sample_u, float *stemb_u)
{
    int n = u->n, nu = 0, Td = u->m->temb_dim;
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
    for (int k = 0; k < nu; k++) {
        memcpy(sample_u + (size_t)k * per_item, sample + (size_t)first[k] * per_item, sizeof(float) * per_item);
        memcpy(stemb_u + (size_t)k * Td, u->stemb + (size_t)first[k] * Td, sizeof(float) * Td);
    }
    return nu;
}

/* End of the prefix: skips 0..ns-1 hold n_unique items each; spread them to
   all n items in place. Item i needs slot unique_of[i] <= i (slots are in
   first-seen order), so walking down from the last item never overwrites a
   slot that is still to be read. */
static void unet_end_prefix(unet_run *u, float **skip, const size_t *skip_floats, int ns)
{
    if (!u->shared) return;
    u->shared = 0;
    u->n = u->n_all;
    u->stemb = u->stemb_all;
    if (!u->run) return;
    for (int k = 0; k < ns; k++)
        for (int i = u->n - 1; i >= 0; i--)
            if (u->unique_of[i] != i)
                memcpy(skip[k] + (size_t)i * skip_floats[k], skip[k] + (size_t)u->unique_of[i] * skip_floats[k],
                       sizeof(float) * skip_floats[k]);
}

/* The whole network; with u->run == 0 it only sizes the arena. */
static void unet_walk(unet_run *u, float *out, const float *sample, const float *timesteps, int H, int W)
{
    const dc__unet *m = u->m;
    int n = u->n, B = m->blocks, c0 = m->ch[0], Td = m->temb_dim;

    /* time embedding: lives until the end */
    float *freq = unet_buf(u, n, c0, 1), *t1 = unet_buf(u, n, Td, 1), *emb = unet_buf(u, n, Td, 1);
    u->stemb = unet_buf(u, n, Td, 1);
    if (u->run) {
        dc__timestep_embedding(freq, timesteps, n, c0, m->flip_sin_to_cos, m->freq_shift, UNET_MAX_PERIOD);
        unet_linear(u, t1, freq, m->t1_w, m->t1_b, (size_t)n);
        dc__act_forward(t1, t1, (size_t)n * Td, DC_ACT_SILU);
        unet_linear(u, emb, t1, m->t2_w, m->t2_b, (size_t)n);
        dc__act_forward(u->stemb, emb, (size_t)n * Td, DC_ACT_SILU);
    }

    /* the shared prefix's inputs (planned at full size, used when items repeat) */
    size_t per_item = (size_t)m->in_ch * H * W;
    float *sample_u = unet_buf(u, n, per_item, 1), *stemb_u = unet_buf(u, n, Td, 1);
    u->unique_of = (int *)unet_buf(u, n, 2, 1); /* float-sized slots hold ints */
    u->n_all = n, u->stemb_all = u->stemb;
    if (u->run) {
        int nu = unet_share_prefix(u, sample, timesteps, per_item, sample_u, stemb_u);
        if (nu < n) { /* from here to unet_end_prefix, only the distinct items */
            u->shared = 1;
            u->n = n = nu;
            u->stemb = stemb_u;
            sample = sample_u;
        }
    }

    /* conv_in -> skip 0. Each skip is taken from the arena as it is made and
       kept until the up path has used it. */
    float *skip[UNET_MAX_SKIPS];
    size_t skip_floats[UNET_MAX_SKIPS]; /* per item */
    int skip_c[UNET_MAX_SKIPS], ns = 0;
    {
        skip[ns] = unet_buf(u, u->n_all, c0, (size_t)H * W);
        skip_c[ns] = c0, skip_floats[ns] = (size_t)c0 * H * W;
        size_t mark = dc__arena_mark(u->a);
        float *centered = m->center_input ? unet_buf(u, n, m->in_ch, (size_t)H * W) : NULL;
        float *cols = unet_conv_cols(u, m->conv_in_w, H, W, 1);
        if (u->run) {
            const float *x = sample;
            if (centered) { /* center_input_sample: 2 * sample - 1 */
                dc__kern()->scale_shift(centered, sample, (size_t)n * m->in_ch * H * W, 2.0f, -1.0f);
                x = centered;
            }
            unet_conv(u, skip[ns], x, m->conv_in_w, m->conv_in_b, H, W, 1, cols);
        }
        dc__arena_reset(u->a, mark);
        ns++;
    }

    /* down path */
    for (int i = 0; i < B; i++) {
        const dc__unet_block *blk = &m->down[i];
        int h = H >> i, w = W >> i;
        for (int j = 0; j < blk->layers; j++) {
            const dc__unet_resnet *rn = &m->resnets[blk->resnet0 + j];
            skip[ns] = unet_buf(u, u->n_all, rn->cout, (size_t)h * w);
            skip_c[ns] = rn->cout, skip_floats[ns] = (size_t)rn->cout * h * w;
            unet_resnet(u, rn, skip[ns], skip[ns - 1], h, w, 1.0f);
            if (blk->cross) { /* the first conditioning: the prefix ends here */
                unet_end_prefix(u, skip, skip_floats, ns + 1);
                unet_transformer(u, &m->transformers[blk->attn0 + j], skip[ns], h * w);
            }
            ns++;
        }
        if (blk->resample_w) {
            skip[ns] = unet_buf(u, u->n_all, blk->cout, (size_t)(h / 2) * (w / 2));
            skip_c[ns] = blk->cout, skip_floats[ns] = (size_t)blk->cout * (h / 2) * (w / 2);
            size_t mark = dc__arena_mark(u->a);
            float *cols = unet_conv_cols(u, blk->resample_w, h, w, 2);
            if (u->run) unet_conv(u, skip[ns], skip[ns - 1], blk->resample_w, blk->resample_b, h, w, 2, cols);
            dc__arena_reset(u->a, mark);
            ns++;
        }
    }

    unet_end_prefix(u, skip, skip_floats, ns); /* a down path without cross-attention */
    n = u->n;

    /* the up path's running state: as large as its largest activation */
    int hl = H >> (B - 1), wl = W >> (B - 1), C = m->ch[B - 1];
    size_t cur_floats = (size_t)C * hl * wl;
    for (int i = 0; i < B; i++) {
        int h = H >> (B - 1 - i), w = W >> (B - 1 - i);
        cur_floats = unet_max(cur_floats, (size_t)m->up[i].cout * h * w * (m->up[i].resample_w ? 4 : 1));
    }
    float *cur = unet_buf(u, n, cur_floats, 1);

    /* mid block: resnet (last skip -> cur), transformer, resnet (via a temporary) */
    unet_resnet(u, &m->resnets[m->mid_resnet0], cur, skip[ns - 1], hl, wl, m->mid_scale);
    unet_transformer(u, &m->transformers[m->mid_attn], cur, hl * wl);
    {
        size_t mark = dc__arena_mark(u->a);
        float *tmp = unet_buf(u, n, C, (size_t)hl * wl);
        unet_resnet(u, &m->resnets[m->mid_resnet0 + 1], tmp, cur, hl, wl, m->mid_scale);
        if (u->run) memcpy(cur, tmp, sizeof(float) * (size_t)n * C * hl * wl);
        dc__arena_reset(u->a, mark);
    }

    /* up path: each resnet reads concat(cur, the last skip) */
    int cc = C;
    for (int i = 0; i < B; i++) {
        const dc__unet_block *blk = &m->up[i];
        int h = H >> (B - 1 - i), w = W >> (B - 1 - i), hw = h * w;
        for (int j = 0; j < blk->layers; j++) {
            const dc__unet_resnet *rn = &m->resnets[blk->resnet0 + j];
            ns--;
            DC_ASSERT(ns >= 0 && rn->cin == cc + skip_c[ns]);
            size_t mark = dc__arena_mark(u->a);
            float *cat = unet_buf(u, n, rn->cin, hw);
            if (u->run) dc__concat_forward(cat, cur, skip[ns], n, cc, skip_c[ns], hw);
            unet_resnet(u, rn, cur, cat, h, w, 1.0f);
            dc__arena_reset(u->a, mark);
            cc = rn->cout;
            if (blk->cross) unet_transformer(u, &m->transformers[blk->attn0 + j], cur, hw);
        }
        if (blk->resample_w) { /* nearest 2x, then conv3x3 */
            size_t mark = dc__arena_mark(u->a);
            float *up = unet_buf(u, n, cc, (size_t)4 * hw);
            float *cols = unet_conv_cols(u, blk->resample_w, 2 * h, 2 * w, 1);
            if (u->run) {
                dc__upsample2x_forward(up, cur, n, cc, h, w);
                unet_conv(u, cur, up, blk->resample_w, blk->resample_b, 2 * h, 2 * w, 1, cols);
            }
            dc__arena_reset(u->a, mark);
        }
    }
    DC_ASSERT(ns == 0);

    /* conv_out(SiLU(GroupNorm(x))) */
    {
        size_t mark = dc__arena_mark(u->a);
        float *a = unet_buf(u, n, c0, (size_t)H * W);
        float *cols = unet_conv_cols(u, m->conv_out_w, H, W, 1);
        if (u->run) {
            unet_group_norm(a, cur, m->norm_out_w, m->norm_out_b, n, c0, H * W, m->groups, m->norm_eps, 1);
            unet_conv(u, out, a, m->conv_out_w, m->conv_out_b, H, W, 1, cols);
        }
        dc__arena_reset(u->a, mark);
    }
}

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

/* The arena's peak for these sizes (measuring pass); 0 on overflow */
static size_t unet_plan(const dc__unet *m, int n, int h, int w, int ctx_len)
{
    dc__arena plan;
    dc__arena_measure(&plan);
    unet_run u;
    memset(&u, 0, sizeof u);
    u.m = m, u.a = &plan, u.n = n, u.ctx_len = ctx_len;
    unet_walk(&u, NULL, NULL, NULL, h, w);
    return u.bad ? 0 : plan.peak;
}

size_t dc__unet_arena_bytes(const dc__unet *m, int n, int h, int w, int ctx_len)
{
    if (unet_check_sizes(m, n, h, w, ctx_len, NULL) != DC_OK) return 0;
    return unet_plan(m, n, h, w, ctx_len);
}

dc_status dc__unet_forward(const dc__unet *m, dc__runner *r, float *out, const float *sample,
                           const float *timesteps, const float *context, int n, int h, int w,
                           int ctx_len, dc_error *err)
{
    if (!m || !r || !out || !sample || !timesteps || !context)
        return dc__fail(err, DC_ERR_INVALID, "UNet: NULL argument");
    dc_status st = unet_check_sizes(m, n, h, w, ctx_len, err);
    if (st != DC_OK) return st;
    size_t bytes = unet_plan(m, n, h, w, ctx_len);
    if (!bytes)
        return dc__fail(err, DC_ERR_NOMEM, "UNet: batch %d of %d x %d latents needs more memory "
                        "than can be addressed", n, h, w);
    if ((st = dc__runner_reserve(r, bytes, m->decode_floats, err)) != DC_OK) return st;
    unet_run u;
    memset(&u, 0, sizeof u);
    u.m = m, u.r = r, u.a = &r->arena, u.run = 1, u.n = n, u.ctx_len = ctx_len, u.context = context;
    unet_walk(&u, out, sample, timesteps, h, w);
    dc__ok(err);
    return DC_OK;
}
