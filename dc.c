#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* dc.c - the classifier library: models, runtime, and (as the model
   families land) the paper's Algorithm 1/2 loop.

   Read top to bottom: version and errors, the model (a validated .dcw
   mapping plus what its metadata says), the runtime (threads, OpenBLAS
   kernel check). Everything numeric lives in nn/. */
#include "dc.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS extensions (declared here: not every cblas.h has them) */
char *openblas_get_corename(void);
void openblas_set_num_threads(int num_threads);

/* ---- version and errors ---- */

const char *dc_version(void) { return DC_VERSION_STRING; }

const char *dc_status_name(dc_status s)
{
    switch (s) {
    case DC_OK: return "ok";
    case DC_ERR_IO: return "i/o error";
    case DC_ERR_FORMAT: return "bad format";
    case DC_ERR_NOMEM: return "out of memory";
    case DC_ERR_INVALID: return "invalid argument";
    case DC_ERR_MISSING: return "missing";
    case DC_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

/* ---- models ---- */

struct dc_model {
    dc__weights w;      /* the mapping; everything below points into it */
    char family[32];    /* metadata dc.family */
    dc__dit *dit;       /* family "dit": the transformer */
    dc__vae *vae;       /* the image encoder, when the file has one ("vae." tensors) */
    dc__clip *clip;     /* the text encoder, when the file has one ("text." tensors) */
    dc__tokenizer *tok; /* the prompt tokenizer, when the file has tokenizer.* metadata */
    dc__unet *unet;     /* the text-conditional denoiser ("unet." tensors) */
};

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

dc_status dc_model_load(dc_model **out, const char *path, const dc_load_opts *opts, dc_error *err)
{
    dc__ok(err);
    if (!out || !path) return dc__fail(err, DC_ERR_INVALID, "dc_model_load: NULL argument");
    *out = NULL;
    dc_model *m = calloc(1, sizeof *m);
    if (!m) return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
    dc_status st = dc__weights_open(&m->w, path, !(opts && opts->skip_checksum), err);
    if (st == DC_OK) st = dc__meta_str(&m->w, "dc.family", m->family, sizeof m->family, err);
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

int dc_model_has_calibration(const dc_model *m)
{
    return m && dc__meta_find(&m->w, "classify.calib_t") && dc__meta_find(&m->w, "classify.calib_spread");
}

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

struct dc_ctx {
    const dc_model *model;
    dc__runner runner;  /* activations and weight-decode scratch */
};

dc_status dc_ctx_new(dc_ctx **out, const dc_model *m, dc_error *err)
{
    dc__ok(err);
    if (!out || !m) return dc__fail(err, DC_ERR_INVALID, "dc_ctx_new: NULL argument");
    if (!(*out = calloc(1, sizeof **out))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    (*out)->model = m;
    return DC_OK;
}

void dc_ctx_free(dc_ctx *c)
{
    if (!c) return;
    dc__runner_free(&c->runner);
    free(c);
}

/* ---- running one component ---- */

void dc_tensor_free(dc_tensor *t)
{
    if (!t) return;
    free(t->f32);
    free(t->i64);
    t->f32 = NULL;
    t->i64 = NULL;
}

dc_status dc_tensor_load_npy(dc_tensor *t, const char *path, dc_error *err)
{
    dc__ok(err);
    memset(t, 0, sizeof *t);
    dc__npy a;
    dc_status st = dc__npy_load(&a, path, err);
    if (st != DC_OK) return st;
    t->ndim = a.ndim;
    memcpy(t->shape, a.shape, sizeof a.shape);
    if (a.dtype == DC_NPY_F32) {
        t->f32 = a.data;
    } else if (a.dtype == DC_NPY_I64) {
        t->i64 = a.data;
    } else if (a.dtype == DC_NPY_I32) {
        t->i64 = malloc(sizeof(int64_t) * (size_t)(a.numel ? a.numel : 1));
        if (!t->i64) {
            dc__npy_free(&a);
            return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
        }
        for (int64_t i = 0; i < a.numel; i++) t->i64[i] = ((int32_t *)a.data)[i];
        dc__npy_free(&a);
    } else {
        dc__npy_free(&a);
        return dc__fail(err, DC_ERR_FORMAT, "%s: float64 data; dc computes in float32: save it "
                        "with .astype(np.float32)", path);
    }
    return DC_OK;
}

dc_status dc_tensor_save_npy(const dc_tensor *t, const char *path, dc_error *err)
{
    dc__ok(err);
    if (t->f32) return dc__npy_save(path, DC_NPY_F32, t->ndim, t->shape, t->f32, err);
    return dc__npy_save(path, DC_NPY_I64, t->ndim, t->shape, t->i64, err);
}

static int64_t numel_of(const dc_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* Checks input #i: f32 or i64 as asked, ndim, and each fixed dimension (-1 = any). */
static dc_status check_input(const dc_tensor *in, int i, const char *name, int want_f32, int ndim,
                             const int64_t *shape, dc_error *err)
{
    const dc_tensor *t = &in[i];
    if (want_f32 ? !t->f32 : !t->i64)
        return dc__fail(err, DC_ERR_INVALID, "input %d (%s) must be %s", i + 1, name,
                        want_f32 ? "float32" : "integer (int64/int32)");
    int ok = t->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = shape[d] < 0 || shape[d] == t->shape[d];
    if (!ok) {
        char got[128] = "", want[128] = "";
        for (int d = 0; d < t->ndim && d < 8; d++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", d ? ", " : "", (long long)t->shape[d]);
        for (int d = 0; d < ndim; d++) {
            if (shape[d] < 0) snprintf(want + strlen(want), sizeof want - strlen(want), "%s*", d ? ", " : "");
            else snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", d ? ", " : "", (long long)shape[d]);
        }
        return dc__fail(err, DC_ERR_INVALID, "input %d (%s) has shape [%s], expected [%s]", i + 1,
                        name, got, want);
    }
    return DC_OK;
}

static dc_status forward_dit(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_error *err)
{
    const dc__dit *m = c->model->dit;
    if (n_in != 3) return dc__fail(err, DC_ERR_INVALID, "dit takes 3 inputs (x, t, y), got %d", n_in);
    int64_t n = in[0].ndim == 4 ? in[0].shape[0] : -1, S = m->input_size;
    int64_t xs[4] = {-1, m->in_ch, S, S}, ts[1] = {n}, ys[1] = {n};
    dc_status st;
    if ((st = check_input(in, 0, "x", 1, 4, xs, err)) || (st = check_input(in, 1, "t", 1, 1, ts, err)) ||
        (st = check_input(in, 2, "y", 0, 1, ys, err)))
        return st;
    if (n < 1 || n > 1 << 20) return dc__fail(err, DC_ERR_INVALID, "dit: batch of %lld", (long long)n);
    memset(out, 0, sizeof *out);
    out->ndim = 4;
    out->shape[0] = n, out->shape[1] = m->out_ch, out->shape[2] = S, out->shape[3] = S;
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)numel_of(out), sizeof(float)) || !(out->f32 = malloc(bytes)))
        return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
    st = dc__dit_forward(m, &c->runner, out->f32, in[0].f32, in[1].f32, in[2].i64, (int)n, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* ids [n, L] -> hidden states [n, L, D] (last, or penultimate as the fixture defines it) */
static dc_status forward_text(dc_ctx *c, const dc_tensor *in, int n_in, int which, dc_tensor *out,
                              dc_error *err)
{
    const dc__clip *m = c->model->clip;
    if (n_in != 1) return dc__fail(err, DC_ERR_INVALID, "text takes 1 input (token ids), got %d", n_in);
    int64_t any[2] = {-1, -1};
    dc_status st = check_input(in, 0, "ids", 0, 2, any, err);
    if (st != DC_OK) return st;
    int64_t n = in[0].shape[0], L = in[0].shape[1];
    if (n < 1 || L < 1 || n > 1 << 20)
        return dc__fail(err, DC_ERR_INVALID, "text: ids of shape [%lld, %lld]", (long long)n, (long long)L);
    memset(out, 0, sizeof *out);
    out->ndim = 3;
    out->shape[0] = n, out->shape[1] = L, out->shape[2] = m->hidden;
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)numel_of(out), sizeof(float)) || !(out->f32 = malloc(bytes)))
        return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
    st = dc__clip_forward(m, &c->runner, out->f32, in[0].i64, (int)n, (int)L, which, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* sample [n, C, h, w], timesteps [n], context [n, L, D] -> [n, out_ch, h, w] */
static dc_status forward_unet(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_error *err)
{
    const dc__unet *m = c->model->unet;
    if (n_in != 3)
        return dc__fail(err, DC_ERR_INVALID, "unet takes 3 inputs (sample, timesteps, context), got %d", n_in);
    int64_t n = in[0].ndim == 4 ? in[0].shape[0] : -1;
    int64_t ss[4] = {-1, m->in_ch, -1, -1}, ts[1] = {n}, cs[3] = {n, -1, m->cross_dim};
    dc_status st;
    if ((st = check_input(in, 0, "sample", 1, 4, ss, err)) || (st = check_input(in, 1, "timesteps", 1, 1, ts, err)) ||
        (st = check_input(in, 2, "context", 1, 3, cs, err)))
        return st;
    int64_t h = in[0].shape[2], w = in[0].shape[3], L = in[2].shape[1];
    if (n < 1 || n > 4096 || h > 4096 || w > 4096 || L < 1 || L > 4096)
        return dc__fail(err, DC_ERR_INVALID, "unet: sizes out of range");
    memset(out, 0, sizeof *out);
    out->ndim = 4;
    out->shape[0] = n, out->shape[1] = m->out_ch, out->shape[2] = h, out->shape[3] = w;
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)numel_of(out), sizeof(float)) || !(out->f32 = malloc(bytes)))
        return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
    st = dc__unet_forward(m, &c->runner, out->f32, in[0].f32, in[1].f32, in[2].f32, (int)n, (int)h, (int)w, (int)L, err);
    if (st != DC_OK) dc_tensor_free(out);
    return st;
}

/* image [n, 3, h, w] in [-1, 1] -> latent mean (and std) [n, latent, h/f, w/f] */
static dc_status forward_vae(dc_ctx *c, const dc_tensor *in, int n_in, dc_tensor *out, dc_tensor *std_out,
                             dc_error *err)
{
    const dc__vae *m = c->model->vae;
    if (n_in != 1) return dc__fail(err, DC_ERR_INVALID, "vae takes 1 input (image), got %d", n_in);
    int64_t is[4] = {-1, m->in_ch, -1, -1};
    dc_status st = check_input(in, 0, "image", 1, 4, is, err);
    if (st != DC_OK) return st;
    int64_t n = in[0].shape[0], h = in[0].shape[2], w = in[0].shape[3];
    int f = 1 << (m->blocks - 1);
    if (n < 1 || n > 4096 || h < f || w < f || h > DC_IMAGE_MAX_SIDE || w > DC_IMAGE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "vae: image of [%lld, 3, %lld, %lld]", (long long)n, (long long)h,
                        (long long)w);
    memset(out, 0, sizeof *out);
    out->ndim = 4;
    out->shape[0] = n, out->shape[1] = m->latent_ch, out->shape[2] = h / f, out->shape[3] = w / f;
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)numel_of(out), sizeof(float)) || !(out->f32 = malloc(bytes)))
        return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
    if (std_out) {
        *std_out = *out;
        if (!(std_out->f32 = malloc(bytes))) {
            dc_tensor_free(out);
            return dc__fail(err, DC_ERR_NOMEM, "out of memory for the output");
        }
    }
    st = dc__vae_encode(m, &c->runner, out->f32, std_out ? std_out->f32 : NULL, in[0].f32, (int)n, (int)h, (int)w, err);
    if (st != DC_OK) {
        dc_tensor_free(out);
        if (std_out) dc_tensor_free(std_out);
    }
    return st;
}

dc_status dc_forward(dc_ctx *c, const char *component, const dc_tensor *inputs, int n_inputs,
                     dc_tensor *out, dc_error *err)
{
    dc__ok(err);
    if (!c || !component || !out || (n_inputs && !inputs))
        return dc__fail(err, DC_ERR_INVALID, "dc_forward: NULL argument");
    if (!strcmp(component, "text") || !strcmp(component, "text-penultimate")) {
        if (!c->model->clip)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no text encoder", c->model->family);
        return forward_text(c, inputs, n_inputs, component[4] ? DC_CLIP_PENULTIMATE : DC_CLIP_LAST, out, err);
    }
    if (!strcmp(component, "unet")) {
        if (!c->model->unet)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no UNet", c->model->family);
        return forward_unet(c, inputs, n_inputs, out, err);
    }
    if (!strcmp(component, "vae") || !strcmp(component, "vae-std")) {
        if (!c->model->vae)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no VAE", c->model->family);
        if (component[3]) { /* "vae-std": out is two tensors, mean then std */
            return forward_vae(c, inputs, n_inputs, &out[0], &out[1], err);
        }
        return forward_vae(c, inputs, n_inputs, out, NULL, err);
    }
    if (!strcmp(component, "dit")) {
        if (!c->model->dit)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no DiT", c->model->family);
        return forward_dit(c, inputs, n_inputs, out, err);
    }
    return dc__fail(err, DC_ERR_INVALID, "unknown component '%s' (known: dit, text, text-penultimate, vae, "
                    "vae-std, unet)", component);
}

/* ---- noise schedules ---- */

dc_status dc__schedule_make(dc__schedule *s, const char *kind, double beta_start, double beta_end,
                            int T, dc_error *err)
{
    memset(s, 0, sizeof *s);
    if (T < 2 || T > DC_MAX_T)
        return dc__fail(err, DC_ERR_FORMAT, "noise schedule: %d training timesteps (2..%d)", T, DC_MAX_T);
    if (!(beta_start > 0 && beta_end < 1 && beta_start <= beta_end))
        return dc__fail(err, DC_ERR_FORMAT, "noise schedule: betas %g..%g are not in (0, 1)",
                        beta_start, beta_end);
    int scaled = !strcmp(kind, "scaled_linear");
    if (!scaled && strcmp(kind, "linear"))
        return dc__fail(err, DC_ERR_UNSUPPORTED, "noise schedule '%s' (dc knows linear, "
                        "scaled_linear)", kind);
    s->T = T;
    double a = 1.0;
    for (int t = 0; t < T; t++) {
        /* linspace in double, as CompVis (torch float64) and ADM (numpy) do */
        double beta;
        if (scaled) {
            double r = sqrt(beta_start) + (sqrt(beta_end) - sqrt(beta_start)) * t / (T - 1);
            beta = r * r;
        } else {
            beta = beta_start + (beta_end - beta_start) * t / (T - 1);
        }
        a *= 1.0 - beta;
        s->alphas_cumprod[t] = a;
    }
    return DC_OK;
}

/* ---- noise: a counter-based generator ----

   The official code draws torch.randn without a seed, so its results do
   not reproduce; dc's noise is a pure function of (seed, stream, index):
   SplitMix64 finalisers over a counter give uniform bits, Box-Muller turns
   pairs into normals. Integer steps are exact everywhere; log/sqrt/cos are
   computed in double and rounded to float, so x86 and ARM agree except
   where a last-bit libm difference crosses a float rounding boundary
   (vanishingly rare). */

static uint64_t splitmix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dc__normal_noise(float *out, size_t n, uint64_t seed, uint64_t stream)
{
    const double two_pi = 6.283185307179586476925;
    uint64_t key = splitmix(seed ^ splitmix(stream + 0x632be59bd9b4e019ull));
    for (size_t i = 0; i < n; i += 2) {
        double u1 = (double)((splitmix(key + i) >> 11) + 1) * 0x1p-53; /* (0, 1] */
        double u2 = (double)(splitmix(key + i + 1) >> 11) * 0x1p-53;   /* [0, 1) */
        double r = sqrt(-2.0 * log(u1));
        out[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) out[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* ---- Student's t, for the sequential test ---- */

/* log Gamma(x), x > 0: Lanczos (g = 7, n = 9), ~1e-15 relative. Our own,
   because C99's lgamma writes the global signgam. */
static double log_gamma(double x)
{
    static const double c[9] = {0.99999999999980993, 676.5203681218851, -1259.1392167224028,
                                771.32342877765313, -176.61502916214059, 12.507343278686905,
                                -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
    if (x < 0.5) return log(3.14159265358979323846 / sin(3.14159265358979323846 * x)) - log_gamma(1 - x);
    x -= 1;
    double a = c[0], t = x + 7.5;
    for (int i = 1; i < 9; i++) a += c[i] / (x + i);
    return 0.91893853320467274178 + (x + 0.5) * log(t) - t + log(a);
}

/* Continued fraction of the regularised incomplete beta I_x(a, b)
   (modified Lentz), valid for x < (a + 1) / (a + b + 2). */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        for (int k = 0; k < 2; k++) {
            d = 1 + num * d;
            c = 1 + num / c;
            if (fabs(d) < tiny) d = tiny;
            if (fabs(c) < tiny) c = tiny;
            d = 1 / d;
            h *= d * c;
            num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        }
        if (fabs(d * c - 1) < 1e-15) break;
    }
    return h;
}

static double incomplete_beta(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbeta = log_gamma(a + b) - log_gamma(a) - log_gamma(b);
    double front = exp(lbeta + a * log(x) + b * log(1 - x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
    return 1 - front * beta_cf(b, a, 1 - x) / b;
}

double dc__student_t_sf(double t, double df)
{
    double tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t > 0 ? tail : 1 - tail;
}

/* ---- the timestep grid of the official code ---- */

int dc__timestep_grid(int *grid, int cap, int T, int max_n)
{
    /* start = T // max_n // 2; t = start, start + T // max_n, ... (< T), first max_n */
    if (max_n < 1 || max_n > T) return 0;
    int step = T / max_n, n = 0;
    for (int t = step / 2; t < T && n < max_n && n < cap; t += step) grid[n++] = t;
    return n;
}

int dc__stage_subset(int *idx, int cap, int grid_len, int n)
{
    /* grid[len // n // 2 :: len // n][:n] */
    if (n < 1 || n > grid_len) return 0;
    int stride = grid_len / n, k = 0;
    for (int i = stride / 2; i < grid_len && k < n && k < cap; i += stride) idx[k++] = i;
    return k;
}

/* ---- the classifier: Algorithm 1 (fixed timesteps) with Algorithm 2's
   adaptive pruning, or sequential pruning by a paired t-test ---- */

void dc_classify_opts_default(dc_classify_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_stages = 2;
    o->samples[0] = 50, o->samples[1] = 500;
    o->keep[0] = 5, o->keep[1] = 1;
    o->loss = DC_LOSS_L2;
    o->stop = DC_STOP_ADAPTIVE;
    o->trials = 1;
    o->seed = 0;
    o->seq_alpha = 0;      /* the rule's own: see test_level() */
    o->seq_min_scores = 0; /* the rule's own: see min_scores() */
}

void dc_result_free(dc_result *r)
{
    if (!r) return;
    free(r->ranking);
    free(r->mean_error);
    free(r->n_scored);
    free(r->timesteps);
    free(r->errors);
    memset(r, 0, sizeof *r);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Per-element loss between target and prediction, averaged over the latent
   (F.mse_loss / l1_loss / huber_loss(delta=1) then .mean(dim=(1,2,3))). */
static double latent_loss(const float *target, const float *pred, int L, dc_loss loss)
{
    double s = 0;
    for (int i = 0; i < L; i++) {
        double d = (double)pred[i] - target[i], a = fabs(d);
        s += loss == DC_LOSS_L2 ? d * d : loss == DC_LOSS_L1 ? a : (a < 1 ? 0.5 * d * d : a - 0.5);
    }
    return s / L;
}

/* The state of one classification. */
typedef struct {
    const dc__denoiser *d;
    const dc_classify_opts *o;
    const float *z0;
    int n_classes, L, grid_len;
    int *grid;            /* [grid_len] timesteps */
    int *col_of;          /* grid index -> result column, -1 until evaluated */
    int *alive, n_alive;  /* remaining classes */
    char *drop;           /* [n_classes] scratch: dropped this round */
    double *err_sum;      /* [n_classes] over scored (timestep, trial) items */
    float *spread;        /* [grid_len] calibrated stopping: per grid point; NULL otherwise */
    double *is_sum;       /* [n_classes] calibrated: sum of weight x error over the draws */
    int *is_n;            /* [n_classes] calibrated: draws the class took part in */
    float *buf;           /* batch: zt, prediction, noise per item */
    int *bt, *bc, *bg;    /* batch: timestep, class, grid index per item */
    int *br;              /* batch: trial per item */
    long evals_total;     /* for progress: an upper bound */
    dc_result *res;
} classify_state;

/* Runs one batch of (grid index, trial, class) items and adds their errors. */
static dc_status run_batch(classify_state *s, int n, dc_error *err)
{
    const dc__schedule *sch = s->d->schedule;
    int L = s->L;
    float *zt = s->buf, *pred = zt + (size_t)n * L, *eps = pred + (size_t)n * L;
    for (int i = 0; i < n; i++) {
        /* the same noise for every class at this (timestep, trial): paired */
        double a = sch->alphas_cumprod[s->bt[i]];
        float sa = (float)sqrt(a), sb = (float)sqrt(1 - a);
        float *e = eps + (size_t)i * L, *z = zt + (size_t)i * L;
        dc__normal_noise(e, (size_t)L, s->o->seed, (uint64_t)s->bg[i] * s->o->trials + s->br[i]);
        for (int j = 0; j < L; j++) z[j] = sa * s->z0[j] + sb * e[j];
        if (sch->v_prediction) /* v = sqrt(a) eps - sqrt(1-a) z0: the target replaces eps */
            for (int j = 0; j < L; j++) e[j] = sa * e[j] - sb * s->z0[j];
    }
    dc_status st = s->d->predict(s->d->self, pred, zt, s->bt, s->bc, n, err);
    if (st != DC_OK) return st;
    for (int i = 0; i < n; i++) {
        double e = latent_loss(eps + (size_t)i * L, pred + (size_t)i * L, L, s->o->loss);
        int c = s->bc[i], col = s->col_of[s->bg[i]];
        s->err_sum[c] += e;
        s->res->n_scored[c]++;
        float *cell = &s->res->errors[(size_t)c * s->grid_len + col];
        *cell = isnan(*cell) ? (float)(e / s->o->trials) : *cell + (float)(e / s->o->trials);
    }
    s->res->n_evals += n;
    if (s->o->progress) s->o->progress(s->o->progress_user, s->res->n_evals, s->evals_total);
    return DC_OK;
}

/* Scores every alive class at grid indices gi[0..n) (each with all trials),
   in batches of at most max_batch items. */
static dc_status evaluate(classify_state *s, const int *gi, int n, dc_error *err)
{
    for (int k = 0; k < n; k++) {
        s->col_of[gi[k]] = s->res->n_timesteps;
        s->res->timesteps[s->res->n_timesteps++] = s->grid[gi[k]];
    }
    int fill = 0, maxb = s->d->max_batch > 0 ? s->d->max_batch : 1;
    if (s->o->batch > 0 && s->o->batch < maxb) maxb = s->o->batch;
    for (int k = 0; k < n; k++)
        for (int r = 0; r < s->o->trials; r++)
            for (int a = 0; a < s->n_alive; a++) {
                s->bg[fill] = gi[k], s->bt[fill] = s->grid[gi[k]], s->br[fill] = r;
                s->bc[fill] = s->alive[a];
                if (++fill == maxb) {
                    dc_status st = run_batch(s, fill, err);
                    if (st != DC_OK) return st;
                    fill = 0;
                }
            }
    return fill ? run_batch(s, fill, err) : DC_OK;
}

/* A class's mean error over the grid: plain for the fixed schedule and the
   t-test; the importance-weighted estimate for calibrated stopping. */
static double mean_of(const classify_state *s, int c)
{
    if (s->is_sum) return s->is_n[c] ? s->is_sum[c] / s->is_n[c] : INFINITY;
    return s->res->n_scored[c] ? s->err_sum[c] / s->res->n_scored[c] : INFINITY;
}

/* Sorts alive classes by mean error (ties: lower class index first). */
static void sort_alive(classify_state *s)
{
    for (int i = 1; i < s->n_alive; i++) { /* insertion sort: n is small, order is stable */
        int c = s->alive[i], j = i;
        double m = mean_of(s, c);
        while (j > 0 && (mean_of(s, s->alive[j - 1]) > m ||
                         (mean_of(s, s->alive[j - 1]) == m && s->alive[j - 1] > c))) {
            s->alive[j] = s->alive[j - 1];
            j--;
        }
        s->alive[j] = c;
    }
}

/* Classes leave `alive` from the back; ranking is filled from the end, so
   a class dropped earlier ranks below every class dropped later. */
static void drop_to(classify_state *s, int keep, int *rank_end)
{
    for (int i = s->n_alive - 1; i >= keep; i--) s->res->ranking[--*rank_end] = s->alive[i];
    if (keep < s->n_alive) s->n_alive = keep;
}

/* The paper's fixed adaptive schedule (official eval_prob_adaptive). */
static dc_status classify_adaptive(classify_state *s, int *rank_end, dc_error *err)
{
    int *sub = malloc(sizeof(int) * (size_t)s->grid_len), *fresh = malloc(sizeof(int) * (size_t)s->grid_len);
    dc_status st = DC_OK;
    if (!sub || !fresh) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (int k = 0; st == DC_OK && k < s->o->n_stages; k++) {
        int n = dc__stage_subset(sub, s->grid_len, s->grid_len, s->o->samples[k]), nf = 0;
        for (int i = 0; i < n; i++) /* skip timesteps an earlier stage evaluated */
            if (s->col_of[sub[i]] < 0) fresh[nf++] = sub[i];
        st = evaluate(s, fresh, nf, err);
        sort_alive(s);
        drop_to(s, s->o->keep[k] < s->n_alive ? s->o->keep[k] : s->n_alive, rank_end);
    }
    free(sub);
    free(fresh);
    return st;
}

/* The order sequential stopping visits the grid in: coarse to fine (bit
   reversal of the grid index, so the first few already span the whole
   range, like a sample drawn evenly from it). */
static void visit_order(const classify_state *s, int *order)
{
    int n = s->grid_len, bits = 0, no = 0;
    while ((1 << bits) < n) bits++;
    for (int i = 0; i < (1 << bits); i++) {
        int r = 0;
        for (int b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
        if (r < n) order[no++] = r;
    }
}

/* Each rule's own settings (used when the options leave them 0). The
   t-test: Clark & Jaini's, 20 scores before the first test, level 2e-3.
   Calibrated stopping: 10 scores and level 5e-3, chosen on 200 validation
   images (test images outside the reported subset,
   data/fmnist_val_200.txt) of both shipped models: there 10 scores cost
   no accuracy against 20 and 6 saved little; level 5e-3 cost none against
   2e-3 and 1e-2 lost an image (bench/README.md has the table). */
#define DC_SEQUENTIAL_MIN_SCORES 20
#define DC_SEQUENTIAL_ALPHA 2e-3
#define DC_CALIBRATED_MIN_SCORES 10
#define DC_CALIBRATED_ALPHA 5e-3
static int min_scores(const dc_classify_opts *o)
{
    if (o->seq_min_scores > 0) return o->seq_min_scores;
    return o->stop == DC_STOP_CALIBRATED ? DC_CALIBRATED_MIN_SCORES : DC_SEQUENTIAL_MIN_SCORES;
}

static double test_level(const dc_classify_opts *o)
{
    if (o->seq_alpha > 0) return o->seq_alpha;
    return o->stop == DC_STOP_CALIBRATED ? DC_CALIBRATED_ALPHA : DC_SEQUENTIAL_ALPHA;
}

/* One round of the paired test: each alive class against the current best,
   on the draws so far (draw k: result column col[k], weight w[k], NULL for
   all 1). A one-sided paired t-test on the weighted differences; a class
   significantly worse at level alpha leaves (Clark & Jaini 2023). */
static void prune_by_test(classify_state *s, const int *col, const double *w, int draws, int *rank_end)
{
    sort_alive(s);
    /* walk from the worst up, so that classes dropped in the same round keep
       their order in the ranking */
    int best = s->alive[0];
    char *drop = s->drop;
    const float *eb = s->res->errors + (size_t)best * s->grid_len;
    for (int a = 1; a < s->n_alive; a++) {
        const float *ec = s->res->errors + (size_t)s->alive[a] * s->grid_len;
        double sum = 0, sq = 0;
        for (int k = 0; k < draws; k++) {
            double dlt = ((double)ec[col[k]] - eb[col[k]]) * (w ? w[k] : 1.0);
            sum += dlt;
            sq += dlt * dlt;
        }
        double mean = sum / draws, var = (sq - draws * mean * mean) / (draws - 1);
        double p = var > 0 ? dc__student_t_sf(mean / sqrt(var / draws), draws - 1) : (mean > 0 ? 0.0 : 1.0);
        drop[a] = p < test_level(s->o); /* significantly worse than the best */
    }
    for (int a = s->n_alive - 1; a >= 1; a--)
        if (drop[a]) s->res->ranking[--*rank_end] = s->alive[a];
    int kept = 1;
    for (int a = 1; a < s->n_alive; a++)
        if (!drop[a]) s->alive[kept++] = s->alive[a];
    s->n_alive = kept;
}

/* Sequential pruning: timesteps in coarse-to-fine order; after each, the
   paired test on the per-timestep error differences (Clark & Jaini 2023:
   min 20 scores, p = 2e-3). Column j of the errors holds the j-th
   timestep visited. */
static dc_status classify_sequential(classify_state *s, int *rank_end, dc_error *err)
{
    int *order = malloc(sizeof(int) * (size_t)s->grid_len * 2), *col = order + s->grid_len;
    if (!order) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    visit_order(s, order);
    dc_status st = DC_OK;
    for (int done = 0; st == DC_OK && done < s->grid_len && s->n_alive > 1; done++) {
        st = evaluate(s, &order[done], 1, err);
        col[done] = done;
        if (st == DC_OK && done + 1 >= min_scores(s->o)) prune_by_test(s, col, NULL, done + 1, rank_end);
    }
    sort_alive(s);
    free(order);
    return st;
}

/* 2^-1, 2^-2 + ..: the van der Corput sequence, i = 1, 2, ...: 1/2, 1/4,
   3/4, 1/8, 5/8, ... fills (0, 1) evenly at every length. */
static double van_der_corput(unsigned i)
{
    double u = 0, f = 0.5;
    for (; i; i >>= 1, f *= 0.5) u += (i & 1) * f;
    return u;
}

/* Calibrated stopping: the same test on an importance sample of timesteps.
   The decision is the mean error over the grid. A t-test on timesteps
   visited in plain order estimates it from an even sample; visiting the
   timesteps where classes differ most first (this rule's first version)
   tests a biased one: it was accurate on the DiT and lost 3.5 points on
   the SD model's validation images, whose mean differences are not where
   their spread is. Here timestep g is drawn with probability p(g) mixing
   the calibrated spread (the share the spread says g carries of the
   decision's noise) with 10% uniform (so no weight exceeds 10), and each
   draw's error counts with weight 1 / (grid_len p(g)): the weighted mean
   is an unbiased estimate of the grid mean, with the least variance when p
   follows the spread (importance sampling), so the test stops sooner
   without aiming at another quantity. Draws come from a van der Corput
   sequence through p's cumulative distribution (even coverage, no
   randomness beyond the noise); a timestep drawn again costs no
   evaluation. At most 4 x grid_len draws, and none once every grid
   timestep has been evaluated for the survivors. */
#define DC_CALIB_UNIFORM_SHARE 0.1
static dc_status classify_calibrated(classify_state *s, int *rank_end, dc_error *err)
{
    int n = s->grid_len, max_draws = 4 * n;
    double *cdf = malloc(sizeof(double) * (size_t)n * 2), *wg = cdf + n;
    double *w = malloc(sizeof(double) * (size_t)max_draws);
    int *col = malloc(sizeof(int) * (size_t)max_draws);
    if (!cdf || !w || !col) {
        free(cdf), free(w), free(col);
        return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    double total = 0, acc = 0;
    for (int g = 0; g < n; g++) total += s->spread[g];
    for (int g = 0; g < n; g++) {
        double p = (total > 0 ? (1 - DC_CALIB_UNIFORM_SHARE) * s->spread[g] / total : 0) +
                   (total > 0 ? DC_CALIB_UNIFORM_SHARE : 1.0) / n;
        wg[g] = 1.0 / (n * p);
        cdf[g] = acc += p;
    }
    dc_status st = DC_OK;
    int evaluated = 0;
    for (int k = 0; st == DC_OK && k < max_draws && evaluated < n && s->n_alive > 1; k++) {
        double u = van_der_corput((unsigned)k + 1) * acc;
        int lo = 0, hi = n - 1; /* the first g with cdf[g] > u */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        if (s->col_of[lo] < 0) {
            st = evaluate(s, &lo, 1, err);
            evaluated++;
        }
        if (st != DC_OK) break;
        col[k] = s->col_of[lo], w[k] = wg[lo];
        for (int a = 0; a < s->n_alive; a++) {
            int c = s->alive[a];
            s->is_sum[c] += w[k] * s->res->errors[(size_t)c * s->grid_len + col[k]];
            s->is_n[c]++;
        }
        if (k + 1 >= min_scores(s->o)) prune_by_test(s, col, w, k + 1, rank_end);
    }
    sort_alive(s);
    free(cdf), free(w), free(col);
    return st;
}

/* Calibrated stopping: the spread at each grid timestep, linear between
   the calibration points and constant beyond the ends. */
static dc_status grid_spread(classify_state *s, dc_error *err)
{
    const dc_classify_opts *o = s->o;
    if (!o->calib_t || !o->calib_spread || o->n_calib < 1)
        return dc__fail(err, DC_ERR_INVALID, "calibrated stopping needs the model's timestep calibration "
                        "(dc eval --calibrate FILE on held-out images, then --calibration FILE)");
    for (int i = 0; i < o->n_calib; i++)
        if (!(o->calib_spread[i] >= 0 && o->calib_spread[i] < 1e30f) || (i && o->calib_t[i] <= o->calib_t[i - 1]))
            return dc__fail(err, DC_ERR_INVALID, "timestep calibration: point %d (t %d, spread %g): spreads "
                            "must be finite and >= 0, timesteps ascending", i, o->calib_t[i], o->calib_spread[i]);
    for (int g = 0; g < s->grid_len; g++) {
        int t = s->grid[g], k = 0;
        const float *v = o->calib_spread;
        while (k < o->n_calib && o->calib_t[k] < t) k++;
        if (k == 0) s->spread[g] = v[0];
        else if (k == o->n_calib) s->spread[g] = v[o->n_calib - 1];
        else {
            double f = (double)(t - o->calib_t[k - 1]) / (o->calib_t[k] - o->calib_t[k - 1]);
            s->spread[g] = (float)((1 - f) * v[k - 1] + f * v[k]);
        }
    }
    return DC_OK;
}

dc_status dc__classify_core(const dc__denoiser *d, const float *z0, int n_classes,
                            const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    double t0 = now_seconds();
    memset(res, 0, sizeof *res);
    if (n_classes < 1) return dc__fail(err, DC_ERR_INVALID, "no classes to choose from");
    if (o->n_stages < 1 || o->n_stages > DC_MAX_STAGES)
        return dc__fail(err, DC_ERR_INVALID, "--samples/--keep: %d stages (1..%d)", o->n_stages, DC_MAX_STAGES);
    for (int k = 0; k < o->n_stages; k++) {
        if (o->samples[k] < 1 || (k && o->samples[k] < o->samples[k - 1]))
            return dc__fail(err, DC_ERR_INVALID, "--samples: stage %d has %d timesteps; counts must be "
                            ">= 1 and not decrease", k + 1, o->samples[k]);
        if (o->keep[k] < 1 || (k && o->keep[k] > o->keep[k - 1]))
            return dc__fail(err, DC_ERR_INVALID, "--keep: stage %d keeps %d classes; counts must be >= 1 "
                            "and not increase", k + 1, o->keep[k]);
    }
    if (o->stop == DC_STOP_ADAPTIVE && o->keep[o->n_stages - 1] != 1)
        return dc__fail(err, DC_ERR_INVALID, "--keep: the last stage must keep 1 class, not %d",
                        o->keep[o->n_stages - 1]);
    int T = d->schedule->T, max_n = o->samples[o->n_stages - 1];
    if (max_n > T)
        return dc__fail(err, DC_ERR_INVALID, "--samples: %d timesteps, the model has %d", max_n, T);
    if (o->trials < 1 || o->trials > 1000)
        return dc__fail(err, DC_ERR_INVALID, "--trials: %d (1..1000)", o->trials);
    if (o->stop != DC_STOP_ADAPTIVE && o->stop != DC_STOP_SEQUENTIAL && o->stop != DC_STOP_CALIBRATED)
        return dc__fail(err, DC_ERR_INVALID, "stopping rule %d: adaptive, sequential or calibrated", (int)o->stop);
    if (o->stop != DC_STOP_ADAPTIVE && (!(o->seq_alpha >= 0 && o->seq_alpha < 1) || o->seq_min_scores < 0 ||
                                        o->seq_min_scores == 1))
        return dc__fail(err, DC_ERR_INVALID, "sequential stopping: alpha %g must be in (0, 1) and the "
                        "minimum scores (%d) at least 2 (0 for either: the rule's default)", o->seq_alpha,
                        o->seq_min_scores);

    classify_state s;
    memset(&s, 0, sizeof s);
    s.d = d, s.o = o, s.z0 = z0, s.n_classes = n_classes, s.L = d->latent, s.res = res;
    int maxb = d->max_batch > 0 ? d->max_batch : 1;
    size_t cells = 0;
    s.grid = malloc(sizeof(int) * (size_t)max_n);
    s.col_of = malloc(sizeof(int) * (size_t)max_n);
    s.alive = malloc(sizeof(int) * (size_t)n_classes);
    s.drop = calloc((size_t)n_classes, 1);
    s.err_sum = calloc((size_t)n_classes, sizeof(double));
    if (o->stop == DC_STOP_CALIBRATED) {
        s.spread = malloc(sizeof(float) * (size_t)max_n);
        s.is_sum = calloc((size_t)n_classes, sizeof(double));
        s.is_n = calloc((size_t)n_classes, sizeof(int));
    }
    s.bt = malloc(sizeof(int) * (size_t)maxb * 4);
    res->ranking = malloc(sizeof(int) * (size_t)n_classes);
    res->mean_error = malloc(sizeof(double) * (size_t)n_classes);
    res->n_scored = calloc((size_t)n_classes, sizeof(int));
    res->timesteps = malloc(sizeof(int) * (size_t)max_n);
    if (dc__mul_size(&cells, (size_t)n_classes, (size_t)max_n)) res->errors = malloc(sizeof(float) * cells);
    size_t bufn;
    if (dc__mul_size(&bufn, (size_t)maxb * 3, (size_t)s.L)) s.buf = dc__aligned_alloc(bufn * sizeof(float));
    dc_status st = DC_OK;
    if (!s.grid || !s.col_of || !s.alive || !s.drop || !s.err_sum ||
        (o->stop == DC_STOP_CALIBRATED && (!s.spread || !s.is_sum || !s.is_n)) || !s.bt || !res->ranking ||
        !res->mean_error || !res->n_scored || !res->timesteps || !res->errors || !s.buf) {
        st = dc__fail(err, DC_ERR_NOMEM, "out of memory for %d classes x %d timesteps", n_classes, max_n);
        goto done;
    }
    s.bc = s.bt + maxb, s.bg = s.bc + maxb, s.br = s.bg + maxb;
    s.grid_len = dc__timestep_grid(s.grid, max_n, T, max_n);
    if (s.spread && (st = grid_spread(&s, err)) != DC_OK) goto done;
    res->n_classes = n_classes;
    for (int i = 0; i < s.grid_len; i++) s.col_of[i] = -1;
    for (size_t i = 0; i < cells; i++) res->errors[i] = NAN;
    for (int c = 0; c < n_classes; c++) s.alive[c] = c;
    s.n_alive = n_classes;
    /* the paper's schedule costs exactly this; sequential stopping at most this */
    s.evals_total = (long)n_classes * max_n * o->trials;
    if (o->stop == DC_STOP_ADAPTIVE) { /* exactly what the schedule will cost */
        long total = 0, alive = n_classes;
        int *sub = malloc(sizeof(int) * (size_t)s.grid_len);
        char *seen = calloc((size_t)s.grid_len, 1);
        for (int k = 0; sub && seen && k < o->n_stages; k++) {
            int n = dc__stage_subset(sub, s.grid_len, s.grid_len, o->samples[k]), fresh = 0;
            for (int i = 0; i < n; i++) fresh += !seen[sub[i]], seen[sub[i]] = 1;
            total += alive * (long)fresh * o->trials;
            if (o->keep[k] < alive) alive = o->keep[k];
        }
        free(sub);
        free(seen);
        s.evals_total = total;
    }

    int rank_end = n_classes;
    st = o->stop == DC_STOP_ADAPTIVE     ? classify_adaptive(&s, &rank_end, err)
         : o->stop == DC_STOP_SEQUENTIAL ? classify_sequential(&s, &rank_end, err)
                                         : classify_calibrated(&s, &rank_end, err);
    if (st == DC_OK) {
        for (int i = 0; i < s.n_alive; i++) res->ranking[i] = s.alive[i];
        DC_ASSERT(s.n_alive == rank_end);
        for (int c = 0; c < n_classes; c++) res->mean_error[c] = mean_of(&s, c);
        /* compact the per-class error rows to the timesteps evaluated */
        for (int c = 1; c < n_classes; c++)
            memmove(res->errors + (size_t)c * res->n_timesteps, res->errors + (size_t)c * s.grid_len,
                    sizeof(float) * (size_t)res->n_timesteps);
    }
done:
    free(s.grid);
    free(s.col_of);
    free(s.alive);
    free(s.drop);
    free(s.err_sum);
    free(s.spread);
    free(s.is_sum);
    free(s.is_n);
    free(s.bt);
    dc__aligned_free(s.buf);
    if (st != DC_OK) dc_result_free(res);
    else res->seconds = now_seconds() - t0;
    return st;
}

/* ---- classification with a class-conditional model (DiT) ---- */

typedef struct {
    const dc__dit *m;
    dc__runner *r;
    const int *class_ids;
    float *out;           /* [max_batch, out_ch, S, S] */
    float *tf;            /* [max_batch] */
    int64_t *y;           /* [max_batch] */
} dit_denoiser;

static dc_status dit_predict(void *self, float *out, const float *zt, const int *t, const int *cls,
                             int n, dc_error *err)
{
    dit_denoiser *dd = self;
    const dc__dit *m = dd->m;
    for (int i = 0; i < n; i++) dd->tf[i] = (float)t[i], dd->y[i] = dd->class_ids[cls[i]];
    dc_status st = dc__dit_forward(m, dd->r, dd->out, zt, dd->tf, dd->y, n, err);
    if (st != DC_OK) return st;
    /* learned sigma: the first in_ch output channels are the noise prediction */
    size_t L = (size_t)m->in_ch * m->input_size * m->input_size;
    for (int i = 0; i < n; i++) memcpy(out + i * L, dd->out + (size_t)i * m->out_ch * m->input_size * m->input_size, L * 4);
    return DC_OK;
}

static dc_status model_schedule(const dc__weights *w, dc__schedule *s, dc_error *err)
{
    char kind[32], pred[32];
    double b0, b1;
    int64_t T;
    dc_status st;
    if ((st = dc__meta_str(w, "schedule.beta_schedule", kind, sizeof kind, err)) ||
        (st = dc__meta_float(w, "schedule.beta_start", &b0, err)) ||
        (st = dc__meta_float(w, "schedule.beta_end", &b1, err)) ||
        (st = dc__meta_int(w, "schedule.num_train_timesteps", &T, err)) ||
        (st = dc__meta_str(w, "schedule.prediction_type", pred, sizeof pred, err)))
        return st;
    if ((st = dc__schedule_make(s, kind, b0, b1, (int)(T > DC_MAX_T ? DC_MAX_T + 1 : T), err))) return st;
    if (!strcmp(pred, "v_prediction")) s->v_prediction = 1;
    else if (strcmp(pred, "epsilon"))
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: prediction type '%s' (dc knows epsilon, "
                        "v_prediction)", w->path, pred);
    return DC_OK;
}

/* Calibrated stopping without a calibration in the options: the model's
   own (classify.calib_t / classify.calib_spread, written by tools/convert.py
   --calibration). *use is o, or *local (allocated here, the caller frees
   it): o with the calibration filled in. */
#define DC_MAX_CALIB 1024
typedef struct {
    dc_classify_opts o;
    int t[DC_MAX_CALIB];
    float spread[DC_MAX_CALIB];
    int64_t tv[DC_MAX_CALIB];
    double sv[DC_MAX_CALIB];
} calibrated_opts;

static dc_status with_model_calibration(const dc_model *m, const dc_classify_opts *o, calibrated_opts **local,
                                        const dc_classify_opts **use, dc_error *err)
{
    *use = o, *local = NULL;
    if (o->stop != DC_STOP_CALIBRATED || o->calib_t) return DC_OK;
    if (!dc_model_has_calibration(m))
        return dc__fail(err, DC_ERR_INVALID, "calibrated stopping: %s has no timestep calibration (make one "
                        "with dc eval --calibrate FILE on held-out labelled images, pass --calibration FILE)",
                        m->w.path);
    calibrated_opts *l = *local = malloc(sizeof *l);
    if (!l) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    uint32_t nt, ns;
    dc_status st = dc__meta_ints(&m->w, "classify.calib_t", l->tv, DC_MAX_CALIB, &nt, err);
    if (st == DC_OK) st = dc__meta_floats(&m->w, "classify.calib_spread", l->sv, DC_MAX_CALIB, &ns, err);
    if (st != DC_OK) return st;
    if (nt != ns || !nt)
        return dc__fail(err, DC_ERR_FORMAT, "%s: classify.calib_t has %u timesteps, classify.calib_spread %u "
                        "values", m->w.path, nt, ns);
    l->o = *o;
    for (uint32_t i = 0; i < nt; i++) { /* out-of-range values fail the core's checks, clamped or not */
        l->t[i] = l->tv[i] < -1 ? -1 : l->tv[i] > 1000000 ? 1000000 : (int)l->tv[i];
        l->spread[i] = (float)l->sv[i];
    }
    l->o.calib_t = l->t, l->o.calib_spread = l->spread, l->o.n_calib = (int)nt;
    *use = &l->o;
    return DC_OK;
}

dc_status dc_classify_latent(dc_ctx *c, const float *z, const int *class_ids, int n_classes,
                             const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!c || !z || !o || !res) return dc__fail(err, DC_ERR_INVALID, "dc_classify_latent: NULL argument");
    memset(res, 0, sizeof *res);
    const dc__dit *m = c->model->dit;
    if (!m) return dc__fail(err, DC_ERR_UNSUPPORTED, "dc_classify_latent needs a class-conditional "
                            "model (DiT); this one is '%s'", c->model->family);
    int *all = NULL;
    if (!class_ids) {
        n_classes = m->num_classes;
        if (!(all = malloc(sizeof(int) * (size_t)n_classes))) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n_classes; i++) all[i] = i;
        class_ids = all;
    }
    dc_status st = DC_OK;
    for (int i = 0; i < n_classes && st == DC_OK; i++)
        if (class_ids[i] < 0 || class_ids[i] >= m->num_classes)
            st = dc__fail(err, DC_ERR_INVALID, "class id %d is not one of the model's %d classes",
                          class_ids[i], m->num_classes);
    dc__schedule *sch = malloc(sizeof *sch);
    if (st == DC_OK && !sch) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK) st = model_schedule(&c->model->w, sch, err);
    int maxb = o->batch > 0 ? o->batch : 16;
    size_t S2 = (size_t)m->input_size * m->input_size;
    dit_denoiser dd = {m, &c->runner, class_ids, NULL, NULL, NULL};
    if (st == DC_OK) {
        dd.out = malloc(sizeof(float) * (size_t)maxb * m->out_ch * S2);
        dd.tf = malloc(sizeof(float) * (size_t)maxb);
        dd.y = malloc(sizeof(int64_t) * (size_t)maxb);
        if (!dd.out || !dd.tf || !dd.y) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    if (st == DC_OK) {
        dc__denoiser d = {dit_predict, &dd, (int)(m->in_ch * S2), maxb, sch};
        calibrated_opts *local;
        const dc_classify_opts *use;
        st = with_model_calibration(c->model, o, &local, &use, err);
        if (st == DC_OK) st = dc__classify_core(&d, z, n_classes, use, res, err);
        free(local);
    }
    free(dd.out);
    free(dd.tf);
    free(dd.y);
    free(sch);
    free(all);
    return st;
}

/* ---- candidate classes ---- */

struct dc_classes {
    int n;
    char **names;       /* [n] display names */
    int *ids;           /* class-conditional: the model's class id per entry */
    float *context;     /* text-conditional: [n, ctx_len, ctx_dim] prompt embeddings */
    int ctx_len, ctx_dim;
    int truncated;      /* prompts cut to the tokenizer's length */
};

int dc_classes_truncated(const dc_classes *cl) { return cl ? cl->truncated : 0; }

int dc_classes_count(const dc_classes *cl) { return cl ? cl->n : 0; }
const char *dc_classes_name(const dc_classes *cl, int i)
{
    return cl && i >= 0 && i < cl->n ? cl->names[i] : "";
}

void dc_classes_free(dc_classes *cl)
{
    if (!cl) return;
    for (int i = 0; i < cl->n && cl->names; i++) free(cl->names[i]);
    free(cl->names);
    free(cl->ids);
    free(cl->context);
    free(cl);
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int same_name(const char *a, size_t na, const char *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 0;
    }
    return 1;
}

/* Class-conditional: names -> class ids (by the model's classes.names, or numbers). */
static dc_status classes_for_ids(dc_classes *cl, const dc_model *m, const char *const *names, int n,
                                 dc_error *err)
{
    int have_names = dc__meta_find(&m->w, "classes.names") != NULL, total = m->dit->num_classes;
    cl->n = names ? n : total;
    cl->names = calloc((size_t)cl->n, sizeof *cl->names);
    cl->ids = malloc(sizeof(int) * (size_t)cl->n);
    if (!cl->names || !cl->ids) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cl->n; i++) {
        int id = -1;
        if (!names) {
            id = i;
        } else {
            const char *want = names[i];
            size_t wl = strlen(want);
            for (int k = 0; have_names && k < total && id < 0; k++) {
                const char *s;
                uint32_t len;
                if (dc__meta_strs_at(&m->w, "classes.names", (uint32_t)k, &s, &len, NULL) == DC_OK &&
                    same_name(s, len, want, wl))
                    id = k;
            }
            if (id < 0) { /* a number? */
                char *end;
                long v = strtol(want, &end, 10);
                if (wl && !*end && v >= 0 && v < total) id = (int)v;
            }
            if (id < 0)
                return dc__fail(err, DC_ERR_INVALID, "class '%s' is not one of the model's %d classes "
                                "(give a name from `dc info -v`, or a number 0..%d)", want, total, total - 1);
            for (int j = 0; j < i; j++)
                if (cl->ids[j] == id)
                    return dc__fail(err, DC_ERR_INVALID, "class '%s' is listed twice", want);
        }
        cl->ids[i] = id;
        const char *s;
        uint32_t len;
        char num[32];
        if (have_names && dc__meta_strs_at(&m->w, "classes.names", (uint32_t)id, &s, &len, NULL) == DC_OK) {
            cl->names[i] = dup_str(s, len);
        } else {
            snprintf(num, sizeof num, "%d", id);
            cl->names[i] = dup_str(num, strlen(num));
        }
        if (!cl->names[i]) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

/* Text-conditional: each name -> template -> tokens -> the text encoder's
   last hidden state, all prompts in one batch (the official code uses
   text_encoder(ids)[0], the last hidden state, for SD 1.x and 2.x alike). */
static dc_status classes_for_text(dc_classes *cl, dc_ctx *c, const char *const *names, int n, const char *tmpl,
                                  dc_error *err);

/* No class list given: the model's own (classes.names, as the shipped
   models carry), each a separate string for the path below. */
static dc_status classes_from_model(dc_classes *cl, dc_ctx *c, const char *tmpl, dc_error *err)
{
    const dc__meta *list = dc__meta_find(&c->model->w, "classes.names");
    if (!list || list->kind != DC_META_STRS || !list->count)
        return dc__fail(err, DC_ERR_INVALID, "a text-conditional model without class names in its file "
                        "needs a class list (--class, --classes or --preset)");
    if (list->count > DC_MAX_CLASSES)
        return dc__fail(err, DC_ERR_INVALID, "the model lists %u classes: dc takes at most %d", list->count,
                        DC_MAX_CLASSES);
    uint32_t n = list->count, len;
    const char *s;
    char **names = calloc(n ? n : 1, sizeof *names);
    dc_status st = names ? DC_OK : dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; st == DC_OK && i < n; i++) {
        st = dc__meta_strs_at(&c->model->w, "classes.names", i, &s, &len, err);
        if (st == DC_OK && !(names[i] = dup_str(s, len))) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    if (st == DC_OK) st = classes_for_text(cl, c, (const char *const *)names, (int)n, tmpl, err);
    for (uint32_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
    return st;
}

static dc_status classes_for_text(dc_classes *cl, dc_ctx *c, const char *const *names, int n, const char *tmpl,
                                  dc_error *err)
{
    const dc_model *m = c->model;
    char model_tmpl[1024];
    if (!tmpl) { /* the model's own template (classes.template), else the official code's default */
        tmpl = "a photo of a {}.";
        if (dc__meta_find(&m->w, "classes.template") &&
            dc__meta_str(&m->w, "classes.template", model_tmpl, sizeof model_tmpl, NULL) == DC_OK)
            tmpl = model_tmpl;
    }
    if (!names) return classes_from_model(cl, c, tmpl, err);
    if (!strstr(tmpl, "{}"))
        return dc__fail(err, DC_ERR_INVALID, "prompt template '%s' has no {} for the class name", tmpl);
    const char *slot = strstr(tmpl, "{}");
    int L = m->tok->max_length, D = m->clip->hidden;
    cl->n = n, cl->ctx_len = L, cl->ctx_dim = D;
    cl->names = calloc((size_t)n, sizeof *cl->names);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n * L);
    size_t cells;
    if (dc__mul_size(&cells, (size_t)n * L, (size_t)D)) cl->context = malloc(sizeof(float) * cells);
    dc_status st = DC_OK;
    if (!cl->names || !ids || !cl->context) st = dc__fail(err, DC_ERR_NOMEM, "out of memory for %d prompts", n);
    for (int i = 0; st == DC_OK && i < n; i++) {
        if (!names[i][strspn(names[i], " \t\r\n")]) { /* the prompt would name no class */
            st = dc__fail(err, DC_ERR_INVALID, "class %d has an empty name", i + 1);
            break;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                st = dc__fail(err, DC_ERR_INVALID, "class '%s' is listed twice", names[i]);
                break;
            }
        if (st != DC_OK) break;
        size_t pre = (size_t)(slot - tmpl), nl = strlen(names[i]), post = strlen(slot + 2);
        char *prompt = malloc(pre + nl + post + 1);
        if (!(cl->names[i] = dup_str(names[i], nl)) || !prompt) {
            free(prompt);
            st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(prompt, tmpl, pre);
        memcpy(prompt + pre, names[i], nl);
        memcpy(prompt + pre + nl, slot + 2, post + 1);
        int n_tok, cut;
        st = dc__tokenize(m->tok, prompt, ids + (size_t)i * L, &n_tok, &cut, err);
        cl->truncated += cut;
        free(prompt);
    }
    /* the encoder in batches, so a thousand prompts do not need a thousand-prompt arena */
    for (int i = 0; st == DC_OK && i < n; i += 64) {
        int b = n - i < 64 ? n - i : 64;
        st = dc__clip_forward(m->clip, &c->runner, cl->context + (size_t)i * L * D, ids + (size_t)i * L, b, L,
                              DC_CLIP_LAST, err);
    }
    free(ids);
    return st;
}

dc_status dc_classes_new(dc_classes **out, dc_ctx *c, const char *const *names, int n,
                         const char *prompt_template, dc_error *err)
{
    dc__ok(err);
    if (!out || !c) return dc__fail(err, DC_ERR_INVALID, "dc_classes_new: NULL argument");
    *out = NULL;
    if (names && n < 1) return dc__fail(err, DC_ERR_INVALID, "the class list is empty");
    if (n > DC_MAX_CLASSES)
        return dc__fail(err, DC_ERR_INVALID, "%d classes: dc takes at most %d", n, DC_MAX_CLASSES);
    dc_classes *cl = calloc(1, sizeof *cl);
    if (!cl) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    dc_status st;
    if (c->model->dit) st = classes_for_ids(cl, c->model, names, n, err);
    else if (c->model->unet && c->model->clip && c->model->tok)
        st = classes_for_text(cl, c, names, n, prompt_template, err);
    else st = dc__fail(err, DC_ERR_UNSUPPORTED, "model family '%s' cannot classify", c->model->family);
    if (st != DC_OK) {
        dc_classes_free(cl);
        return st;
    }
    *out = cl;
    return DC_OK;
}

/* ---- classifying an image ---- */

/* ---- classification with a text-conditional model (Stable Diffusion) ---- */

typedef struct {
    const dc__unet *m;
    dc__runner *r;
    const dc_classes *cl;
    int h, w;             /* latent size */
    float *ctx;           /* [max_batch, L, D] the items' prompt embeddings */
    float *tf;            /* [max_batch] */
    float *out;           /* [max_batch, out_ch, h, w] */
} unet_denoiser;

static dc_status unet_predict(void *self, float *out, const float *zt, const int *t, const int *cls, int n,
                              dc_error *err)
{
    unet_denoiser *u = self;
    size_t per = (size_t)u->cl->ctx_len * u->cl->ctx_dim;
    for (int i = 0; i < n; i++) {
        u->tf[i] = (float)t[i];
        memcpy(u->ctx + i * per, u->cl->context + (size_t)cls[i] * per, per * sizeof(float));
    }
    dc_status st = dc__unet_forward(u->m, u->r, u->out, zt, u->tf, u->ctx, n, u->h, u->w, u->cl->ctx_len, err);
    if (st != DC_OK) return st;
    /* the target has the latent's channels; a learned-variance model's extra ones are dropped */
    size_t L = (size_t)u->m->in_ch * u->h * u->w, full = (size_t)u->m->out_ch * u->h * u->w;
    for (int i = 0; i < n; i++) memcpy(out + i * L, u->out + i * full, L * sizeof(float));
    return DC_OK;
}

static dc_status classify_text_latent(dc_ctx *c, const dc_classes *cl, const float *z, int lh, int lw,
                                      const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    const dc_model *m = c->model;
    dc__schedule *sch = malloc(sizeof *sch);
    int maxb = o->batch > 0 ? o->batch : 8;
    unet_denoiser u = {m->unet, &c->runner, cl, lh, lw, NULL, NULL, NULL};
    dc_status st = sch ? model_schedule(&m->w, sch, err) : dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK) {
        u.ctx = malloc(sizeof(float) * (size_t)maxb * cl->ctx_len * cl->ctx_dim);
        u.tf = malloc(sizeof(float) * (size_t)maxb);
        u.out = malloc(sizeof(float) * (size_t)maxb * m->unet->out_ch * lh * lw);
        if (!u.ctx || !u.tf || !u.out) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    if (st == DC_OK) {
        dc__denoiser d = {unet_predict, &u, m->unet->in_ch * lh * lw, maxb, sch};
        calibrated_opts *local;
        const dc_classify_opts *use;
        st = with_model_calibration(m, o, &local, &use, err);
        if (st == DC_OK) st = dc__classify_core(&d, z, cl->n, use, res, err);
        free(local);
    }
    free(u.ctx);
    free(u.tf);
    free(u.out);
    free(sch);
    return st;
}

dc_status dc_classify_rgb(dc_ctx *c, const dc_classes *cl, const unsigned char *rgb, int w, int h,
                          const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!c || !cl || !rgb || !o || !res) return dc__fail(err, DC_ERR_INVALID, "dc_classify_rgb: NULL argument");
    memset(res, 0, sizeof *res);
    if (w < 1 || h < 1 || w > DC_IMAGE_MAX_SIDE || h > DC_IMAGE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "image of %d x %d pixels", w, h);
    const dc_model *m = c->model;
    if (!m->vae)
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: the model has no VAE, so it cannot encode images "
                        "(convert it together with its VAE)", m->w.path);
    if (!m->dit && !(m->unet && cl->context))
        return dc__fail(err, DC_ERR_UNSUPPORTED, "model family '%s' cannot classify", m->family);
    int f = 1 << (m->vae->blocks - 1);
    int native = m->dit ? m->dit->input_size * f : (m->unet->sample_size > 0 ? m->unet->sample_size * f : 512);
    int size = o->size > 0 ? o->size : native;
    if (m->dit && size != native)
        return dc__fail(err, DC_ERR_INVALID, "--size %d: this DiT works on %d px images (%dx%d latents)",
                        size, native, m->dit->input_size, m->dit->input_size);
    int down = m->unet ? 1 << (m->unet->blocks - 1) : 1;
    if (size % (f * down))
        return dc__fail(err, DC_ERR_INVALID, "--size %d: must be a multiple of %d for this model", size, f * down);

    /* image -> [3, size, size] in [-1, 1] -> latent mean * scaling factor, once per image.
       DiT: ADM's center_crop_arr; SD: Resize + CenterCrop, as the official code */
    dc__image img = {w, h, (unsigned char *)rgb, 2};
    int ls = size / f;
    size_t L = (size_t)m->vae->latent_ch * ls * ls;
    float *pix = malloc(sizeof(float) * 3 * (size_t)size * size), *z = malloc(sizeof(float) * L);
    dc_status st = DC_OK;
    if (!pix || !z) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK)
        st = m->dit ? dc__preprocess_adm(pix, &img, size, err) : dc__preprocess_sd(pix, &img, size, err);
    if (st == DC_OK) st = dc__vae_encode(m->vae, &c->runner, z, NULL, pix, 1, size, size, err);
    if (st == DC_OK) {
        for (size_t i = 0; i < L; i++) z[i] *= m->vae->scaling_factor;
        dc_classify_opts oo = *o;
        oo.size = 0;
        st = m->dit ? dc_classify_latent(c, z, cl->ids, cl->n, &oo, res, err)
                    : classify_text_latent(c, cl, z, ls, ls, &oo, res, err);
    }
    free(pix);
    free(z);
    return st;
}

dc_status dc_classify_image(dc_ctx *c, const dc_classes *cl, const char *image_path,
                            const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!image_path) return dc__fail(err, DC_ERR_INVALID, "dc_classify_image: NULL path");
    dc__image img;
    dc_status st = dc__image_load(&img, image_path, err);
    if (st != DC_OK) return st;
    st = dc_classify_rgb(c, cl, img.rgb, img.w, img.h, o, res, err);
    if (st != DC_OK && err) { /* name the file in the message */
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        if ((size_t)snprintf(err->msg, sizeof err->msg, "%s: %s", image_path, msg) >= sizeof err->msg)
            err->msg[sizeof err->msg - 1] = 0; /* truncated, still terminated */
    }
    dc__image_free(&img);
    return st;
}

/* ---- runtime ---- */

void dc_set_threads(int n)
{
    if (n <= 0) return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* the OpenMP build of OpenBLAS shares our pool; this keeps the pthread
       build (if linked instead) at the same count */
    openblas_set_num_threads(n);
}

int dc_get_threads(void) { return dc__num_threads(); }

void dc_blas_check(dc_blas_info *info)
{
    memset(info, 0, sizeof *info);
    const char *core = openblas_get_corename();
    snprintf(info->core, sizeof info->core, "%s", core ? core : "unknown");
    snprintf(info->cpu_level, sizeof info->cpu_level, "%s", dc__cpu_level());
    const char *env = getenv("OPENBLAS_CORETYPE");
    info->user_set = env && *env;
    const char *better = dc__blas_better_core(info->core, info->cpu_level);
    if (better) snprintf(info->better, sizeof info->better, "%s", better);
    if (better && !info->user_set) snprintf(info->suggest, sizeof info->suggest, "%s", better);
}
