/* nn/ops.c - the small layers: activations, GEGLU, softmax, residual add,
   nearest upsampling, channel concat and the sinusoidal timestep embedding.
   Each is a thin parallel loop over the SIMD kernels of nn/kernels.c. */
#include "nn.h"

#include <math.h>
#include <string.h>

/* Parallel chunks of this many floats: big enough to amortise a thread
   hand-off, small enough to split a 64x64x320 activation 80 ways. */
#define CHUNK 16384

void dc__act_forward(float *y, const float *x, size_t n, int act)
{
    const dc__kernels *k = dc__kern();
    void (*f)(float *, const float *, size_t) =
        act == DC_ACT_SILU ? k->silu : act == DC_ACT_GELU ? k->gelu_erf
        : act == DC_ACT_GELU_TANH ? k->gelu_tanh : k->quick_gelu;
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for if (chunks > 1)
    for (long c = 0; c < chunks; c++) {
        size_t i = (size_t)c * CHUNK, m = n - i < CHUNK ? n - i : CHUNK;
        f(y + i, x + i, m);
    }
}

void dc__geglu_forward(float *y, const float *x, int rows, int d)
{
    const dc__kernels *k = dc__kern();
#pragma omp parallel for if ((size_t)rows * d > 65536)
    for (int r = 0; r < rows; r++) {
        const float *a = x + (size_t)r * 2 * d, *gate = a + d;
        float *yr = y + (size_t)r * d;
        k->gelu_erf(yr, gate, (size_t)d);
        for (int i = 0; i < d; i++) yr[i] *= a[i];
    }
}

void dc__softmax_forward(float *x, int rows, int n)
{
    const dc__kernels *k = dc__kern();
#pragma omp parallel for if ((size_t)rows * n > 65536)
    for (int r = 0; r < rows; r++) k->softmax(x + (size_t)r * n, (size_t)n);
}

void dc__add_forward(float *y, const float *a, const float *b, size_t n)
{
    const dc__kernels *k = dc__kern();
    long chunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for if (chunks > 1)
    for (long c = 0; c < chunks; c++) {
        size_t i = (size_t)c * CHUNK, m = n - i < CHUNK ? n - i : CHUNK;
        k->add(y + i, a + i, b + i, m);
    }
}

void dc__upsample2x_forward(float *y, const float *x, int n, int c, int h, int w)
{
#pragma omp parallel for if ((size_t)n * c * h * w > 65536)
    for (int p = 0; p < n * c; p++) {
        const float *xp = x + (size_t)p * h * w;
        float *yp = y + (size_t)p * 4 * h * w;
        for (int i = 0; i < h; i++) {
            float *row = yp + (size_t)2 * i * 2 * w;
            for (int j = 0; j < w; j++) row[2 * j] = row[2 * j + 1] = xp[i * w + j];
            memcpy(row + 2 * w, row, sizeof(float) * 2 * (size_t)w);
        }
    }
}

void dc__concat_forward(float *y, const float *a, const float *b, int n, int ca, int cb, int hw)
{
    for (int i = 0; i < n; i++) {
        memcpy(y + (size_t)i * (ca + cb) * hw, a + (size_t)i * ca * hw, sizeof(float) * ca * (size_t)hw);
        memcpy(y + ((size_t)i * (ca + cb) + ca) * hw, b + (size_t)i * cb * hw,
               sizeof(float) * cb * (size_t)hw);
    }
}

void dc__timestep_embedding(float *y, const float *t, int n, int dim, int flip_sin_to_cos,
                            float shift, float max_period)
{
    int half = dim / 2;
    for (int i = 0; i < n; i++) {
        float *yr = y + (size_t)i * dim;
        for (int j = 0; j < half; j++) {
            /* computed as the references do, in f32: freq then angle */
            float freq = expf(-logf(max_period) * (float)j / ((float)half - shift));
            float ang = t[i] * freq;
            yr[flip_sin_to_cos ? half + j : j] = sinf(ang);
            yr[flip_sin_to_cos ? j : half + j] = cosf(ang);
        }
        if (dim % 2) yr[dim - 1] = 0.0f;
    }
}
