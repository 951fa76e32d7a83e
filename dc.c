/* dc.c - the classifier library: models, runtime, and (as the model
   families land) the paper's Algorithm 1/2 loop.

   Read top to bottom: version and errors, the model (a validated .dcw
   mapping plus what its metadata says), the runtime (threads, OpenBLAS
   kernel check). Everything numeric lives in nn/. */
#include "dc.h"
#include "nn/nn.h"

#include <stdlib.h>
#include <string.h>
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
};

/* Builds the family's networks from the validated file: every tensor the
   config implies is looked up and shape-checked here, once. */
static dc_status build_family(dc_model *m, dc_error *err)
{
    if (!strcmp(m->family, "dit")) {
        if (!(m->dit = calloc(1, sizeof *m->dit)))
            return dc__fail(err, DC_ERR_NOMEM, "out of memory");
        return dc__dit_build(m->dit, &m->w, err);
    }
    return DC_OK; /* other families carry data only (e.g. "test") */
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
    free(m);
}

const char *dc_model_family(const dc_model *m) { return m ? m->family : ""; }

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

dc_status dc_forward(dc_ctx *c, const char *component, const dc_tensor *inputs, int n_inputs,
                     dc_tensor *out, dc_error *err)
{
    dc__ok(err);
    if (!c || !component || !out || (n_inputs && !inputs))
        return dc__fail(err, DC_ERR_INVALID, "dc_forward: NULL argument");
    if (!strcmp(component, "dit")) {
        if (!c->model->dit)
            return dc__fail(err, DC_ERR_INVALID, "this model (family %s) has no DiT", c->model->family);
        return forward_dit(c, inputs, n_inputs, out, err);
    }
    return dc__fail(err, DC_ERR_INVALID, "unknown component '%s' (known: dit)", component);
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
