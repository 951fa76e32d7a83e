/* nn/q8_avx2.c - the int8 product's AVX2 microkernel for CPUs without a
   dot-product unit (Haswell to Tiger Lake laptops, Zen 1-3): vpmaddubsw
   then vpmaddwd.

   Tile: MR = 4 rows of W by NR = 16 columns (2 ymm of 8 int32 lanes; a lane
   is one column, its 4 bytes four consecutive k): 8 accumulators, 2
   activation vectors, the broadcast weight group, its absolute value, a
   product and the constant 1s (14 of 16 ymm).

   Exactness: vpmaddubsw multiplies u8 by s8 and adds pairs into int16 with
   saturation, which u8 activations shifted by 128 would reach (2 * 255 *
   127 = 64770). So activations stay s8 and the sign moves: the u8 operand
   is |w| (at most 127) and the s8 operand is x with w's sign (vpsignb; x is
   in [-127, 127], never -128, so its negation fits). A pair is then at most
   2 * 127 * 127 = 32258 < 32767: no saturation. vpmaddwd with 1s adds the
   two pairs of a group into int32 (at most 64516), and |sum| <= 127 * 127 * K
   stays far below 2^31 for K <= DC_Q8_MAX_K.

   Built a second time through SIMDe (DC_Q8_SIMDE, tests only) as
   dc__q8_avx2_simde. */
#include "nn.h"
#include "q8.h"

#include <math.h>
#include <string.h>

#if defined(DC_Q8_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx2.h>
#define Q8_TARGET_AVX2
#define Q8_TRUNC_AVX2 SIMDE_MM_FROUND_TO_ZERO
#define Q8_PACK16 dc__q8_pack16_avx2_simde
#define Q8_BUILD_AVX2
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define Q8_TARGET_AVX2 __attribute__((target("avx2")))
#define Q8_TRUNC_AVX2 _MM_FROUND_TO_ZERO
#define Q8_PACK16 dc__q8_pack16_avx2
#define Q8_BUILD_AVX2
#endif

#ifdef Q8_BUILD_AVX2
enum { MR_AVX2 = 4, NV_AVX2 = 2, NR_AVX2 = 8 * NV_AVX2 };

Q8_TARGET_AVX2 static void kernel_avx2(int32_t *c, int ldc, const int8_t *w, const uint8_t *x,
                                       int kg, int accumulate)
{
    enum { MR = MR_AVX2, NV = NV_AVX2, NR = NR_AVX2 };
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MR][NV];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_si256();
    for (int g = 0; g < kg; g++) {
        __m256i xv[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            xv[v] = _mm256_loadu_si256((const __m256i *)(const void *)(x + (g * NR + v * 8) * 4));
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            int32_t w4;
            memcpy(&w4, w + (g * MR + r) * 4, 4);
            __m256i wb = _mm256_set1_epi32(w4);
            __m256i wa = _mm256_abs_epi8(wb);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                __m256i p = _mm256_maddubs_epi16(wa, _mm256_sign_epi8(xv[v], wb));
                acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_madd_epi16(p, ones));
            }
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __m256i *p = (__m256i *)(void *)(c + r * ldc + v * 8);
            __m256i s = acc[r][v];
            if (accumulate) s = _mm256_add_epi32(s, _mm256_loadu_si256(p));
            _mm256_storeu_si256(p, s);
        }
}

/* 8 floats of a row from column c0 on, of which cnt - c0 exist (0s past
   them, never read past the row's end) */
Q8_TARGET_AVX2 static inline __m256 load_cols_avx2(const float *row, int c0, int cnt)
{
    if (cnt - c0 >= 8) return _mm256_loadu_ps(row + c0);
    float t[8] = {0};
    if (cnt > c0) memcpy(t, row + c0, (size_t)(cnt - c0) * sizeof *t);
    return _mm256_loadu_ps(t);
}

/* The conv seam's packer (dc__q8_packer) for 16-column panels, in ymm (the
   AVX-VNNI variant uses it too): the same arithmetic as nn/q8.c's scalar
   packer, step by step, so the same bytes (see nn/q8_avx512vnni.c). */
Q8_TARGET_AVX2 void Q8_PACK16(uint8_t *panel, int nr, int cnt, const float *src, size_t ks, int K,
                              int offset, float *sx)
{
    enum { NV = 2, NR = 16 };
    (void)nr; /* always NR */
    __m256 m[NV], z[NV];
    const __m256 zero = _mm256_setzero_ps(), absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int v = 0; v < NV; v++) m[v] = z[v] = zero;
    for (int k = 0; k < K; k++) {
        const float *row = src + (size_t)k * ks;
        for (int v = 0; v < NV; v++) {
            __m256 x = load_cols_avx2(row, 8 * v, cnt);
            m[v] = _mm256_max_ps(m[v], _mm256_and_ps(x, absmask));
            z[v] = _mm256_add_ps(z[v], _mm256_mul_ps(x, zero)); /* NaN for inf or NaN */
        }
    }
    float mm[NR], zz[NR], inv[NR];
    int32_t keep[NR];
    for (int v = 0; v < NV; v++) {
        _mm256_storeu_ps(mm + 8 * v, m[v]);
        _mm256_storeu_ps(zz + 8 * v, z[v]);
    }
    for (int j = 0; j < NR; j++) {
        int bad = !(zz[j] == 0.0f);
        inv[j] = mm[j] > 0.0f && !bad ? 127.0f / mm[j] : 0.0f;
        keep[j] = bad || j >= cnt ? 0 : -1; /* non-finite and dead columns quantize to 0 */
        if (j < cnt) sx[j] = bad ? NAN : mm[j] / 127.0f;
    }
    __m256 iv[NV];
    __m256i kv[NV];
    for (int v = 0; v < NV; v++) {
        iv[v] = _mm256_loadu_ps(inv + 8 * v);
        kv[v] = _mm256_loadu_si256((const __m256i *)(const void *)(keep + 8 * v));
    }
    const __m256 half = _mm256_set1_ps(0.5f), lo = _mm256_set1_ps(-127.0f),
                 hi = _mm256_set1_ps(127.0f),
                 magic = _mm256_set1_ps(12582912.0f + (offset ? 128.0f : 0.0f));
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u), byte = _mm256_set1_epi32(0xff),
                  pad = _mm256_set1_epi32(offset ? 128 : 0);
    int kg = (K + 3) / 4;
    for (int g = 0; g < kg; g++)
        for (int v = 0; v < NV; v++) {
            __m256i word = _mm256_setzero_si256();
            for (int i = 0; i < 4; i++) {
                int k = 4 * g + i;
                __m256i q = pad;
                if (k < K) {
                    __m256i xb = _mm256_and_si256(
                        _mm256_castps_si256(load_cols_avx2(src + (size_t)k * ks, 8 * v, cnt)), kv[v]);
                    __m256 x = _mm256_mul_ps(_mm256_castsi256_ps(xb), iv[v]);
                    __m256 h = _mm256_castsi256_ps(_mm256_or_si256(
                        _mm256_and_si256(_mm256_castps_si256(x), sign), _mm256_castps_si256(half)));
                    __m256 t = _mm256_round_ps(_mm256_add_ps(x, h), Q8_TRUNC_AVX2);
                    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
                    q = _mm256_and_si256(_mm256_castps_si256(_mm256_add_ps(t, magic)), byte);
                }
                word = _mm256_or_si256(word, _mm256_slli_epi32(q, 8 * i));
            }
            _mm256_storeu_si256((__m256i *)(void *)(panel + ((size_t)g * NR + 8 * v) * 4), word);
        }
}

#if defined(DC_Q8_SIMDE)
static int runs_avx2(void) { return 1; }
static const dc__q8variant variant_avx2 = {"avx2", "vpmaddubsw+vpmaddwd ymm (SIMDe)", MR_AVX2,
                                           NR_AVX2, 0, kernel_avx2, runs_avx2, Q8_PACK16};
const dc__q8variant *dc__q8_avx2_simde(void);
const dc__q8variant *dc__q8_avx2_simde(void) { return &variant_avx2; }
#else
static int runs_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
static const dc__q8variant variant_avx2 = {"avx2", "vpmaddubsw+vpmaddwd ymm", MR_AVX2, NR_AVX2, 0,
                                           kernel_avx2, runs_avx2, Q8_PACK16};
const dc__q8variant *dc__q8_avx2(void) { return &variant_avx2; }
#endif
#undef Q8_BUILD_AVX2
#undef Q8_TARGET_AVX2
#undef Q8_TRUNC_AVX2
#undef Q8_PACK16
#elif !defined(DC_Q8_SIMDE)
const dc__q8variant *dc__q8_avx2(void) { return NULL; }
#endif
