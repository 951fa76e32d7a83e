/* nn/q8_avxvnni.c - the int8 product's AVX-VNNI microkernel (ymm vpdpbusd
   in its VEX form: Alder Lake, Zen 5 and later, CPUs with AVX2 and the
   dot-product unit but no AVX-512).

   Tile: MR = 6 rows of W by NR = 16 columns (2 ymm of 8 int32 lanes; a lane
   is one column, its 4 bytes four consecutive k): 12 accumulators, 2
   activation vectors and 1 broadcast weight group (15 of 16 ymm).
   Activations are packed by the AVX2 file's 16-column packer.

   Exactness: as nn/q8_avx512vnni.c. vpdpbusd multiplies u8 by s8, so
   activations are packed as x + 128 in [1, 255] and the packing's
   128 * sum_k w[m,k] is subtracted after the sum; no saturating form is
   used, and |sum| <= 255 * 127 * K < 2^31 for K <= DC_Q8_MAX_K.

   Built a second time through SIMDe (DC_Q8_SIMDE, tests only) as
   dc__q8_avxvnni_simde: SIMDe has the EVEX _mm256_dpbusd_epi32, the same
   sums as the VEX form. */
#include "nn.h"
#include "q8.h"

#include <string.h>

#if defined(DC_Q8_SIMDE)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>
#define Q8_TARGET_AVXVNNI
#define Q8_DPBUSD_AVXVNNI(s, a, b) _mm256_dpbusd_epi32(s, a, b)
#define Q8_PACK16_AVXVNNI dc__q8_pack16_avx2_simde
void dc__q8_pack16_avx2_simde(uint8_t *panel, int nr, int cnt, const float *src, size_t ks, int K,
                              int offset, float *sx);
#define Q8_BUILD_AVXVNNI
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define Q8_TARGET_AVXVNNI __attribute__((target("avx2,avxvnni")))
#define Q8_DPBUSD_AVXVNNI(s, a, b) _mm256_dpbusd_avx_epi32(s, a, b)
#define Q8_PACK16_AVXVNNI dc__q8_pack16_avx2
#define Q8_BUILD_AVXVNNI
#endif

#ifdef Q8_BUILD_AVXVNNI
enum { MR_AVXVNNI = 6, NV_AVXVNNI = 2, NR_AVXVNNI = 8 * NV_AVXVNNI };

Q8_TARGET_AVXVNNI static void kernel_avxvnni(int32_t *c, int ldc, const int8_t *w, const uint8_t *x,
                                             int kg, int accumulate)
{
    enum { MR = MR_AVXVNNI, NV = NV_AVXVNNI, NR = NR_AVXVNNI };
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
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = Q8_DPBUSD_AVXVNNI(acc[r][v], xv[v], wb);
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
static int runs_avxvnni(void) { return 1; }
static const dc__q8variant variant_avxvnni = {"avxvnni", "vpdpbusd ymm (SIMDe)", MR_AVXVNNI,
                                              NR_AVXVNNI, 1, kernel_avxvnni, runs_avxvnni, Q8_PACK16_AVXVNNI};
const dc__q8variant *dc__q8_avxvnni_simde(void);
const dc__q8variant *dc__q8_avxvnni_simde(void) { return &variant_avxvnni; }
#else
#include <cpuid.h>
static int runs_avxvnni(void)
{
    unsigned a, b, c, d;
    __builtin_cpu_init();
    /* avx2 also means the OS saves ymm state */
    if (!__builtin_cpu_supports("avx2")) return 0;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 4) & 1; /* CPUID.(7,1):EAX[4] AVX-VNNI */
}
static const dc__q8variant variant_avxvnni = {"avxvnni", "vpdpbusd ymm (VEX)", MR_AVXVNNI,
                                              NR_AVXVNNI, 1, kernel_avxvnni, runs_avxvnni, Q8_PACK16_AVXVNNI};
const dc__q8variant *dc__q8_avxvnni(void) { return &variant_avxvnni; }
#endif
#undef Q8_BUILD_AVXVNNI
#undef Q8_TARGET_AVXVNNI
#undef Q8_DPBUSD_AVXVNNI
#undef Q8_PACK16_AVXVNNI
#elif !defined(DC_Q8_SIMDE)
const dc__q8variant *dc__q8_avxvnni(void) { return NULL; }
#endif
