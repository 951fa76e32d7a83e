/* nn/q8_avx512vnni.c - the int8 product's AVX512-VNNI microkernel (zmm
   vpdpbusd: Ice Lake, Zen 4 and later).

   Tile: MR = 8 rows of W by NR = 48 columns (3 zmm of 16 int32 lanes; a lane
   is one column, its 4 bytes four consecutive k). Per group of 4 along K,
   3 loads of activations and 8 broadcasts of 4 weight bytes feed 24
   vpdpbusd into 24 accumulators (27 of 32 zmm registers).

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

#include <string.h>

#if defined(DC_Q8_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define Q8_TARGET_AVX512VNNI
#define Q8_BUILD_AVX512VNNI
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define Q8_TARGET_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define Q8_BUILD_AVX512VNNI
#endif

#ifdef Q8_BUILD_AVX512VNNI
enum { MR_AVX512VNNI = 8, NV_AVX512VNNI = 3, NR_AVX512VNNI = 16 * NV_AVX512VNNI };

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

#if defined(DC_Q8_SIMDE)
static int runs_avx512vnni(void) { return 1; }
static const dc__q8variant variant_avx512vnni = {
    "avx512vnni", "vpdpbusd zmm (SIMDe)", MR_AVX512VNNI, NR_AVX512VNNI, 1, kernel_avx512vnni,
    runs_avx512vnni};
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
    runs_avx512vnni};
const dc__q8variant *dc__q8_avx512vnni(void) { return &variant_avx512vnni; }
#endif
#undef Q8_BUILD_AVX512VNNI
#undef Q8_TARGET_AVX512VNNI
#elif !defined(DC_Q8_SIMDE)
const dc__q8variant *dc__q8_avx512vnni(void) { return NULL; }
#endif
