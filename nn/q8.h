/* nn/q8.h - the int8 matrix product: exact int32 accumulation, one variant
   per instruction set (nn/q8.c holds what they share and the scalar twin).

   A weight W [M][K] is quantized per output row m, symmetric:
   scale_w[m] = max_k |W[m,k]| / 127, q = round(W * (127 / max)) in
   [-127, 127], rounding half away from zero (never -128; an all-zero row has
   scale 0 and q = 0; a non-finite value gives scale NaN and q = 0). Activations are
   quantized the same way on the fly, per column of the product: per token
   for a linear layer, per im2col column (pixel) for a convolution. The
   integer product sum_k qw[m,k] * qx[k,n] is exact in int32 (bounds in each
   variant's file) and so equal, bit for bit, in every variant; one float
   epilogue (nn/q8.c) turns it into acc * scale_w[m] * scale_x[n] (+ bias).

   BLIS manner: weights are packed once, at load, into panels of the
   variant's MR rows ([k/4][MR][4] bytes: four consecutive k of one row are
   one 32-bit group, what vpdpbusd, vpmaddubsw+vpmaddwd and sdot reduce);
   activations are quantized and packed per call into panels of NR columns
   ([k/4][NR][4]); padding (M, N to the tile, K to 4) is zeros, so a
   microkernel has no tails: it always computes a full MR x NR tile. */
#ifndef DC_Q8_H
#define DC_Q8_H

#include <stddef.h>
#include <stdint.h>
#include "../dc.h"

/* The largest K any variant accepts: with activations shifted to u8
   (x + 128, for vpdpbusd) a partial sum reaches 255 * 127 * K, which must
   stay below 2^31; SD 1.5's largest K is 2560 * 9 = 23040. */
#define DC_Q8_MAX_K 65536
/* the widest register tile a variant may have (columns) */
#define DC_Q8_NR_MAX 64

/* A microkernel: the int32 tile c[r * ldc + j] (r < MR, j < NR) gets
   sum over kg groups of 4 of w[g][r][0..3] . x[g][j][0..3]; stored when
   accumulate is 0, added to c otherwise. x is u8 (x + 128) when the variant
   sets x_offset, else s8 (then read through the same pointer). */
typedef void (*dc__q8_kernel)(int32_t *c, int ldc, const int8_t *w, const uint8_t *x, int kg,
                              int accumulate);

/* Quantizes and packs one panel of activations from rows: column j < cnt
   of the panel is src[k * ks + j] (k < K); sx[j] gets its scale. Writes
   every byte of the panel (kg * nr * 4): columns past cnt and k past K as
   0 (128 with x_offset). Must give exactly what nn/q8.c's scalar packer
   gives (the self-check and tests compare the float results bit for bit). */
typedef void (*dc__q8_packer)(uint8_t *panel, int nr, int cnt, const float *src, size_t ks, int K,
                              int x_offset, float *sx);

typedef struct dc__q8variant {
    const char *name;     /* "scalar", "avx2", "avxvnni", "avx512vnni", "neon", "neondot" */
    const char *units;    /* the instructions it multiplies with */
    int mr, nr;           /* register tile: rows of W, columns of X */
    int x_offset;         /* 1: activations packed as u8 x + 128 (u8 x s8 units) */
    dc__q8_kernel kernel;
    int (*runs_here)(void); /* this CPU (and OS) has the units */
    dc__q8_packer pack;   /* the conv seam's packer; NULL: the shared scalar one */
} dc__q8variant;

/* A weight W [M][K] packed for one variant. */
typedef struct dc__q8mat {
    const dc__q8variant *v;
    int M, K;
    int kg;               /* groups of 4 along K: ceil(K / 4) */
    int panels;           /* ceil(M / MR) */
    int8_t *w;            /* panels * kg * MR * 4 bytes, panel p at p * kg * MR * 4 */
    float *scale;         /* [M] scale_w */
    int32_t *offset;      /* [panels * MR]: 128 * sum_k qw[m,k] when x_offset, else 0 */
} dc__q8mat;

/* Quantizes a row of n floats: q[i] = round(x[i] / scale) in [-127, 127],
   returns scale = max|x| / 127 (0 when all are 0, then q = 0). */
float dc__q8_quantize_row(int8_t *q, const float *x, int n);

/* At load: quantizes W per row and packs it for v (allocates). Errors:
   M or K < 1, K > DC_Q8_MAX_K, a non-finite weight, out of memory. */
dc_status dc__q8mat_pack(dc__q8mat *q, const float *W, int M, int K, const dc__q8variant *v,
                         dc_error *err);
/* The same, each row of W given by row_of (ctx, the row, a buffer of K floats
   it may fill): a weight stored in f16 or q8 is decoded a row at a time, so
   packing never holds the whole matrix in f32. */
dc_status dc__q8mat_pack_rows(dc__q8mat *q, int M, int K, const dc__q8variant *v,
                              const float *(*row_of)(void *ctx, int m, float *buf), void *ctx,
                              dc_error *err);
/* The same from weights already quantized (qw [M][K] in [-127, 127], scale [M]). */
dc_status dc__q8mat_pack_q8(dc__q8mat *q, const int8_t *qw, const float *scale, int M, int K,
                            const dc__q8variant *v, dc_error *err);
void dc__q8mat_free(dc__q8mat *q);

/* Scratch bytes one call of the products below needs for N columns
   (whatever the thread count: threads share the packed activations). */
size_t dc__q8_scratch_bytes(const dc__q8mat *q, int N);

/* The conv seam (like dc__matmul_cols): y[m*ldy + n] = sum_k W[m,k] * X[k*ldx + n],
   n < N, no bias.
   The linear seam (like dc__matmul): y[n*M + m] = sum_k x[n*K + k] * W[m,k] + b[m]
   (b may be NULL).
   Both may be called inside an OpenMP parallel region (they then run on the
   calling thread: no allocation, no nested parallelism); outside one they
   share the rows of W (the M panels) among the threads, the activations
   being quantized and packed once into the shared scratch. scratch holds
   dc__q8_scratch_bytes(W, N) bytes, 64-byte aligned. */
void dc__q8_matmul_cols(float *y, int ldy, const dc__q8mat *W, const float *X, int ldx, int N,
                        void *scratch);
void dc__q8_matmul_rows(float *y, const float *x, const dc__q8mat *W, const float *b, int N,
                        void *scratch);

/* The exact integer product, for tests and benches: c[m*N + n] = sum_k
   a[m*K + k] * bt[n*K + k] with a, bt in [-127, 127] (bt is B transposed:
   one row per column of the product), through v's packing and microkernel.
   Allocates; returns DC_OK or an error (sizes, memory). */
dc_status dc__q8_int_product(int32_t *c, const int8_t *a, const int8_t *bt, int M, int N, int K,
                             const dc__q8variant *v, dc_error *err);

/* The float epilogue every variant shares: y = acc * scale_w * scale_x (+ b). */
static inline float dc__q8_dequant(int32_t acc, float scale_w, float scale_x, float b)
{
    return (float)acc * scale_w * scale_x + b;
}

/* The variants. A getter returns NULL where its file is not compiled
   (another architecture, PORTABLE); runs_here says whether this CPU can. */
const dc__q8variant *dc__q8_scalar(void);
const dc__q8variant *dc__q8_avx2(void);
const dc__q8variant *dc__q8_avxvnni(void);
const dc__q8variant *dc__q8_avx512vnni(void);
const dc__q8variant *dc__q8_neon(void);
const dc__q8variant *dc__q8_neondot(void);
const char *dc__q8_name(const dc__q8variant *v);
/* The 16-column packer of nn/q8_avx2.c (AVX2), shared with the AVX-VNNI variant. */
void dc__q8_pack16_avx2(uint8_t *panel, int nr, int cnt, const float *src, size_t ks, int K,
                        int x_offset, float *sx);

/* Every compiled variant, fastest first, then NULL. */
void dc__q8_candidates(const dc__q8variant **list, int cap);
/* Runs v on a small fixed problem with tails against the scalar twin:
   1 when every int32 accumulator is equal. why (may be NULL) says what differed. */
int dc__q8_self_check(const dc__q8variant *v, char *why, size_t why_cap);
/* The fastest SIMD variant this CPU runs that passes its self-check; why
   lists what was skipped and why. NULL when none does (why says so): the
   scalar twin is the tests' reference, too slow to use instead of f32. Computed
   per call (cheap: a few thousand multiply-adds per candidate): the caller
   keeps the result. */
const dc__q8variant *dc__q8_best(char *why, size_t why_cap);

#endif
