/* nn/model.c - a model file becomes a dc_model: the mapping is validated
   (nn/weights.c), then each network its metadata describes is built and
   every tensor it needs is found and shape-checked, once. Also what the
   model offers besides classifying: its summary (`dc info`), its prompt
   tokenizer, and the contexts that run it. */
#include "model.h"
#include "q8.h"

#include <stdlib.h>
#include <string.h>

/* ---- loading ---- */

/* Builds the family's networks from the validated file: every tensor the
   config implies is looked up and shape-checked here, once. */
static dc_status build_family(dc_model *m, dc_error *err)
{
    dc_status st = DC_OK;
    if (dc__meta_find(&m->w, "vae.block_out_channels")) {
        if (!(m->vae = calloc(1, sizeof *m->vae))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        if ((st = dc__vae_build(m->vae, &m->w, "vae.", err)) != DC_OK) return st;
    }
    if (dc__meta_find(&m->w, "tokenizer.vocab")) {
        if (!(m->tok = calloc(1, sizeof *m->tok))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        if ((st = dc__tokenizer_build(m->tok, &m->w, err)) != DC_OK) return st;
    }
    if (dc__meta_find(&m->w, "clip.hidden_size")) {
        if (!(m->clip = calloc(1, sizeof *m->clip))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        if ((st = dc__clip_build(m->clip, &m->w, "text.", err)) != DC_OK) return st;
    }
    if (dc__meta_find(&m->w, "unet.block_out_channels")) {
        if (!(m->unet = calloc(1, sizeof *m->unet))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        if ((st = dc__unet_build(m->unet, &m->w, "unet.", err)) != DC_OK) return st;
    }
    if (!strcmp(m->family, "sd") && (!m->unet || !m->clip || !m->tok || !m->vae))
        return dc__fail(err, DC_ERR_MISSING, "%s: a Stable Diffusion file needs a tokenizer, text encoder, VAE "
                        "and UNet; this one lacks the %s", m->w.path, !m->tok ? "tokenizer" : !m->clip ?
                        "text encoder" : !m->vae ? "VAE" : "UNet");
    if (!strcmp(m->family, "dit")) {
        if (!(m->dit = calloc(1, sizeof *m->dit)))
            return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        return dc__dit_build(m->dit, &m->w, err);
    }
    return st; /* other families carry data only (e.g. "test") */
}

/* Int8 compute packs the matrices while the networks are built: it starts
   here, with the variant the CPU runs best (checked against the scalar
   twin first). `auto` takes it only where that variant multiplies with a
   dot-product unit; elsewhere int8 would gain too little to pay for its
   error (bench/README.md). */
static dc_status start_compute(dc_model *m, dc_compute compute, dc_error *err)
{
    if (compute == DC_COMPUTE_F32) return DC_OK;
    if (compute != DC_COMPUTE_INT8 && compute != DC_COMPUTE_AUTO)
        return dc__fail(err, DC_ERR_INVALID, "dc_model_load: compute %d is not f32, int8 or auto", (int)compute);
    char why[256];
    const dc__q8variant *v = dc__q8_best(why, sizeof why);
    if (compute == DC_COMPUTE_AUTO && !(v && dc__int8_is_dot(v))) return DC_OK;
    if (!v) return dc__fail(err, DC_ERR_UNSUPPORTED, "int8 compute: no int8 product passed its check here (%s)", why);
    return dc__int8_begin(&m->w, v, DC_INT8_MIN_SIDE, err);
}

dc_status dc_model_load(dc_model **out, const char *path, const dc_load_opts *opts, dc_error *err)
{
    dc__ok(err);
    if (!out || !path) return dc__fail(err, DC_ERR_INVALID, "dc_model_load: NULL argument");
    *out = NULL;
    dc_model *m = calloc(1, sizeof *m);
    if (!m) return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
    dc_status st = dc__weights_open(&m->w, path, !(opts && opts->skip_checksum), err);
    if (st == DC_OK) st = dc__meta_str(&m->w, "dc.family", m->family, sizeof m->family, err);
    if (st == DC_OK) st = start_compute(m, opts ? opts->compute : DC_COMPUTE_F32, err);
    if (st == DC_OK) st = build_family(m, err);
    if (st != DC_OK) {
        dc_model_free(m);
        return st;
    }
    *out = m;
    return DC_OK;
}

void dc_model_free(dc_model *m)
{
    if (!m) return;
    dc__int8_end(&m->w);
    dc__weights_close(&m->w);
    free(m->dit);
    free(m->vae);
    free(m->clip);
    dc__tokenizer_free(m->tok);
    free(m->tok);
    free(m->unet);
    free(m);
}

const char *dc_model_family(const dc_model *m) { return m ? m->family : ""; }

const char *dc_model_compute(const dc_model *m) { return m && m->w.int8 ? "int8" : "f32"; }

const char *dc_model_int8_variant(const dc_model *m)
{
    return m && m->w.int8 ? dc__q8_name(dc__int8_variant(&m->w)) : "";
}

int dc_compute_parse(const char *s, dc_compute *c)
{
    if (!s) return 0;
    if (!strcmp(s, "f32")) *c = DC_COMPUTE_F32;
    else if (!strcmp(s, "int8")) *c = DC_COMPUTE_INT8;
    else if (!strcmp(s, "auto")) *c = DC_COMPUTE_AUTO;
    else return 0;
    return 1;
}

int dc_model_has_calibration(const dc_model *m)
{
    return m && dc__meta_find(&m->w, "classify.calib_t") && dc__meta_find(&m->w, "classify.calib_spread");
}

/* ---- the summary `dc info` prints ---- */

static const char *dtype_name(int dtype)
{
    return dtype == DC_F32 ? "f32" : dtype == DC_F16 ? "f16" : "q8";
}

static void print_meta_value(FILE *f, const dc__meta *m)
{
    uint32_t shown = m->count < 8 ? m->count : 8;
    switch (m->kind) {
    case DC_META_INT: {
        int64_t v;
        memcpy(&v, m->payload, 8);
        fprintf(f, "%lld", (long long)v);
        break;
    }
    case DC_META_FLOAT: {
        double v;
        memcpy(&v, m->payload, 8);
        fprintf(f, "%g", v);
        break;
    }
    case DC_META_STR: {
        uint32_t len;
        memcpy(&len, m->payload, 4);
        fprintf(f, "\"%.*s\"", (int)(len < 60 ? len : 60), (const char *)m->payload + 4);
        if (len > 60) fprintf(f, "...");
        break;
    }
    case DC_META_INTS: case DC_META_FLOATS: case DC_META_STRS: {
        const uint8_t *p = m->payload;
        fprintf(f, "[");
        for (uint32_t i = 0; i < shown; i++) {
            if (i) fprintf(f, ", ");
            if (m->kind == DC_META_STRS) {
                uint32_t len;
                memcpy(&len, p, 4);
                fprintf(f, "\"%.*s\"", (int)(len < 24 ? len : 24), (const char *)p + 4);
                p += 4 + len;
            } else if (m->kind == DC_META_INTS) {
                int64_t v;
                memcpy(&v, p + 8 * i, 8);
                fprintf(f, "%lld", (long long)v);
            } else {
                double v;
                memcpy(&v, p + 8 * i, 8);
                fprintf(f, "%g", v);
            }
        }
        if (m->count > shown) fprintf(f, ", ... (%u in all)", m->count);
        fprintf(f, "]");
        break;
    }
    }
}

void dc_model_print_info(const dc_model *m, void *fp, int verbose)
{
    FILE *f = fp;
    const dc__weights *w = &m->w;
    int64_t params = 0, by_dtype[3] = {0, 0, 0};
    for (int i = 0; i < w->n_tensors; i++) {
        params += w->tensors[i].numel;
        by_dtype[w->tensors[i].dtype] += w->tensors[i].numel;
    }
    fprintf(f, "file:      %s (%.1f MB, weight file version %u)\n", w->path, w->size / 1e6,
            w->version);
    fprintf(f, "family:    %s\n", m->family);
    fprintf(f, "tensors:   %d, %lld parameters (f32 %lld, f16 %lld, q8 %lld)\n", w->n_tensors,
            (long long)params, (long long)by_dtype[0], (long long)by_dtype[1],
            (long long)by_dtype[2]);
    if (w->int8) {
        int packed, kept;
        size_t bytes;
        dc__int8_count(w, &packed, &kept, &bytes);
        fprintf(f, "compute:   int8 (%s): %d matrices packed (%.1f MB), %d kept f32\n",
                dc__q8_name(dc__int8_variant(w)), packed, bytes / 1e6, kept);
    } else {
        fprintf(f, "compute:   f32\n");
    }
    fprintf(f, "metadata:\n");
    for (int i = 0; i < w->n_meta; i++) {
        fprintf(f, "  %-32.*s ", w->meta[i].key_len, w->meta[i].key);
        print_meta_value(f, &w->meta[i]);
        fprintf(f, "\n");
    }
    if (verbose) {
        fprintf(f, "tensors:\n");
        for (int i = 0; i < w->n_tensors; i++) {
            const dc__tensor *t = &w->tensors[i];
            fprintf(f, "  %-60.*s %s [", t->name_len, t->name, dtype_name(t->dtype));
            for (int d = 0; d < t->ndim; d++) fprintf(f, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            fprintf(f, "]\n");
        }
    }
}

/* ---- the prompt tokenizer ---- */

dc_status dc_tokenize(const dc_model *m, const char *text, int64_t *ids, int *n_tokens, int *truncated,
                      dc_error *err)
{
    dc__ok(err);
    if (!m || !text || !ids) return dc__fail(err, DC_ERR_INVALID, "dc_tokenize: NULL argument");
    if (!m->tok) return dc__fail(err, DC_ERR_UNSUPPORTED, "this model (family %s) has no tokenizer", m->family);
    return dc__tokenize(m->tok, text, ids, n_tokens, truncated, err);
}

int dc_tokenizer_length(const dc_model *m) { return m && m->tok ? m->tok->max_length : 0; }

dc_status dc_token_text(const dc_model *m, int64_t id, char *buf, size_t cap, dc_error *err)
{
    const uint8_t *b;
    int len, eow;
    dc__ok(err);
    if (!m || !m->tok) return dc__fail(err, DC_ERR_UNSUPPORTED, "this model has no tokenizer");
    if (!buf || !cap) return dc__fail(err, DC_ERR_INVALID, "dc_token_text: no buffer");
    dc_status st = dc__tokenizer_piece(m->tok, id, &b, &len, &eow, err);
    if (st == DC_OK) snprintf(buf, cap, "%.*s%s", len, (const char *)b, eow ? "</w>" : "");
    return st;
}

/* ---- contexts ---- */

/* A model of at most this many parameters (all its networks) runs one
   image per thread (dc_images_at_once): its matrices are a few hundred
   wide, so a layer takes microseconds and splitting it over threads costs
   about as much as it saves. A judgement, not a measured crossing point:
   the shipped models (4.5 M and 5.3 M parameters) ran 2.2-4.4x faster with
   it on 2 cores (bench/README.md, images_at_once.sh), while SD 1.5 and
   DiT-XL (675-860 M) keep their threads near the sgemm's peak on one image
   and need their activations once, not per thread. */
#define DC_IMAGE_PER_THREAD_MAX_PARAMS 50000000

int dc_images_at_once(const dc_model *m)
{
    int threads = dc__num_threads();
    if (!m || threads < 2) return 1;
    int64_t params = 0;
    for (int i = 0; i < m->w.n_tensors; i++) params += m->w.tensors[i].numel;
    return params <= DC_IMAGE_PER_THREAD_MAX_PARAMS ? threads : 1;
}

dc_status dc_ctx_new(dc_ctx **out, const dc_model *m, dc_error *err)
{
    dc__ok(err);
    if (!out || !m) return dc__fail(err, DC_ERR_INVALID, "dc_ctx_new: NULL argument");
    if (!(*out = calloc(1, sizeof **out))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    (*out)->model = m;
    dc__runner_use_int8(&(*out)->runner, &m->w);
    return DC_OK;
}

void dc_ctx_free(dc_ctx *c)
{
    if (!c) return;
    dc__runner_free(&c->runner);
    free(c);
}
