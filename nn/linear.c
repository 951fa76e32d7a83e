/* nn/linear.c - fully connected layers on OpenBLAS sgemm, and the f32 view
   of f16/q8 weights that every sgemm-based layer uses. */
#include "nn.h"

#include <cblas.h>
#include <string.h>

const float *dc__weight_f32(const dc__tensor *t, dc__scratch *s)
{
    if (t->dtype == DC_F32) return (const float *)t->data;
    DC_ASSERT(s && s->buf && (size_t)t->numel <= s->cap);
    dc__decode_rows(s->buf, t, 0, t->shape[0]);
    return s->buf;
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
