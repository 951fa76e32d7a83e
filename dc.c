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
};

dc_status dc_model_load(dc_model **out, const char *path, const dc_load_opts *opts, dc_error *err)
{
    dc__ok(err);
    if (!out || !path) return dc__fail(err, DC_ERR_INVALID, "dc_model_load: NULL argument");
    *out = NULL;
    dc_model *m = calloc(1, sizeof *m);
    if (!m) return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
    dc_status st = dc__weights_open(&m->w, path, !(opts && opts->skip_checksum), err);
    if (st == DC_OK) st = dc__meta_str(&m->w, "dc.family", m->family, sizeof m->family, err);
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
