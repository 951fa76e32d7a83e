/* nn/q8_avx512vnni.c - the int8 product's AVX512-VNNI microkernel (zmm
   vpdpbusd: Ice Lake, Zen 4 and later).

   Tile: MR = 6 rows of W by NR = 64 columns (4 zmm of 16 int32 lanes; a lane
   is one column, its 4 bytes four consecutive k). Per group of 4 along K,
   4 loads of activations and 6 broadcasts of 4 weight bytes feed 24
   vpdpbusd into 24 accumulators (29 of 32 zmm registers). Measured
   (bench/q8_bench.c, 1 thread) against 8x48 and 12x32: 6x64 is the fastest,
   and 64 columns divide the conv's 128-pixel tiles and 64-token batches.

   Exactness: vpdpbusd multiplies u8 by s8, so activations are packed as
   x + 128 in [1, 255] (nn/q8.c) and the packing's 128 * sum_k w[m,k] is
   subtracted after the sum. A lane adds four products of at most
   255 * 127 per instruction, without saturation (vpdpbusd, not vpdpbusds),
   into int32: after K products |sum| <= 255 * 127 * K, below 2^31 for
   K <= DC_Q8_MAX_K (65536: 2122317824 < 2147483647).

   Built a second time through SIMDe (DC_Q8_SIMDE, tests only) as
   dc__q8_avx512vnni_simde, which runs on any CPU. */
#include "nn.h"
#include "q8.h"

#include <math.h>
#include <string.h>

#if defined(DC_Q8_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define Q8_TARGET_AVX512VNNI
#define Q8_TRUNC_AVX512VNNI (SIMDE_MM_FROUND_TO_ZERO | SIMDE_MM_FROUND_NO_EXC)
#define Q8_BUILD_AVX512VNNI
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define Q8_TARGET_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define Q8_TRUNC_AVX512VNNI (_MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)
#define Q8_BUILD_AVX512VNNI
#endif

#ifdef Q8_BUILD_AVX512VNNI
enum { MR_AVX512VNNI = 6, NV_AVX512VNNI = 4, NR_AVX512VNNI = 16 * NV_AVX512VNNI };

Q8_TARGET_AVX512VNNI static void kernel_avx512vnni(int32_t *c, int ldc, const int8_t *w,
                                                   const uint8_t *x, int kg, int accumulate)
{
    enum { MR = MR_AVX512VNNI, NV = NV_AVX512VNNI, NR = NR_AVX512VNNI };
    __m512i acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_si512();
    for (int g = 0; g < kg; g++) {
        __m512i xv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) xv[v] = _mm512_loadu_si512((const void *)(x + (g * NR + v * 16) * 4));
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            int32_t w4;
            memcpy(&w4, w + (g * MR + r) * 4, 4);
            __m512i wb = _mm512_set1_epi32(w4);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], xv[v], wb);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            int32_t *p = c + r * ldc + v * 16;
            __m512i s = acc[r][v];
            if (accumulate) s = _mm512_add_epi32(s, _mm512_loadu_si512((const void *)p));
            _mm512_storeu_si512((void *)p, s);
        }
}

/* 16 floats of a row from column c0 on, of which cnt - c0 exist (0s past
   them, never read past the row's end) */
Q8_TARGET_AVX512VNNI static inline __m512 load_cols_avx512vnni(const float *row, int c0, int cnt)
{
    if (cnt - c0 >= 16) return _mm512_loadu_ps(row + c0);
    float t[16] = {0};
    if (cnt > c0) memcpy(t, row + c0, (size_t)(cnt - c0) * sizeof *t);
    return _mm512_loadu_ps(t);
}

/* The conv seam's packer (dc__q8_packer) in zmm: 16 columns a vector,
   four rows of K make one vector of 32-bit groups. The same arithmetic as
   nn/q8.c's scalar packer, step by step (max, 127 / max, x * inv, + 0.5
   with x's sign, truncation, clamp), so the same bytes. The byte is taken
   from the integer-valued float t by adding 1.5 * 2^23 (+ 128 with the
   offset): exact, and the low 8 bits of the sum are (t [+ 128]) mod 256. */
Q8_TARGET_AVX512VNNI static void pack_avx512vnni(uint8_t *panel, int nr, int cnt, const float *src,
                                                 size_t ks, int K, int offset, float *sx)
{
    enum { NV = NV_AVX512VNNI, NR = NR_AVX512VNNI };
    (void)nr; /* always NR */
    __m512 m[NV], z[NV];
    const __m512 zero = _mm512_setzero_ps();
    for (int v = 0; v < NV; v++) m[v] = z[v] = zero;
    for (int k = 0; k < K; k++) {
        const float *row = src + (size_t)k * ks;
        for (int v = 0; v < NV; v++) {
            __m512 x = load_cols_avx512vnni(row, 16 * v, cnt);
            m[v] = _mm512_max_ps(m[v], _mm512_abs_ps(x));
            z[v] = _mm512_add_ps(z[v], _mm512_mul_ps(x, zero)); /* NaN for inf or NaN */
        }
    }
    float mm[NR], zz[NR], inv[NR];
    int32_t keep[NR];
    for (int v = 0; v < NV; v++) {
        _mm512_storeu_ps(mm + 16 * v, m[v]);
        _mm512_storeu_ps(zz + 16 * v, z[v]);
    }
    for (int j = 0; j < NR; j++) {
        int bad = !(zz[j] == 0.0f);
        inv[j] = mm[j] > 0.0f && !bad ? 127.0f / mm[j] : 0.0f;
        keep[j] = bad || j >= cnt ? 0 : -1; /* non-finite and dead columns quantize to 0 */
        if (j < cnt) sx[j] = bad ? NAN : mm[j] / 127.0f;
    }
    __m512 iv[NV];
    __m512i kv[NV];
    for (int v = 0; v < NV; v++) {
        iv[v] = _mm512_loadu_ps(inv + 16 * v);
        kv[v] = _mm512_loadu_si512((const void *)(keep + 16 * v));
    }
    const __m512 half = _mm512_set1_ps(0.5f), lo = _mm512_set1_ps(-127.0f),
                 hi = _mm512_set1_ps(127.0f),
                 magic = _mm512_set1_ps(12582912.0f + (offset ? 128.0f : 0.0f));
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u), byte = _mm512_set1_epi32(0xff),
                  pad = _mm512_set1_epi32(offset ? 128 : 0);
    int kg = (K + 3) / 4;
    for (int g = 0; g < kg; g++)
        for (int v = 0; v < NV; v++) {
            __m512i word = _mm512_setzero_si512();
            for (int i = 0; i < 4; i++) {
                int k = 4 * g + i;
                __m512i q = pad;
                if (k < K) {
                    __m512i xb = _mm512_and_si512(
                        _mm512_castps_si512(load_cols_avx512vnni(src + (size_t)k * ks, 16 * v, cnt)), kv[v]);
                    __m512 x = _mm512_mul_ps(_mm512_castsi512_ps(xb), iv[v]);
                    __m512 h = _mm512_castsi512_ps(_mm512_or_si512(
                        _mm512_and_si512(_mm512_castps_si512(x), sign), _mm512_castps_si512(half)));
                    __m512 t = _mm512_roundscale_ps(_mm512_add_ps(x, h), Q8_TRUNC_AVX512VNNI);
                    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
                    q = _mm512_and_si512(_mm512_castps_si512(_mm512_add_ps(t, magic)), byte);
                }
                word = _mm512_or_si512(word, _mm512_slli_epi32(q, 8 * i));
            }
            _mm512_storeu_si512((void *)(panel + ((size_t)g * NR + 16 * v) * 4), word);
        }
}

#if defined(DC_Q8_SIMDE)
static int runs_avx512vnni(void) { return 1; }
static const dc__q8variant variant_avx512vnni = {
    "avx512vnni", "vpdpbusd zmm (SIMDe)", MR_AVX512VNNI, NR_AVX512VNNI, 1, kernel_avx512vnni,
    runs_avx512vnni, pack_avx512vnni};
const dc__q8variant *dc__q8_avx512vnni_simde(void);
const dc__q8variant *dc__q8_avx512vnni_simde(void) { return &variant_avx512vnni; }
#else
#include <cpuid.h>
static int runs_avx512vnni(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init();
    /* avx512f also means the OS saves zmm state (the compiler's check reads XCR0) */
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl"))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (c >> 11) & 1; /* CPUID.(7,0):ECX[11] AVX512_VNNI */
}
static const dc__q8variant variant_avx512vnni = {
    "avx512vnni", "vpdpbusd zmm", MR_AVX512VNNI, NR_AVX512VNNI, 1, kernel_avx512vnni,
    runs_avx512vnni, pack_avx512vnni};
const dc__q8variant *dc__q8_avx512vnni(void) { return &variant_avx512vnni; }
#endif
#undef Q8_BUILD_AVX512VNNI
#undef Q8_TARGET_AVX512VNNI
#undef Q8_TRUNC_AVX512VNNI
#elif !defined(DC_Q8_SIMDE)
const dc__q8variant *dc__q8_avx512vnni(void) { return NULL; }
#endif
