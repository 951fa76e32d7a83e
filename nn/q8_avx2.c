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

#include <string.h>

#if defined(DC_Q8_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx2.h>
#define Q8_TARGET_AVX2
#define Q8_BUILD_AVX2
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define Q8_TARGET_AVX2 __attribute__((target("avx2")))
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

#if defined(DC_Q8_SIMDE)
static int runs_avx2(void) { return 1; }
static const dc__q8variant variant_avx2 = {"avx2", "vpmaddubsw+vpmaddwd ymm (SIMDe)", MR_AVX2,
                                           NR_AVX2, 0, kernel_avx2, runs_avx2, NULL};
const dc__q8variant *dc__q8_avx2_simde(void);
const dc__q8variant *dc__q8_avx2_simde(void) { return &variant_avx2; }
#else
static int runs_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
static const dc__q8variant variant_avx2 = {"avx2", "vpmaddubsw+vpmaddwd ymm", MR_AVX2, NR_AVX2, 0,
                                           kernel_avx2, runs_avx2, NULL};
const dc__q8variant *dc__q8_avx2(void) { return &variant_avx2; }
#endif
#undef Q8_BUILD_AVX2
#undef Q8_TARGET_AVX2
#elif !defined(DC_Q8_SIMDE)
const dc__q8variant *dc__q8_avx2(void) { return NULL; }
#endif
