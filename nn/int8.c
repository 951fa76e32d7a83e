/* nn/int8.c - int8 compute at load: which matrices are packed for nn/q8.h's
   product, packing them, and what that holds in memory.

   dc_model_load starts int8 compute on the mapping (dc__int8_begin) before
   the networks are built; from then on nn/linear.c's loader hands every
   matrix it finds (linear and conv weights, DC_USE_MATRIX) to
   dc__int8_pack_tensor, which decodes it to f32 (whatever its dtype),
   quantises it per output row and packs it, once. The tensor then points at
   its packed form (dc__tensor.q8) and nn/linear.c multiplies by that. The
   packed bytes replace the weight's pages of the mapping, which are given
   back to the kernel: with int8 compute a model holds about one byte per
   weight, like a q8 file does with f32 compute. */
#define _DEFAULT_SOURCE /* madvise */
#include "nn.h"
#include "q8.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#endif

struct dc__int8_state {
    const dc__q8variant *v;
    int min_side;           /* smaller matrices stay f32 (keeps_f32) */
    dc__q8mat *packed;      /* [n_tensors]: packed[i].w != NULL where tensor i is packed */
    int n_packed, n_kept;   /* matrices packed, matrices the rule keeps f32 */
    size_t bytes;           /* packed weights, scales and offsets */
    size_t tile_bytes;      /* max scratch of one call over DC_Q8_TILE columns */
    size_t chunk_bytes;     /* max scratch of one call over DC_Q8_CHUNK columns */
};

dc_status dc__int8_begin(dc__weights *w, const struct dc__q8variant *v, int min_side, dc_error *err)
{
    DC_ASSERT(v && !w->int8);
    struct dc__int8_state *s = calloc(1, sizeof *s);
    if (!s || !(s->packed = calloc(w->n_tensors ? (size_t)w->n_tensors : 1, sizeof *s->packed))) {
        free(s);
        return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", w->path);
    }
    s->v = v;
    s->min_side = min_side;
    w->int8 = s;
    return DC_OK;
}

void dc__int8_end(dc__weights *w)
{
    if (!w || !w->int8) return;
    for (int i = 0; i < w->n_tensors; i++) {
        dc__q8mat_free(&w->int8->packed[i]);
        w->tensors[i].q8 = NULL;
    }
    free(w->int8->packed);
    free(w->int8);
    w->int8 = NULL;
}

/* Which matrices stay f32 under int8 compute: those with fewer than
   DC_INT8_MIN_SIDE (nn/nn.h) rows or inputs, the networks' ends (a DiT's patch
   embedding and final projection, a UNet's conv_in and conv_out, the VAE's
   conv_out and quant_conv). bench/int8_layers on the shipped DiT (each of
   its 55 matrices alone in int8, 5 images, 8 timesteps) measured no layer
   that changed a decision; the largest changes of the error differences
   between classes were these ends (x_embedder 0.30%, quant_conv 0.23%,
   final_layer 0.22%, VAE conv_out 0.17%, against a median of 0.07%). They
   hold a negligible share of the work (a 16-input projection beside 1152-
   wide blocks), so f32 there costs no speed and removes the largest
   per-layer errors. */
static int keeps_f32(const struct dc__int8_state *s, int M, int K)
{
    return M < s->min_side || K < s->min_side;
}

/* Gives the pages that lie wholly inside t's bytes back to the kernel: they
   are not read again once t is packed. They are also made inaccessible:
   otherwise a fault on a neighbouring small tensor (a bias) maps the page
   cache around it back in, whole large folios at a time on recent kernels,
   and a DiT-XL/2 forward had 176 MB of released weights resident again. */
static void release_pages(const dc__tensor *t)
{
#if (defined(__unix__) || defined(__APPLE__)) && defined(MADV_DONTNEED)
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) return;
    uintptr_t a = (uintptr_t)t->data, e = a + (uintptr_t)t->nbytes;
    a = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    e &= ~((uintptr_t)page - 1);
    if (e > a) {
        madvise((void *)a, e - a, MADV_DONTNEED);
        mprotect((void *)a, e - a, PROT_NONE);
    }
#else
    (void)t;
#endif
}

/* Row m of a weight as f32: in place for f32, else decoded into buf. A row
   at a time, not the whole matrix: freed f32 copies of the big matrices
   stay in the heap as holes (they raised the peak at load of DiT-XL/2's q8
   file from 688 to 795 MB). */
static const float *tensor_row(void *ctx, int m, float *buf)
{
    const dc__tensor *t = ctx;
    if (t->dtype == DC_F32) return (const float *)t->data + (size_t)m * (size_t)(t->numel / t->shape[0]);
    dc__decode_rows(buf, t, m, m + 1);
    return buf;
}

dc_status dc__int8_pack_tensor(const dc__weights *w, const dc__tensor *t, const char *name,
                               dc_error *err)
{
    struct dc__int8_state *s = w->int8;
    if (!s || t->q8) return DC_OK; /* f32 compute, or found before (a shared weight) */
    int M = (int)t->shape[0];
    int64_t K64 = t->numel / t->shape[0];
    if (K64 > DC_Q8_MAX_K)
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: tensor '%s' has %lld inputs per row; int8 "
                        "compute takes at most %d (use --compute f32)", w->path, name,
                        (long long)K64, DC_Q8_MAX_K);
    int K = (int)K64;
    size_t i = (size_t)(t - w->tensors);
    if (keeps_f32(s, M, K)) {
        s->n_kept++;
        return DC_OK;
    }
    dc__q8mat *q = &s->packed[i];
    dc_error e2;
    dc_status st = dc__q8mat_pack_rows(q, M, K, s->v, tensor_row, (void *)t, &e2);
    if (st != DC_OK) return dc__fail(err, st, "%s: packing '%s' for int8: %s", w->path, name, e2.msg);
    w->tensors[i].q8 = q;
    s->n_packed++;
    s->bytes += (size_t)q->panels * q->kg * q->v->mr * 4 + sizeof(float) * (size_t)M +
                sizeof(int32_t) * (size_t)q->panels * q->v->mr;
    /* per-thread slices of the tile size stay 64-byte aligned */
    size_t tb = (dc__q8_scratch_bytes(q, DC_Q8_TILE) + 63) & ~(size_t)63;
    size_t cb = dc__q8_scratch_bytes(q, DC_Q8_CHUNK);
    if (tb > s->tile_bytes) s->tile_bytes = tb;
    if (cb > s->chunk_bytes) s->chunk_bytes = cb;
    release_pages(t);
    return DC_OK;
}

void dc__int8_scratch(const dc__weights *w, size_t *tile_bytes, size_t *chunk_bytes)
{
    *tile_bytes = w->int8 ? w->int8->tile_bytes : 0;
    *chunk_bytes = w->int8 ? w->int8->chunk_bytes : 0;
}

const struct dc__q8variant *dc__int8_variant(const dc__weights *w)
{
    return w->int8 ? w->int8->v : NULL;
}

void dc__int8_count(const dc__weights *w, int *packed, int *kept_f32, size_t *bytes)
{
    *packed = w->int8 ? w->int8->n_packed : 0;
    *kept_f32 = w->int8 ? w->int8->n_kept : 0;
    *bytes = w->int8 ? w->int8->bytes : 0;
}

void dc__runner_use_int8(dc__runner *r, const dc__weights *w)
{
    dc__int8_scratch(w, &r->q8_tile_bytes, &r->q8_chunk_bytes);
}

int dc__int8_is_dot(const struct dc__q8variant *v)
{
    /* the variants named for their dot-product units (nn/q8.h) */
    return v && (strstr(v->name, "vnni") || strstr(v->name, "dot") || strstr(v->name, "i8mm"));
}

void dc__int8_describe(dc_blas_info *info)
{
    const dc__q8variant *v = dc__q8_best(info->int8_check, sizeof info->int8_check);
    snprintf(info->int8, sizeof info->int8, "%s", v ? dc__q8_name(v) : "none");
    info->int8_dot = dc__int8_is_dot(v);
    if (!info->int8_check[0]) snprintf(info->int8_check, sizeof info->int8_check, "%s",
                                       v ? "equal to the scalar twin" : "no variant passed");
}

/* ---- dc_compute_rates: a quick look at both products' speed ---- */

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

enum { RATE_N = 1024 }; /* weight RATE_N x RATE_N, RATE_N columns */

void dc_compute_rates(double *f32_macs, double *int8_macs)
{
    *f32_macs = *int8_macs = 0;
    size_t n2 = (size_t)RATE_N * RATE_N;
    float *W = malloc(n2 * sizeof *W), *X = malloc(n2 * sizeof *X), *Y = malloc(n2 * sizeof *Y);
    if (!W || !X || !Y) goto done;
    uint32_t h = 12345; /* a fixed pseudo-random problem */
    for (size_t i = 0; i < n2; i++) {
        h = h * 1664525u + 1013904223u;
        W[i] = (float)(h >> 8) / (1u << 24) - 0.5f;
        X[i] = (float)((h * 2654435761u) >> 8) / (1u << 24) - 0.5f;
    }
    double macs = (double)n2 * RATE_N;
    /* best of a few runs, each a few ms: short and fair to both */
    for (int rep = 0; rep < 4; rep++) {
        double t0 = seconds_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, RATE_N, RATE_N, RATE_N, 1.0f, W, RATE_N,
                    X, RATE_N, 0.0f, Y, RATE_N);
        double dt = seconds_now() - t0;
        if (dt > 0 && macs / dt > *f32_macs) *f32_macs = macs / dt;
    }
    char why[256];
    const dc__q8variant *v = dc__q8_best(why, sizeof why);
    dc__q8mat q;
    dc_error err;
    memset(&q, 0, sizeof q);
    if (!v || dc__q8mat_pack(&q, W, RATE_N, RATE_N, v, &err) != DC_OK) goto done;
    void *scratch = dc__aligned_alloc(dc__q8_scratch_bytes(&q, RATE_N));
    if (scratch) {
        for (int rep = 0; rep < 4; rep++) {
            double t0 = seconds_now();
            dc__q8_matmul_cols(Y, RATE_N, &q, X, RATE_N, RATE_N, scratch);
            double dt = seconds_now() - t0;
            if (dt > 0 && macs / dt > *int8_macs) *int8_macs = macs / dt;
        }
        dc__aligned_free(scratch);
    }
    dc__q8mat_free(&q);
done:
    free(W);
    free(X);
    free(Y);
}
