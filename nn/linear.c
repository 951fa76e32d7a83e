/* nn/linear.c - where every network meets its weights: the one loader
   that finds a network's tensors at build, and the one linear layer that
   multiplies by them at forward (nn/conv.c's dc__conv2d is the other
   seam, and reads its weight through dc__matrix_of too).

   How a weight is multiplied by is decided here and nowhere else: today
   dc__matrix_of gives f32 rows (the file's own, or f16/q8 decoded into the
   runner's scratch) and dc__matmul / dc__matmul_cols run OpenBLAS sgemm on
   them. A compute type (bf16, int8) is a change to dc__matrix, these
   functions and the loader (where a weight would be packed once at load);
   the networks do not change, and nn/conv.c hands its im2col tiles to
   dc__matmul_cols as it does now. */
#include "nn.h"

#include <cblas.h>
#include <stdarg.h>
#include <string.h>

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
    return W->dtype == DC_F32 ? 0 : (size_t)W->numel;
}

dc__matrix dc__matrix_of(dc__runner *r, const dc__tensor *W, size_t at)
{
    dc__matrix m;
    m.out = (int)W->shape[0];
    m.in = (int)(W->numel / W->shape[0]);
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

void dc__matmul(float *y, const float *x, const dc__matrix *W, const float *b, int rows)
{
    dc__linear_forward(y, x, W->f32, b, rows, W->in, W->out);
}

void dc__matmul_cols(float *y, int ldy, const dc__matrix *W, const float *x, int ldx, int cols)
{
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
