/* nn/kernels.c - elementwise kernels: the scalar reference twins, f16
   conversion, weight-row decoding, and the choice of SIMD table.

   The scalar functions here are the definition of each kernel; the vector
   copies (nn/kernels_vec.h) must agree with them, and the tests check that
   they do on every instruction set this CPU has. */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void dc__add_ref(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

void dc__silu_ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void dc__quick_gelu_ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}

void dc__gelu_erf_ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void dc__gelu_tanh_ref(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
}

void dc__softmax_ref(float *x, size_t n)
{
    if (n == 0) return;
    float mx = x[0];
    for (size_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

double dc__sum_ref(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

double dc__sumsq_dev_ref(const float *x, size_t n, float mean)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - mean;
        s += d * d;
    }
    return s;
}

void dc__scale_shift_ref(float *y, const float *x, size_t n, float a, float b)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] * a + b;
}

void dc__norm_affine_ref(float *y, const float *x, size_t n, float mean, float rstd,
                         const float *g, const float *b)
{
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - mean) * rstd;
        y[i] = v * (g ? g[i] : 1.0f) + (b ? b[i] : 0.0f);
    }
}

/* IEEE binary16 -> binary32, exact (normals, subnormals, inf, nan). */
float dc__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000 | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* binary32 -> binary16, round to nearest even, overflow to inf. */
uint16_t dc__f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) /* inf or nan */
        return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);
    if (ax >= 0x477ff000) return sign | 0x7c00; /* rounds past 65504 */
    if (ax < 0x38800000) { /* result is subnormal or zero */
        if (ax < 0x33000000) return sign; /* below half the smallest subnormal */
        uint32_t man = (ax & 0x7fffff) | 0x800000;
        int shift = 126 - (int)(ax >> 23); /* 14..24 */
        uint32_t r = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = ax - 0x38000000; /* rebias exponent 127 -> 15 */
    uint32_t rem = r & 0x1fff;
    r >>= 13;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t)r;
}

void dc__f16_to_f32_ref(float *y, const uint16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = dc__f16_to_f32(x[i]);
}

void dc__q8_to_f32_ref(float *y, const int8_t *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) y[i] = scale * (float)x[i];
}

static const dc__kernels dc__table_scalar = {
    dc__add_ref, dc__silu_ref, dc__gelu_erf_ref, dc__gelu_tanh_ref, dc__quick_gelu_ref,
    dc__softmax_ref, dc__sum_ref, dc__sumsq_dev_ref, dc__scale_shift_ref,
    dc__norm_affine_ref, dc__f16_to_f32_ref, dc__q8_to_f32_ref, "scalar"
};

const dc__kernels *dc__kernels_scalar(void) { return &dc__table_scalar; }

/* Best table for this CPU. DC_KERNELS=scalar|avx2|avx512|neon in the
   environment forces one (for debugging and timing); an unavailable choice
   falls back to the automatic one. No caching: the checks are cheap and
   there is no global state to guard. */
const dc__kernels *dc__kern(void)
{
    const char *force = getenv("DC_KERNELS");
    const dc__kernels *k = NULL;
    if (force) {
        if (!strcmp(force, "scalar")) return &dc__table_scalar;
        if (!strcmp(force, "avx2")) k = dc__kernels_avx2();
        if (!strcmp(force, "avx512")) k = dc__kernels_avx512();
        if (!strcmp(force, "neon")) k = dc__kernels_neon();
        if (k && !strcmp(force, "avx2") && strcmp(dc__cpu_level(), "avx2") &&
            strcmp(dc__cpu_level(), "avx512")) k = NULL;
        if (k && !strcmp(force, "avx512") && strcmp(dc__cpu_level(), "avx512")) k = NULL;
        if (k) return k;
    }
    const char *level = dc__cpu_level();
    if (!strcmp(level, "avx512") && dc__kernels_avx512()) return dc__kernels_avx512();
    if ((!strcmp(level, "avx512") || !strcmp(level, "avx2")) && dc__kernels_avx2())
        return dc__kernels_avx2();
    if (!strcmp(level, "neon") && dc__kernels_neon()) return dc__kernels_neon();
    return &dc__table_scalar;
}

void dc__decode_rows(float *out, const dc__tensor *t, int64_t r0, int64_t r1)
{
    const dc__kernels *k = dc__kern();
    int64_t rows = t->shape[0], cols = t->numel / rows;
    if (t->dtype == DC_F32) {
        memcpy(out, (const float *)t->data + r0 * cols, (size_t)((r1 - r0) * cols) * 4);
    } else if (t->dtype == DC_F16) {
        k->f16_to_f32(out, (const uint16_t *)t->data + r0 * cols, (size_t)((r1 - r0) * cols));
    } else { /* q8: rows*cols int8, pad to 4, rows f32 scales (format doc) */
        const int8_t *q = (const int8_t *)t->data;
        const float *scales = (const float *)((const uint8_t *)t->data +
                                              (((size_t)(rows * cols) + 3) & ~(size_t)3));
        for (int64_t r = r0; r < r1; r++)
            k->q8_to_f32(out + (r - r0) * cols, q + r * cols, (size_t)cols, scales[r]);
    }
}
