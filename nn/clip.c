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

   Tensor and metadata names: nn/clip.h and tools/convert/convert_clip.py. */
#include "nn.h"

#include <math.h>
#include <string.h>

/* ---- build ---- */

static dc_status clip_get(const dc__weights *w, const dc__tensor **t, const char *prefix,
                          const char *name, int ndim, int64_t d0, int64_t d1, dc_error *err)
{
    char full[256];
    int64_t shape[2] = {d0, d1};
    if ((size_t)snprintf(full, sizeof full, "%stext_model.%s", prefix, name) >= sizeof full)
        return dc__fail(err, DC_ERR_INVALID, "CLIP: tensor prefix '%s' is too long", prefix);
    dc_status st = dc__tensor_get(w, full, ndim, shape, t, err);
    /* 1-D tensors (norms, biases) are read as f32 directly; the converter
       never quantizes them */
    if (st == DC_OK && ndim == 1 && (*t)->dtype != DC_F32)
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%s' must be f32", w->path, full);
    return st;
}

dc_status dc__clip_build(dc__clip *m, const dc__weights *w, const char *prefix, dc_error *err)
{
    memset(m, 0, sizeof *m);
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
    int D = m->hidden, Dm = m->intermediate;

    if ((st = clip_get(w, &m->tok_emb, prefix, "embeddings.token_embedding.weight", 2, m->vocab, D, err)) ||
        (st = clip_get(w, &m->pos_emb, prefix, "embeddings.position_embedding.weight", 2,
                       m->max_positions, D, err)) ||
        (st = clip_get(w, &m->final_w, prefix, "final_layer_norm.weight", 1, D, 0, err)) ||
        (st = clip_get(w, &m->final_b, prefix, "final_layer_norm.bias", 1, D, 0, err)))
        return st;
    for (int i = 0; i < m->layers; i++) {
        dc__clip_layer *l = &m->layer[i];
        /* name suffix, ndim, shape, destination */
        struct { const char *name; int ndim; int64_t d0, d1; const dc__tensor **t; } want[] = {
            {"layer_norm1.weight", 1, D, 0, &l->ln1_w}, {"layer_norm1.bias", 1, D, 0, &l->ln1_b},
            {"self_attn.q_proj.weight", 2, D, D, &l->q_w}, {"self_attn.q_proj.bias", 1, D, 0, &l->q_b},
            {"self_attn.k_proj.weight", 2, D, D, &l->k_w}, {"self_attn.k_proj.bias", 1, D, 0, &l->k_b},
            {"self_attn.v_proj.weight", 2, D, D, &l->v_w}, {"self_attn.v_proj.bias", 1, D, 0, &l->v_b},
            {"self_attn.out_proj.weight", 2, D, D, &l->o_w}, {"self_attn.out_proj.bias", 1, D, 0, &l->o_b},
            {"layer_norm2.weight", 1, D, 0, &l->ln2_w}, {"layer_norm2.bias", 1, D, 0, &l->ln2_b},
            {"mlp.fc1.weight", 2, Dm, D, &l->fc1_w}, {"mlp.fc1.bias", 1, Dm, 0, &l->fc1_b},
            {"mlp.fc2.weight", 2, D, Dm, &l->fc2_w}, {"mlp.fc2.bias", 1, D, 0, &l->fc2_b},
        };
        for (size_t j = 0; j < sizeof want / sizeof want[0]; j++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.layers.%d.%s", i, want[j].name);
            if ((st = clip_get(w, want[j].t, prefix, name, want[j].ndim, want[j].d0, want[j].d1, err)))
                return st;
        }
        const dc__tensor *ws[] = {l->q_w, l->k_w, l->v_w, l->o_w, l->fc1_w, l->fc2_w};
        for (size_t j = 0; j < sizeof ws / sizeof ws[0]; j++)
            if (ws[j]->dtype != DC_F32 && (size_t)ws[j]->numel > m->decode_floats)
                m->decode_floats = (size_t)ws[j]->numel;
    }
    /* a layer beyond clip.num_layers means the metadata and the tensors
       disagree: running fewer layers than the model has would be silently wrong */
    char extra[224];
    snprintf(extra, sizeof extra, "%stext_model.encoder.layers.%d.layer_norm1.weight", prefix, m->layers);
    if (dc__tensor_find(w, extra))
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%s' exists, but clip.num_layers is %d",
                        w->path, extra, m->layers);
    return DC_OK;
}

/* ---- forward ---- */

/* y [rows, out] = x [rows, in] . W^T + b, W of any dtype (decoded into the
   runner's scratch) */
static void clip_linear(dc__runner *r, float *y, const float *x, const dc__tensor *W,
                        const dc__tensor *b, int rows)
{
    dc__scratch s = {r->wbuf, r->wcap};
    dc__linear_forward(y, x, dc__weight_f32(W, &s), b->data, rows, (int)W->shape[1],
                       (int)W->shape[0]);
}

dc_status dc__clip_forward(const dc__clip *m, dc__runner *r, float *out, const int64_t *ids,
                           int n, int seq_len, int penultimate, dc_error *err)
{
    int D = m->hidden, Dm = m->intermediate, L = seq_len, H = m->heads, dh = D / H;
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
    size_t nd, ni;      /* floats in [rows, D] and [rows, Dm] */
    if (!dc__mul_size(&rows, (size_t)n, (size_t)L) || !dc__mul_size(&nd, rows, (size_t)D) ||
        !dc__mul_size(&ni, rows, (size_t)Dm) || rows > (size_t)1 << 30)
        return dc__fail(err, DC_ERR_NOMEM, "CLIP: %d prompts of %d tokens is too large", n, L);
    /* penultimate: hidden_states[-2] is the output of layer N-2, so run N-1 layers */
    int run_layers = penultimate == DC_CLIP_LAST ? m->layers : m->layers - 1;
    int final_norm = penultimate != DC_CLIP_PENULTIMATE;
    /* q, k, v live in separate [rows, D] buffers; head h at columns h*dh.. */
    dc__attn_shape as = {n, H, L, L, dh, D, D, D, D, (size_t)L * D, (size_t)L * D,
                         (size_t)L * D, (size_t)L * D, 1.0f / sqrtf((float)dh), 1};

    /* plan, then allocate: the same calls measure and then hand out memory */
    for (int pass = 0; pass < 2; pass++) {
        dc__arena plan, *a = &r->arena;
        if (pass == 0) {
            dc__arena_measure(&plan);
            a = &plan;
        }
        float *x = dc__arena_floats(a, nd);      /* [n, L, D] residual stream */
        float *h = dc__arena_floats(a, nd);      /* [n, L, D] normed input / projection out */
        float *q = dc__arena_floats(a, nd);      /* [n, L, D] */
        float *k = dc__arena_floats(a, nd);      /* [n, L, D] */
        float *v = dc__arena_floats(a, nd);      /* [n, L, D] */
        float *att = dc__arena_floats(a, nd);    /* [n, L, D] attention out, then fc2 out */
        float *mlp = dc__arena_floats(a, ni);    /* [n, L, Dm] */
        float *ascratch = dc__arena_floats(a, dc__attention_scratch_floats(L));
        if (pass == 0) {
            dc_status st = dc__runner_reserve(r, plan.peak, m->decode_floats, err);
            if (st != DC_OK) return st;
            continue;
        }
        DC_ASSERT(x && h && q && k && v && att && mlp && ascratch);

        /* x = token_embedding[ids] + position_embedding[0..L-1]: rows are
           decoded one at a time, so a quantized 49408-row table is never
           decoded whole */
        dc__decode_rows(h, m->pos_emb, 0, L);    /* [L, D] */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < L; j++) {
                float *xr = x + ((size_t)i * L + j) * D;
                int64_t id = ids[(size_t)i * L + j];
                dc__decode_rows(xr, m->tok_emb, id, id + 1);
                dc__add_forward(xr, xr, h + (size_t)j * D, (size_t)D);
            }

        for (int b = 0; b < run_layers; b++) {
            const dc__clip_layer *l = &m->layer[b];
            dc__layer_norm_forward(h, x, l->ln1_w->data, l->ln1_b->data, (int)rows, D, m->eps);
            clip_linear(r, q, h, l->q_w, l->q_b, (int)rows);
            clip_linear(r, k, h, l->k_w, l->k_b, (int)rows);
            clip_linear(r, v, h, l->v_w, l->v_b, (int)rows);
            dc__attention_forward(att, q, k, v, &as, ascratch);
            clip_linear(r, h, att, l->o_w, l->o_b, (int)rows);
            dc__add_forward(x, x, h, nd);
            dc__layer_norm_forward(h, x, l->ln2_w->data, l->ln2_b->data, (int)rows, D, m->eps);
            clip_linear(r, mlp, h, l->fc1_w, l->fc1_b, (int)rows);
            dc__act_forward(mlp, mlp, ni, m->act);
            clip_linear(r, att, mlp, l->fc2_w, l->fc2_b, (int)rows);
            dc__add_forward(x, x, att, nd);
        }
        if (final_norm)
            dc__layer_norm_forward(out, x, m->final_w->data, m->final_b->data, (int)rows, D, m->eps);
        else
            memcpy(out, x, nd * sizeof(float));
    }
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
