/* nn/clip.c - the CLIP text transformer, Stable Diffusion's text encoder
   (transformers' CLIPTextModel; Radford et al., "Learning Transferable
   Visual Models From Natural Language Supervision", 2021).

   ids [n, L] -> hidden states [n, L, D]: the conditioning the UNet
   cross-attends to, computed once per class prompt and cached.

     x = token_embedding[ids] + position_embedding[0..L-1]     [n, L, D]
     each layer (pre-LN):
       x += out_proj(Attn(q_proj(LN1 x), k_proj(LN1 x), v_proj(LN1 x)))
            (heads of D/heads, scale head_dim^-0.5, causal mask)
       x += fc2(act(fc1(LN2 x)))      act = quick_gelu (SD1) or gelu (SD2)
     last_hidden_state = final_layer_norm(x)

   Only the causal mask is applied, no padding mask: that is how the SD
   pipelines call the encoder, so padding tokens (EOS for SD1, "!" = 0 for
   SD2) are ordinary tokens and the conditioning depends on them.

   Tensor and metadata names: nn/clip.h and tools/convert/convert_clip.py.

   Layout. Tokens are rows [n * L, D]: every prompt's tokens go through
   each linear layer in one sgemm; heads are column slices that
   dc__attention_forward reads in place. Every buffer lives for the whole
   forward (clip_layout lists them), so the arena is planned by running
   that list on a measuring arena first. */
#include "nn.h"

#include <math.h>
#include <string.h>

/* ---- build ---- */

/* Reads and checks the clip.* metadata into m */
static dc_status clip_read_config(dc__clip *m, const dc__weights *w, dc_error *err)
{
    dc_status st;
    char act[32];
    double eps;
    if ((st = dc__meta_int_in(w, "clip.hidden_size", &m->hidden, 1, 1 << 16, err)) ||
        (st = dc__meta_int_in(w, "clip.intermediate_size", &m->intermediate, 1, 1 << 18, err)) ||
        (st = dc__meta_int_in(w, "clip.num_heads", &m->heads, 1, 1024, err)) ||
        (st = dc__meta_int_in(w, "clip.num_layers", &m->layers, 1, DC_CLIP_MAX_LAYERS, err)) ||
        (st = dc__meta_int_in(w, "clip.max_positions", &m->max_positions, 1, 1 << 16, err)) ||
        (st = dc__meta_int_in(w, "clip.vocab_size", &m->vocab, 1, 1 << 24, err)) ||
        (st = dc__meta_str(w, "clip.act", act, sizeof act, err)) ||
        (st = dc__meta_float(w, "clip.layer_norm_eps", &eps, err)))
        return st;
    if (!strcmp(act, "quick_gelu"))
        m->act = DC_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu"))
        m->act = DC_ACT_GELU;
    else
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: metadata 'clip.act' = '%s': dc runs "
                        "'quick_gelu' and 'gelu'", w->path, act);
    if (!(eps > 0 && eps < 1))
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata 'clip.layer_norm_eps' = %g is not in "
                        "(0, 1)", w->path, eps);
    m->eps = (float)eps;
    if (m->hidden % m->heads)
        return dc__fail(err, DC_ERR_FORMAT, "%s: clip.hidden_size %d is not divisible by "
                        "clip.num_heads %d", w->path, m->hidden, m->heads);
    return DC_OK;
}

dc_status dc__clip_build(dc__clip *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    memset(m, 0, sizeof *m);
    dc_status st = clip_read_config(m, w, err);
    if (st != DC_OK) return st;
    int D = m->hidden, Dm = m->intermediate;

    char pre[128];
    if ((size_t)snprintf(pre, sizeof pre, "%stext_model.", prefix) >= sizeof pre)
        return dc__fail(err, DC_ERR_INVALID, "CLIP: tensor prefix '%s' is too long", prefix);
    dc__loader L = {w, pre, err, 0};
    /* the embedding tables are decoded a row at a time, so a quantized
       49408-row token table is never decoded whole */
    if ((st = dc__load(&L, &m->tok_emb, DC_USE_ROWS, 2, m->vocab, D, 0, 0,
                       "embeddings.token_embedding.weight")) ||
        (st = dc__load(&L, &m->pos_emb, DC_USE_ROWS, 2, m->max_positions, D, 0, 0,
                       "embeddings.position_embedding.weight")) ||
        (st = dc__load_norm(&L, &m->final_w, &m->final_b, D, "final_layer_norm")))
        return st;
    for (int i = 0; i < m->layers; i++) {
        dc__clip_layer *l = &m->layer[i];
#define CLIP_LAYER "encoder.layers.%d."
        if ((st = dc__load_norm(&L, &l->ln1_w, &l->ln1_b, D, CLIP_LAYER "layer_norm1", i)) ||
            (st = dc__load_linear(&L, &l->q_w, &l->q_b, D, D, CLIP_LAYER "self_attn.q_proj", i)) ||
            (st = dc__load_linear(&L, &l->k_w, &l->k_b, D, D, CLIP_LAYER "self_attn.k_proj", i)) ||
            (st = dc__load_linear(&L, &l->v_w, &l->v_b, D, D, CLIP_LAYER "self_attn.v_proj", i)) ||
            (st = dc__load_linear(&L, &l->o_w, &l->o_b, D, D, CLIP_LAYER "self_attn.out_proj", i)) ||
            (st = dc__load_norm(&L, &l->ln2_w, &l->ln2_b, D, CLIP_LAYER "layer_norm2", i)) ||
            (st = dc__load_linear(&L, &l->fc1_w, &l->fc1_b, Dm, D, CLIP_LAYER "mlp.fc1", i)) ||
            (st = dc__load_linear(&L, &l->fc2_w, &l->fc2_b, D, Dm, CLIP_LAYER "mlp.fc2", i)))
            return st;
#undef CLIP_LAYER
    }
    /* a layer beyond clip.num_layers means the metadata and the tensors
       disagree: running fewer layers than the model has would be silently wrong */
    char extra[224];
    snprintf(extra, sizeof extra, "%sencoder.layers.%d.layer_norm1.weight", pre, m->layers);
    if (dc__tensor_find(w, extra))
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%s' exists, but clip.num_layers is %d",
                        w->path, extra, m->layers);
    m->decode_floats = L.decode_floats;
    return DC_OK;
}

/* ---- forward ---- */

/* The forward's buffers (rows = n * L token rows); all live for the whole forward. */
typedef struct {
    float *x;           /* [rows, D] the residual stream */
    float *h;           /* [rows, D] normed input, then a projection's output */
    float *q, *k, *v;   /* [rows, D] each; head h at columns h*dh.. */
    float *att;         /* [rows, D] attention output, then fc2's */
    float *mlp;         /* [rows, Dm] */
    float *scores;      /* attention score blocks */
} clip_bufs;

static void clip_layout(dc__arena *a, const dc__clip *m, size_t rows, int L, clip_bufs *b)
{
    size_t D = (size_t)m->hidden;
    b->x = dc__arena_take(a, rows, D, 1);
    b->h = dc__arena_take(a, rows, D, 1);
    b->q = dc__arena_take(a, rows, D, 1);
    b->k = dc__arena_take(a, rows, D, 1);
    b->v = dc__arena_take(a, rows, D, 1);
    b->att = dc__arena_take(a, rows, D, 1);
    b->mlp = dc__arena_take(a, rows, (size_t)m->intermediate, 1);
    b->scores = dc__arena_floats(a, dc__attention_scratch_floats(L));
}

/* x [n, L, D] = token_embedding[ids] + position_embedding[0..L-1] */
static void clip_embed(const dc__clip *m, const clip_bufs *b, const int64_t *ids, int n, int L)
{
    int D = m->hidden;
    dc__decode_rows(b->h, m->pos_emb, 0, L);    /* [L, D] */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < L; j++) {
            float *xr = b->x + ((size_t)i * L + j) * D;
            int64_t id = ids[(size_t)i * L + j];
            dc__decode_rows(xr, m->tok_emb, id, id + 1);
            dc__add_forward(xr, xr, b->h + (size_t)j * D, (size_t)D);
        }
}

/* x += out_proj(Attn(LN1 x)); x += fc2(act(fc1(LN2 x))), over all rows at once */
static void clip_layer(const dc__clip *m, dc__runner *r, const dc__clip_layer *l, const clip_bufs *b,
                       const dc__attn_shape *as, int rows)
{
    int D = m->hidden;
    size_t nd = (size_t)rows * D, ni = (size_t)rows * m->intermediate;
    dc__layer_norm_forward(b->h, b->x, l->ln1_w->data, l->ln1_b->data, rows, D, m->eps);
    dc__linear(r, b->q, b->h, l->q_w, l->q_b, rows);
    dc__linear(r, b->k, b->h, l->k_w, l->k_b, rows);
    dc__linear(r, b->v, b->h, l->v_w, l->v_b, rows);
    dc__attention_forward(b->att, b->q, b->k, b->v, as, b->scores);
    dc__linear(r, b->h, b->att, l->o_w, l->o_b, rows);
    dc__add_forward(b->x, b->x, b->h, nd);
    dc__layer_norm_forward(b->h, b->x, l->ln2_w->data, l->ln2_b->data, rows, D, m->eps);
    dc__linear(r, b->mlp, b->h, l->fc1_w, l->fc1_b, rows);
    dc__act_forward(b->mlp, b->mlp, ni, m->act);
    dc__linear(r, b->att, b->mlp, l->fc2_w, l->fc2_b, rows);
    dc__add_forward(b->x, b->x, b->att, nd);
}

dc_status dc__clip_forward(const dc__clip *m, dc__runner *r, float *out, const int64_t *ids,
                           int n, int seq_len, int penultimate, dc_error *err)
{
    int D = m->hidden, L = seq_len, H = m->heads, dh = D / H;
    if (n < 1 || L < 1 || L > m->max_positions)
        return dc__fail(err, DC_ERR_INVALID, "CLIP: %d prompts of %d tokens; the model takes 1 to "
                        "%d tokens per prompt", n, L, m->max_positions);
    if (penultimate < DC_CLIP_LAST || penultimate > DC_CLIP_PENULTIMATE_NORMED)
        return dc__fail(err, DC_ERR_INVALID, "CLIP: unknown output selector %d", penultimate);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < L; j++) {
            int64_t id = ids[(size_t)i * L + j];
            if (id < 0 || id >= m->vocab)
                return dc__fail(err, DC_ERR_INVALID, "CLIP: token id %lld (prompt %d, position %d) "
                                "is outside the vocabulary [0, %d)", (long long)id, i, j, m->vocab);
        }
    size_t rows;        /* n * L: every token of every prompt in one sgemm */
    if (!dc__mul_size(&rows, (size_t)n, (size_t)L) || rows > (size_t)1 << 30)
        return dc__fail(err, DC_ERR_NOMEM, "CLIP: %d prompts of %d tokens is too large", n, L);
    /* penultimate: hidden_states[-2] is the output of layer N-2, so run N-1 layers */
    int run_layers = penultimate == DC_CLIP_LAST ? m->layers : m->layers - 1;
    int final_norm = penultimate != DC_CLIP_PENULTIMATE;
    /* q, k, v live in separate [rows, D] buffers; head h at columns h*dh.. */
    dc__attn_shape as = {n, H, L, L, dh, D, D, D, D, (size_t)L * D, (size_t)L * D,
                         (size_t)L * D, (size_t)L * D, 1.0f / sqrtf((float)dh), 1};

    /* plan, then allocate: clip_layout measures, then hands out the memory */
    clip_bufs b;
    dc__arena plan;
    dc__arena_measure(&plan);
    clip_layout(&plan, m, rows, L, &b);
    dc_status st = dc__runner_reserve_plan(r, &plan, m->decode_floats, err);
    if (st != DC_OK) return st;
    clip_layout(&r->arena, m, rows, L, &b);

    clip_embed(m, &b, ids, n, L);                                   /* x [n, L, D] */
    for (int i = 0; i < run_layers; i++) clip_layer(m, r, &m->layer[i], &b, &as, (int)rows);
    if (final_norm)
        dc__layer_norm_forward(out, b.x, m->final_w->data, m->final_b->data, (int)rows, D, m->eps);
    else
        memcpy(out, b.x, rows * D * sizeof(float));
    return DC_OK;
}

void dc__clip_pool(float *pooled, const float *last, const int64_t *ids, int n, int seq_len,
                   int hidden)
{
    for (int i = 0; i < n; i++) {
        const int64_t *row = ids + (size_t)i * seq_len;
        int best = 0;
        for (int j = 1; j < seq_len; j++)
            if (row[j] > row[best]) best = j;   /* strict: the first largest id, as torch.argmax */
        memcpy(pooled + (size_t)i * hidden, last + ((size_t)i * seq_len + best) * hidden,
               (size_t)hidden * sizeof(float));
    }
}
