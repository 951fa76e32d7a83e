/* nn/q8.c - the int8 product's shared parts (nn/q8.h): quantization,
   packing, the blocked loop around a variant's microkernel, the float
   epilogue, the scalar twin, the self-check and the choice of variant.

   Loop order (BLIS): for each block of NC columns, the activations are
   quantized per column and packed once ([panel][k/4][NR][4]); then for
   each block of KC_GROUPS groups of 4 along K, for each NR panel, for each
   MR panel of W, the microkernel adds its tile into an int32 block C
   [M][NC]. The packed activation micro-panel (NR x 4*KC_GROUPS bytes) stays
   in L1 while every W panel streams past it; W's traffic per multiply-add
   is 1/NR bytes, the activations' 1/MR. Threads share the rows of W (M
   panels): each owns its rows of C, so the only shared writes are the
   packing, done before a barrier. */
#include "nn.h"
#include "q8.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* groups of 4 along K per block: NR x 256 bytes of activations in L1 */
#define KC_GROUPS 64
/* columns per block (rounded to NR): bounds the scratch */
#define NC_COLS 256

/* round half away from zero, clamped to [-127, 127]; v is finite */
static int q8_round(float v)
{
    int q = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
    return q > 127 ? 127 : q < -127 ? -127 : q;
}

/* max |x| over n values at stride s; *bad set when one is not finite.
   Taken on the bits: with the sign cleared, a float's bits order as its
   magnitude does, and inf and NaN are the largest (>= 0x7f800000). An
   integer max reduction is exact in any order, so it may run in vector
   lanes. */
static float absmax(const float *x, int n, size_t s, int *bad)
{
    uint32_t mx = 0;
#ifdef _OPENMP
#pragma omp simd reduction(max : mx)
#endif
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + (size_t)i * s, 4);
        u &= 0x7fffffffu;
        mx = u > mx ? u : mx;
    }
    *bad = mx >= 0x7f800000u;
    float m;
    memcpy(&m, &mx, 4);
    return m;
}

float dc__q8_quantize_row(int8_t *q, const float *x, int n)
{
    int bad;
    float m = absmax(x, n, 1, &bad);
    if (bad) {
        memset(q, 0, (size_t)n);
        return NAN;
    }
    if (m == 0.0f) {
        memset(q, 0, (size_t)n);
        return 0.0f;
    }
    float inv = 127.0f / m;
    for (int i = 0; i < n; i++) q[i] = (int8_t)q8_round(x[i] * inv);
    return m / 127.0f;
}

/* ---- weights ---- */

void dc__q8mat_free(dc__q8mat *q)
{
    if (!q) return;
    dc__aligned_free(q->w);
    free(q->scale);
    free(q->offset);
    memset(q, 0, sizeof *q);
}

static dc_status q8mat_alloc(dc__q8mat *q, int M, int K, const dc__q8variant *v, dc_error *err)
{
    memset(q, 0, sizeof *q);
    if (!v) return dc__fail(err, DC_ERR_INVALID, "int8 product: no variant given");
    DC_ASSERT(v->nr <= DC_Q8_NR_MAX && v->nr % 4 == 0);
    if (M < 1 || K < 1) return dc__fail(err, DC_ERR_INVALID, "int8 product: bad size %d x %d", M, K);
    if (K > DC_Q8_MAX_K)
        return dc__fail(err, DC_ERR_INVALID,
                        "int8 product: K = %d exceeds %d (int32 accumulators could overflow)", K,
                        DC_Q8_MAX_K);
    q->v = v;
    q->M = M;
    q->K = K;
    q->kg = (K + 3) / 4;
    q->panels = (M + v->mr - 1) / v->mr;
    size_t bytes;
    if (!dc__mul_size(&bytes, (size_t)q->panels * v->mr * 4, (size_t)q->kg))
        return dc__fail(err, DC_ERR_INVALID, "int8 product: %d x %d is too large", M, K);
    q->w = dc__aligned_alloc(bytes);
    q->scale = malloc((size_t)M * sizeof *q->scale);
    q->offset = calloc((size_t)q->panels * v->mr, sizeof *q->offset);
    if (!q->w || !q->scale || !q->offset) {
        dc__q8mat_free(q);
        return dc__fail(err, DC_ERR_NOMEM, "int8 product: out of memory packing %d x %d", M, K);
    }
    memset(q->w, 0, bytes);
    return DC_OK;
}

/* row m of qw into its panel: byte k of row r at [k/4][r][k%4] */
static void pack_w_row(dc__q8mat *q, int m, const int8_t *row)
{
    int mr = q->v->mr, r = m % mr;
    int8_t *p = q->w + (size_t)(m / mr) * q->kg * mr * 4;
    int32_t sum = 0;
    for (int k = 0; k < q->K; k++) {
        p[((size_t)(k / 4) * mr + r) * 4 + k % 4] = row[k];
        sum += row[k];
    }
    /* u8 activations are x + 128: the kernel's sum is true + 128 * sum_k qw */
    q->offset[m] = q->v->x_offset ? 128 * sum : 0;
}

dc_status dc__q8mat_pack_rows(dc__q8mat *q, int M, int K, const dc__q8variant *v,
                              const float *(*row_of)(void *ctx, int m, float *buf), void *ctx,
                              dc_error *err)
{
    dc_status st = q8mat_alloc(q, M, K, v, err);
    if (st) return st;
    int8_t *row = malloc((size_t)K);
    float *buf = malloc(sizeof(float) * (size_t)K);
    if (!row || !buf) {
        free(row);
        free(buf);
        dc__q8mat_free(q);
        return dc__fail(err, DC_ERR_NOMEM, "int8 product: out of memory");
    }
    for (int m = 0; m < M; m++) {
        float s = dc__q8_quantize_row(row, row_of(ctx, m, buf), K);
        if (s != s) {
            free(row);
            free(buf);
            dc__q8mat_free(q);
            return dc__fail(err, DC_ERR_FORMAT, "int8 product: row %d of the weight is not finite",
                            m);
        }
        q->scale[m] = s;
        pack_w_row(q, m, row);
    }
    free(row);
    free(buf);
    return DC_OK;
}

typedef struct {
    const float *W;
    int K;
} f32_rows;

static const float *f32_row(void *ctx, int m, float *buf)
{
    const f32_rows *r = ctx;
    (void)buf;
    return r->W + (size_t)m * r->K;
}

dc_status dc__q8mat_pack(dc__q8mat *q, const float *W, int M, int K, const dc__q8variant *v,
                         dc_error *err)
{
    f32_rows r = {W, K};
    return dc__q8mat_pack_rows(q, M, K, v, f32_row, &r, err);
}

dc_status dc__q8mat_pack_q8(dc__q8mat *q, const int8_t *qw, const float *scale, int M, int K,
                            const dc__q8variant *v, dc_error *err)
{
    dc_status st = q8mat_alloc(q, M, K, v, err);
    if (st) return st;
    for (int m = 0; m < M; m++) {
        const int8_t *row = qw + (size_t)m * K;
        for (int k = 0; k < K; k++)
            if (row[k] == -128) {
                dc__q8mat_free(q);
                return dc__fail(err, DC_ERR_FORMAT,
                                "int8 product: weight row %d holds -128 (symmetric int8 is "
                                "[-127, 127])", m);
            }
        q->scale[m] = scale ? scale[m] : 1.0f;
        pack_w_row(q, m, row);
    }
    return DC_OK;
}

/* ---- activations: quantized per column, packed [k/4][NR][4] per panel ---- */

typedef struct {
    uint8_t *x;      /* packed block: ceil(NC / NR) panels of kg * NR * 4 bytes */
    float *sx;       /* [NC] scale of each column */
    int32_t *c;      /* [panels * MR][NC] int32 */
    int nc;          /* columns per block, a multiple of NR */
} q8_scratch;

static int block_cols(const dc__q8mat *q, int N)
{
    int nr = q->v->nr;
    int nc = NC_COLS / nr * nr;
    if (nc < nr) nc = nr;
    int need = (N + nr - 1) / nr * nr;
    return need < nc ? need : nc;
}

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

size_t dc__q8_scratch_bytes(const dc__q8mat *q, int N)
{
    if (N < 1) N = 1;
    size_t nc = (size_t)block_cols(q, N);
    return round64(nc * q->kg * 4) + round64(nc * sizeof(float)) +
           round64((size_t)q->panels * q->v->mr * nc * sizeof(int32_t));
}

static q8_scratch scratch_of(const dc__q8mat *q, int N, void *mem)
{
    q8_scratch s;
    s.nc = block_cols(q, N);
    uint8_t *p = mem;
    s.x = p;
    p += round64((size_t)s.nc * q->kg * 4);
    s.sx = (float *)(void *)p;
    p += round64((size_t)s.nc * sizeof(float));
    s.c = (int32_t *)(void *)p;
    return s;
}

/* Column j of a panel from the contiguous src[0 .. K) (the rows seam: a
   column is a token); returns the column's scale. Quantized 256 values at
   a time into a stack buffer by a loop the compiler vectorises
   (elementwise: the same bits), then stored one 32-bit group per 4 k. */
static float pack_x_col(uint8_t *panel, int nr, int j, const float *src, int K, int offset)
{
    int bad;
    float m = absmax(src, K, 1, &bad);
    float inv = m > 0.0f && !bad ? 127.0f / m : 0.0f;
    int add = offset ? 128 : 0;
    uint8_t buf[256];
    for (int k0 = 0; k0 < K; k0 += 256) {
        int n = K - k0 < 256 ? K - k0 : 256;
        const float *x = src + k0;
        if (bad) {
            memset(buf, add, sizeof buf);
        } else {
#ifdef _OPENMP
#pragma omp simd
#endif
            for (int i = 0; i < n; i++) {
                float v = x[i] * inv;
                int q = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
                q = q > 127 ? 127 : q < -127 ? -127 : q;
                buf[i] = (uint8_t)(q + add);
            }
        }
        for (int i = n; i < 256; i++) buf[i] = (uint8_t)add; /* K padding */
        for (int i = 0; i < n; i += 4)
            memcpy(panel + ((size_t)((k0 + i) / 4) * nr + j) * 4, buf + i, 4);
    }
    return bad ? NAN : m / 127.0f;
}

/* The shared packer of the conv seam (dc__q8_packer): rows read
   contiguously, four of them at a time, one 32-bit group per column. */
static void pack_x_rows(uint8_t *panel, int nr, int cnt, const float *src, size_t ks, int K,
                        int offset, float *sx)
{
    float m[DC_Q8_NR_MAX], inv[DC_Q8_NR_MAX], z[DC_Q8_NR_MAX];
    for (int j = 0; j < cnt; j++) m[j] = z[j] = 0.0f;
    for (int k = 0; k < K; k++) {
        const float *row = src + (size_t)k * ks;
        for (int j = 0; j < cnt; j++) {
            float a = fabsf(row[j]);
            m[j] = a > m[j] ? a : m[j];
            z[j] += row[j] * 0.0f; /* NaN when a value is inf or NaN */
        }
    }
    for (int j = 0; j < cnt; j++) {
        int bad = !(z[j] == 0.0f);
        inv[j] = m[j] > 0.0f && !bad ? 127.0f / m[j] : 0.0f;
        sx[j] = bad ? NAN : m[j] / 127.0f;
    }
    uint32_t add = offset ? 128 : 0, pad = add * 0x01010101u;
    int kg = (K + 3) / 4;
    for (int g = 0; g < kg; g++) {
        uint8_t *dst = panel + (size_t)g * nr * 4;
        for (int j = 0; j < nr; j++) {
            uint32_t word = pad;
            if (j < cnt) {
                word = 0;
                for (int i = 0; i < 4; i++) {
                    int k = 4 * g + i;
                    /* a non-finite column quantizes to 0 (its scale is NaN) */
                    uint32_t b = k < K && z[j] == 0.0f
                                     ? (uint32_t)(q8_round(src[(size_t)k * ks + j] * inv[j]) + (int)add) & 0xff
                                     : add;
                    word |= b << (8 * i);
                }
            }
            /* little-endian or not, byte i of the group is k = 4g + i */
            uint8_t bytes[4] = {(uint8_t)word, (uint8_t)(word >> 8), (uint8_t)(word >> 16),
                                (uint8_t)(word >> 24)};
            memcpy(dst + j * 4, bytes, 4);
        }
    }
}

/* Packs columns n0 .. n0+nb of the activations; panels shared among threads. */
static void pack_block(const dc__q8mat *q, q8_scratch *s, const float *X, size_t col_stride,
                       size_t k_stride, int n0, int nb)
{
    int nr = q->v->nr, np = (nb + nr - 1) / nr;
    size_t pbytes = (size_t)q->kg * nr * 4;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int p = 0; p < np; p++) {
        uint8_t *panel = s->x + p * pbytes;
        int cnt = nb - p * nr < nr ? nb - p * nr : nr;
        if (col_stride == 1) {
            dc__q8_packer pack = q->v->pack ? q->v->pack : pack_x_rows;
            pack(panel, nr, cnt, X + n0 + p * nr, k_stride, q->K, q->v->x_offset, s->sx + p * nr);
            continue;
        }
        /* padding: K to 4 and columns to NR; any value is right for K
           (the weights there are 0), columns past nb are never stored */
        memset(panel, q->v->x_offset ? 128 : 0, pbytes);
        for (int j = 0; j < cnt; j++) {
            int n = n0 + p * nr + j;
            s->sx[p * nr + j] = pack_x_col(panel, nr, j, X + (size_t)n * col_stride, q->K,
                                           q->v->x_offset);
        }
    }
}

/* This thread's share of the M panels. */
static void my_panels(int panels, int *p0, int *p1)
{
    int t = 0, T = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    T = omp_get_num_threads();
#endif
    *p0 = (int)((long)panels * t / T);
    *p1 = (int)((long)panels * (t + 1) / T);
}

/* C [rows of panels p0..p1][nc] = W . packed block (nb columns) */
static void multiply_block(const dc__q8mat *q, q8_scratch *s, int nb, int p0, int p1)
{
    const dc__q8variant *v = q->v;
    int mr = v->mr, nr = v->nr, np = (nb + nr - 1) / nr;
    size_t wpanel = (size_t)q->kg * mr * 4, xpanel = (size_t)q->kg * nr * 4;
    for (int g0 = 0; g0 < q->kg; g0 += KC_GROUPS) {
        int gn = q->kg - g0 < KC_GROUPS ? q->kg - g0 : KC_GROUPS;
        for (int jp = 0; jp < np; jp++) {
            const uint8_t *x = s->x + jp * xpanel + (size_t)g0 * nr * 4;
            for (int p = p0; p < p1; p++)
                v->kernel(s->c + (size_t)p * mr * s->nc + jp * nr, s->nc,
                          q->w + p * wpanel + (size_t)g0 * mr * 4, x, gn, g0 > 0);
        }
    }
}

/* The shared float epilogue: rows of panels p0..p1, columns n0..n0+nb. */
static void finish_block(const dc__q8mat *q, const q8_scratch *s, float *y, size_t ym, size_t yn,
                         const float *b, int n0, int nb, int p0, int p1)
{
    int m1 = p1 * q->v->mr < q->M ? p1 * q->v->mr : q->M;
    if (yn == 1) { /* the conv seam: y [M][ldy], a row of C is a run of y */
        for (int m = p0 * q->v->mr; m < m1; m++) {
            const int32_t *c = s->c + (size_t)m * s->nc;
            float sw = q->scale[m], bm = b ? b[m] : 0.0f, *yrow = y + m * ym + n0;
            int32_t off = q->offset[m];
            /* elementwise, so vector lanes give the scalar bits (C99: no fma contraction) */
#ifdef _OPENMP
#pragma omp simd
#endif
            for (int j = 0; j < nb; j++) yrow[j] = dc__q8_dequant(c[j] - off, sw, s->sx[j], bm);
        }
        return;
    }
    /* the rows seam writes y [n][M], C transposed: tiles of 64 rows of C
       by 16 columns, each computed along C's rows (vectorised, elementwise:
       the same bits) and then stored along y's (runs of 64 floats) */
    for (int mb = p0 * q->v->mr; mb < m1; mb += 64) {
        int mn = m1 - mb < 64 ? m1 - mb : 64;
        for (int jb = 0; jb < nb; jb += 16) {
            int jn = nb - jb < 16 ? nb - jb : 16;
            float t[64][16];
            for (int i = 0; i < mn; i++) {
                int m = mb + i;
                const int32_t *c = s->c + (size_t)m * s->nc + jb;
                const float *sx = s->sx + jb;
                float sw = q->scale[m], bm = b ? b[m] : 0.0f;
                int32_t off = q->offset[m];
#ifdef _OPENMP
#pragma omp simd
#endif
                for (int j = 0; j < jn; j++) t[i][j] = dc__q8_dequant(c[j] - off, sw, sx[j], bm);
            }
            for (int j = 0; j < jn; j++) {
                float *yj = y + (size_t)(n0 + jb + j) * yn + mb; /* ym is 1 here */
                for (int i = 0; i < mn; i++) yj[i] = t[i][j];
            }
        }
    }
}

/* y[m*ym + n*yn] = sum_k W[m,k] X[n*col_stride + k*k_stride] (+ b[m]) */
static void product(float *y, size_t ym, size_t yn, const dc__q8mat *W, const float *X,
                    size_t col_stride, size_t k_stride, const float *b, int N, void *scratch)
{
    q8_scratch s = scratch_of(W, N, scratch);
    for (int n0 = 0; n0 < N; n0 += s.nc) {
        int nb = N - n0 < s.nc ? N - n0 : s.nc;
        pack_block(W, &s, X, col_stride, k_stride, n0, nb); /* ends in a barrier */
        int p0, p1;
        my_panels(W->panels, &p0, &p1);
        multiply_block(W, &s, nb, p0, p1);
        finish_block(W, &s, y, ym, yn, b, n0, nb, p0, p1);
#ifdef _OPENMP
#pragma omp barrier
#endif
    }
}

/* worth more than one thread: about 2^22 multiply-adds */
static int parallel_worth(const dc__q8mat *W, int N)
{
    int inside = 0;
#ifdef _OPENMP
    inside = omp_in_parallel();
#endif
    return !inside && (double)W->M * W->K * N > 4e6 && W->panels > 1;
}

/* product, in a team of threads of its own when that is worth it; inside a
   caller's parallel region, on the calling thread alone */
static void product_on_threads(float *y, size_t ym, size_t yn, const dc__q8mat *W, const float *X,
                               size_t col_stride, size_t k_stride, const float *b, int N, void *scratch)
{
    if (N < 1) return;
    int par = parallel_worth(W, N);
    (void)par;
#ifdef _OPENMP
#pragma omp parallel if (par)
#endif
    product(y, ym, yn, W, X, col_stride, k_stride, b, N, scratch);
}

void dc__q8_matmul_cols(float *y, int ldy, const dc__q8mat *W, const float *X, int ldx, int N,
                        void *scratch)
{
    product_on_threads(y, (size_t)ldy, 1, W, X, 1, (size_t)ldx, NULL, N, scratch);
}

void dc__q8_matmul_rows(float *y, const float *x, const dc__q8mat *W, const float *b, int N,
                        void *scratch)
{
    product_on_threads(y, 1, (size_t)W->M, W, x, (size_t)W->K, 1, b, N, scratch);
}

/* ---- the exact integer product (tests, benches, self-check) ---- */

dc_status dc__q8_int_product(int32_t *c, const int8_t *a, const int8_t *bt, int M, int N, int K,
                             const dc__q8variant *v, dc_error *err)
{
    dc__q8mat q;
    dc_status st = dc__q8mat_pack_q8(&q, a, NULL, M, K, v, err);
    if (st) return st;
    if (N < 1) {
        dc__q8mat_free(&q);
        return dc__fail(err, DC_ERR_INVALID, "int8 product: N = %d", N);
    }
    int nr = v->nr, np = (N + nr - 1) / nr;
    size_t xpanel = (size_t)q.kg * nr * 4;
    uint8_t *x = dc__aligned_alloc(xpanel * np);
    int32_t *cb = dc__aligned_alloc((size_t)q.panels * v->mr * np * nr * sizeof(int32_t));
    if (!x || !cb) {
        dc__aligned_free(x);
        dc__aligned_free(cb);
        dc__q8mat_free(&q);
        return dc__fail(err, DC_ERR_NOMEM, "int8 product: out of memory");
    }
    memset(x, v->x_offset ? 128 : 0, xpanel * np);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            x[(n / nr) * xpanel + ((size_t)(k / 4) * nr + n % nr) * 4 + k % 4] =
                (uint8_t)(bt[(size_t)n * K + k] + (v->x_offset ? 128 : 0));
    q8_scratch s = {x, NULL, cb, np * nr};
    multiply_block(&q, &s, N, 0, q.panels);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) c[(size_t)m * N + n] = cb[(size_t)m * s.nc + n] - q.offset[m];
    dc__aligned_free(x);
    dc__aligned_free(cb);
    dc__q8mat_free(&q);
    return DC_OK;
}

/* ---- the scalar twin ---- */

static void kernel_scalar(int32_t *c, int ldc, const int8_t *w, const uint8_t *x, int kg,
                          int accumulate)
{
    enum { MR = 4, NR = 4 };
    const int8_t *xs = (const int8_t *)x; /* s8: the scalar twin packs no offset */
    int32_t acc[MR][NR] = {{0}};
    for (int g = 0; g < kg; g++)
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++)
                for (int i = 0; i < 4; i++)
                    acc[r][j] += (int32_t)w[(g * MR + r) * 4 + i] * xs[(g * NR + j) * 4 + i];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++)
            c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0) + acc[r][j];
}

static int always(void) { return 1; }

static const dc__q8variant q8_scalar = {"scalar", "C int32", 4, 4, 0, kernel_scalar, always, NULL};
const dc__q8variant *dc__q8_scalar(void) { return &q8_scalar; }

const char *dc__q8_name(const dc__q8variant *v) { return v ? v->name : "none"; }

/* ---- choice ---- */

void dc__q8_candidates(const dc__q8variant **list, int cap)
{
    const dc__q8variant *all[] = {dc__q8_avx512vnni(), dc__q8_avxvnni(), dc__q8_avx2(),
                                  dc__q8_neondot(), dc__q8_neon()};
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        if (all[i] && n < cap - 1) list[n++] = all[i];
    if (cap > 0) list[n] = NULL;
}

/* a fixed problem: tails in M, N and K for every tile in use, a second
   K block, the extremes -127 and 127 (u8 255 with the offset) */
enum { CHECK_M = 19, CHECK_N = 71, CHECK_K = 4 * KC_GROUPS + 4 * 3 + 3 };

/* W . X through v and through the scalar twin, from the check's integers
   made floats (X with an infinity and a zero column): 1 when bit-equal */
static int float_check(const dc__q8variant *v, const int8_t *a, const int8_t *bt, char *why,
                       size_t why_cap)
{
    enum { M = CHECK_M, N = CHECK_N, K = CHECK_K };
    float *W = malloc(sizeof(float) * M * K), *X = malloc(sizeof(float) * K * N);
    float *y = malloc(sizeof(float) * M * N), *want = malloc(sizeof(float) * M * N);
    dc__q8mat qv, qs;
    int ok = 0, packed = 0;
    void *sv = NULL, *ss = NULL;
    dc_error e;
    if (!W || !X || !y || !want) goto done;
    for (int i = 0; i < M * K; i++) W[i] = a[i] * 0.01f;
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++)
            X[k * N + n] = n == 3 ? 0.0f : bt[n * K + k] * (0.5f + 0.001f * (float)k);
    X[5 * N + 7] = INFINITY;
    if (dc__q8mat_pack(&qv, W, M, K, v, &e)) goto done;
    if (dc__q8mat_pack(&qs, W, M, K, dc__q8_scalar(), &e)) {
        dc__q8mat_free(&qv);
        goto done;
    }
    packed = 1;
    sv = dc__aligned_alloc(dc__q8_scratch_bytes(&qv, N));
    ss = dc__aligned_alloc(dc__q8_scratch_bytes(&qs, N));
    if (!sv || !ss) goto done;
    dc__q8_matmul_cols(y, N, &qv, X, N, N, sv);
    dc__q8_matmul_cols(want, N, &qs, X, N, N, ss);
    ok = !memcmp(y, want, sizeof(float) * M * N);
    if (!ok && why) snprintf(why, why_cap, "%s: self-check failed: its float product differs", v->name);
done:
    if (!ok && why && !packed) snprintf(why, why_cap, "%s: self-check could not run", v->name);
    if (packed) {
        dc__q8mat_free(&qv);
        dc__q8mat_free(&qs);
    }
    dc__aligned_free(sv);
    dc__aligned_free(ss);
    free(W);
    free(X);
    free(y);
    free(want);
    return ok;
}

int dc__q8_self_check(const dc__q8variant *v, char *why, size_t why_cap)
{
    static const int M = CHECK_M, N = CHECK_N, K = CHECK_K;
    int8_t *a = malloc((size_t)M * K), *bt = malloc((size_t)N * K);
    int32_t *c = malloc((size_t)M * N * 4), *want = malloc((size_t)M * N * 4);
    int ok = 0;
    if (!a || !bt || !c || !want) {
        if (why) snprintf(why, why_cap, "%s: out of memory for the self-check", v->name);
        goto done;
    }
    uint32_t r = 12345u;
    for (int i = 0; i < M * K; i++) {
        r = r * 1664525u + 1013904223u;
        a[i] = (int8_t)((int)(r >> 24) % 255 - 127);
    }
    for (int i = 0; i < N * K; i++) {
        r = r * 1664525u + 1013904223u;
        bt[i] = (int8_t)((int)(r >> 24) % 255 - 127);
    }
    for (int k = 0; k < K; k++) { /* a row and a column at the extremes */
        a[k] = 127;
        a[(size_t)(M - 1) * K + k] = -127;
        bt[k] = 127;
        bt[(size_t)(N - 1) * K + k] = -127;
    }
    dc_error e;
    if (dc__q8_int_product(c, a, bt, M, N, K, v, &e) ||
        dc__q8_int_product(want, a, bt, M, N, K, dc__q8_scalar(), &e)) {
        /* the product's message is one line; 160 bytes of it fit the
           callers' buffers whole (dc__q8_best's 200) */
        if (why) snprintf(why, why_cap, "%s: %.160s", v->name, e.msg);
        goto done;
    }
    for (int i = 0; i < M * N; i++)
        if (c[i] != want[i]) {
            if (why)
                snprintf(why, why_cap, "%s: self-check failed: sum %d at (%d, %d), scalar twin %d",
                         v->name, c[i], i / N, i % N, want[i]);
            goto done;
        }
    /* the float path: the variant's packer and the shared epilogue */
    ok = float_check(v, a, bt, why, why_cap);
done:
    free(a);
    free(bt);
    free(c);
    free(want);
    return ok;
}

/* The first candidate (fastest first) that runs here and passes its
   self-check. DC_INT8_VARIANT=NAME in the environment puts that variant
   first (for timing one against another on the same CPU, as DC_KERNELS
   does for the elementwise kernels); it still has to run here and pass
   the check, else the automatic order follows and the reason says why. */
const dc__q8variant *dc__q8_best(char *why, size_t why_cap)
{
    const dc__q8variant *list[8];
    dc__q8_candidates(list, 8);
    size_t used = 0;
    if (why && why_cap) why[0] = 0;
#define SAY(...) \
    do { if (why && used < why_cap) used += (size_t)snprintf(why + used, why_cap - used, __VA_ARGS__); } while (0)
    const char *force = getenv("DC_INT8_VARIANT");
    if (force && *force) {
        int at = -1;
        for (int i = 0; list[i]; i++)
            if (!strcmp(list[i]->name, force)) at = i;
        if (at < 0) {
            SAY("DC_INT8_VARIANT=%.40s: no such variant in this build; ", force);
        } else {
            const dc__q8variant *chosen = list[at];
            for (int i = at; i > 0; i--) list[i] = list[i - 1];
            list[0] = chosen;
            SAY("DC_INT8_VARIANT=%s; ", chosen->name);
        }
    }
    for (int i = 0; list[i]; i++) {
        if (!list[i]->runs_here()) {
            SAY("%s: not on this CPU; ", list[i]->name);
            continue;
        }
        char msg[200];
        if (!dc__q8_self_check(list[i], msg, sizeof msg)) {
            SAY("%s (skipped); ", msg);
            continue;
        }
        SAY("%s: self-check passed", list[i]->name);
        return list[i];
    }
    SAY(list[0] ? "no int8 variant usable on this CPU" : "no int8 SIMD variant in this build");
#undef SAY
    return NULL;
}
