/* nn/linear.c - where every network meets its weights: the one loader
   that finds a network's tensors at build, and the one linear layer that
   multiplies by them at forward (nn/conv.c's dc__conv2d is the other
   seam, and reads its weight through dc__matrix_of too).

   How a weight is multiplied by is decided here and nowhere else. With f32
   compute dc__matrix_of gives f32 rows (the file's own, or f16/q8 decoded
   into the runner's scratch) and dc__matmul / dc__matmul_cols run OpenBLAS
   sgemm on them. With int8 compute the loader packs each matrix once
   (nn/int8.c), dc__matrix_of hands out the packed form with the runner's
   activation scratch, and the same two functions run nn/q8.h's exact
   integer product instead; the networks do not change, and nn/conv.c hands
   its im2col tiles to dc__matmul_cols either way. */
#include "nn.h"
#include "q8.h"

#include <cblas.h>
#include <stdarg.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- build: finding tensors ---- */

static dc_status load_named(dc__loader *L, const dc__tensor **t, int use, int ndim,
                            const int64_t *shape, const char *base, const char *suffix)
{
    char name[320];
    const char *prefix = L->prefix ? L->prefix : "";
    if ((size_t)snprintf(name, sizeof name, "%s%s%s", prefix, base, suffix) >= sizeof name)
        return dc__fail(L->err, DC_ERR_INVALID, "%s: tensor name '%s%s%s' is too long", L->w->path,
                        prefix, base, suffix);
    dc_status st = dc__tensor_get(L->w, name, ndim, shape, t, L->err);
    if (st != DC_OK) return st;
    if (use == DC_USE_F32 && (*t)->dtype != DC_F32)
        return dc__fail(L->err, DC_ERR_FORMAT, "%s: tensor '%s' must be f32 (norms, biases and "
                        "fixed tables are read in place, never quantised)", L->w->path, name);
    if (use == DC_USE_MATRIX && (st = dc__int8_pack_tensor(L->w, *t, name, L->err)) != DC_OK)
        return st;
    if (use == DC_USE_MATRIX && dc__decode_floats(*t) > L->decode_floats)
        L->decode_floats = dc__decode_floats(*t);
    return DC_OK;
}

/* The tensor that fmt (with ap) and suffix name; with b, also the same
   module's ".bias" (f32, [shape[0]]). */
static dc_status load_formatted(dc__loader *L, const dc__tensor **t, int use, int ndim, const int64_t *shape,
                                const char *suffix, const dc__tensor **b, const char *fmt, va_list ap)
{
    char base[256];
    int len = vsnprintf(base, sizeof base, fmt, ap);
    if (len < 0 || (size_t)len >= sizeof base)
        return dc__fail(L->err, DC_ERR_INVALID, "%s: tensor name '%.64s...' is too long", L->w->path, fmt);
    dc_status st = load_named(L, t, use, ndim, shape, base, suffix);
    if (st == DC_OK && b) st = load_named(L, b, DC_USE_F32, 1, shape, base, ".bias");
    return st;
}

dc_status dc__load(dc__loader *L, const dc__tensor **t, int use, int ndim, int64_t d0, int64_t d1,
                   int64_t d2, int64_t d3, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_status st = load_formatted(L, t, use, ndim, (int64_t[4]){d0, d1, d2, d3}, "", NULL, fmt, ap);
    va_end(ap);
    return st;
}

dc_status dc__load_linear(dc__loader *L, const dc__tensor **w, const dc__tensor **b, int64_t out,
                          int64_t in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_status st = load_formatted(L, w, DC_USE_MATRIX, 2, (int64_t[4]){out, in, 0, 0}, ".weight", b, fmt, ap);
    va_end(ap);
    return st;
}

dc_status dc__load_conv(dc__loader *L, const dc__tensor **w, const dc__tensor **b, int64_t out,
                        int64_t in, int k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_status st = load_formatted(L, w, DC_USE_MATRIX, 4, (int64_t[4]){out, in, k, k}, ".weight", b, fmt, ap);
    va_end(ap);
    return st;
}

dc_status dc__load_norm(dc__loader *L, const dc__tensor **g, const dc__tensor **b, int64_t c,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dc_status st = load_formatted(L, g, DC_USE_F32, 1, (int64_t[4]){c, 0, 0, 0}, ".weight", b, fmt, ap);
    va_end(ap);
    return st;
}

/* ---- forward: multiplying ---- */

size_t dc__decode_floats(const dc__tensor *W)
{
    return W->dtype == DC_F32 || W->q8 ? 0 : (size_t)W->numel;
}

dc__matrix dc__matrix_of(dc__runner *r, const dc__tensor *W, size_t at)
{
    dc__matrix m = {NULL, (int)W->shape[0], (int)(W->numel / W->shape[0]), NULL, NULL, 0, 0};
    if (W->q8) {
        /* the runner reserved this scratch (dc__runner_use_int8) */
        DC_ASSERT(r->q8buf && r->q8_tile_bytes && r->q8_chunk_bytes);
        m.q8 = W->q8;
        m.scratch = r->q8buf;
        m.stride = r->q8_tile_bytes;
        m.slices = r->q8cap / r->q8_tile_bytes;
        return m;
    }
    if (W->dtype == DC_F32) {
        m.f32 = (const float *)W->data;
        return m;
    }
    /* the loader sized the scratch (decode_floats) for every matrix it found */
    DC_ASSERT(r->wbuf && at <= r->wcap && (size_t)W->numel <= r->wcap - at);
    dc__decode_rows(r->wbuf + at, W, 0, W->shape[0]);
    m.f32 = r->wbuf + at;
    return m;
}

/* ---- int8 compute: the runner's scratch, by where the product runs ----
   Outside a parallel region the product shares W's rows among the threads
   and takes the columns DC_Q8_CHUNK at a time, quantised once into the
   whole scratch. Inside one it runs on the calling thread, DC_Q8_TILE
   columns at a time, in that thread's slice: a convolution's tiles (a team
   no larger than the thread count the runner reserved slices for), or a
   caller's own threads, each with its own runner (the driver's workers:
   then any slice is this thread's alone, and a thread number beyond the
   slices takes the first). */

static unsigned char *thread_slice(const dc__matrix *W)
{
#ifdef _OPENMP
    if (omp_in_parallel()) {
        size_t tid = (size_t)omp_get_thread_num();
        return W->scratch + (tid < W->slices ? tid : 0) * W->stride;
    }
#endif
    (void)W; /* without OpenMP there is no parallel region */
    return NULL;
}

static void int8_rows(float *y, const float *x, const dc__matrix *W, const float *b, int rows)
{
    unsigned char *slice = thread_slice(W);
    int step = slice ? DC_Q8_TILE : DC_Q8_CHUNK;
    for (int n0 = 0; n0 < rows; n0 += step) {
        int n = rows - n0 < step ? rows - n0 : step;
        dc__q8_matmul_rows(y + (size_t)n0 * W->out, x + (size_t)n0 * W->in, W->q8, b, n,
                           slice ? slice : W->scratch);
    }
}

static void int8_cols(float *y, int ldy, const dc__matrix *W, const float *x, int ldx, int cols)
{
    unsigned char *slice = thread_slice(W);
    int step = slice ? DC_Q8_TILE : DC_Q8_CHUNK;
    for (int n0 = 0; n0 < cols; n0 += step) {
        int n = cols - n0 < step ? cols - n0 : step;
        dc__q8_matmul_cols(y + n0, ldy, W->q8, x + n0, ldx, n, slice ? slice : W->scratch);
    }
}

void dc__matmul(float *y, const float *x, const dc__matrix *W, const float *b, int rows)
{
    if (W->q8) int8_rows(y, x, W, b, rows);
    else dc__linear_forward(y, x, W->f32, b, rows, W->in, W->out);
}

void dc__matmul_cols(float *y, int ldy, const dc__matrix *W, const float *x, int ldx, int cols)
{
    if (W->q8) {
        int8_cols(y, ldy, W, x, ldx, cols);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, W->out, cols, W->in, 1.0f, W->f32, W->in,
                x, ldx, 0.0f, y, ldy);
}

void dc__linear(dc__runner *r, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                int rows)
{
    dc__matrix m = dc__matrix_of(r, W, 0);
    dc__matmul(y, x, &m, b ? (const float *)b->data : NULL, rows);
}

void dc__linear_forward(float *y, const float *x, const float *W, const float *b, int n,
                        int in, int out)
{
    /* y[n, out] = x[n, in] W[out, in]^T: W is stored as PyTorch stores it */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, W, in, 0.0f,
                y, out);
    if (b) {
        const dc__kernels *k = dc__kern();
        for (int i = 0; i < n; i++) k->add(y + (size_t)i * out, y + (size_t)i * out, b, (size_t)out);
    }
}
