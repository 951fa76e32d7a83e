/* nn/q8_neondot.c - the int8 product's NEON microkernel with the Armv8.2
   dot-product instructions (sdot: Cortex-A76 / Raspberry Pi 5, Apple M,
   Neoverse), chosen at run time by the HWCAP the kernel reports.

   Tile: MR = 8 rows of W by NR = 12 columns. A 16-byte activation vector
   holds 4 columns of one group of 4 along K (one int32 lane each); a
   16-byte weight vector holds 4 rows, and sdot by lane multiplies the
   activations by one row's 4 bytes. 24 accumulators, 3 activation and 2
   weight vectors (29 of 32 registers).

   Exactness: sdot multiplies s8 by s8 (no offset needed) and adds the four
   products (each at most 127 * 127) into the int32 lane without
   saturation; |sum| <= 127 * 127 * K stays far below 2^31 for
   K <= DC_Q8_MAX_K. */
#include "nn.h"
#include "q8.h"

#include <string.h>

#if defined(__aarch64__) && !defined(DC_PORTABLE)
#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif
enum { MR_NEONDOT = 8, NR_NEONDOT = 12 };

#define Q8_DOT_ROWS(r0, wv)                                                   \
    for (int v = 0; v < NV; v++) {                                            \
        acc[r0 + 0][v] = vdotq_laneq_s32(acc[r0 + 0][v], xv[v], wv, 0);       \
        acc[r0 + 1][v] = vdotq_laneq_s32(acc[r0 + 1][v], xv[v], wv, 1);       \
        acc[r0 + 2][v] = vdotq_laneq_s32(acc[r0 + 2][v], xv[v], wv, 2);       \
        acc[r0 + 3][v] = vdotq_laneq_s32(acc[r0 + 3][v], xv[v], wv, 3);       \
    }

__attribute__((target("arch=armv8.2-a+dotprod"))) static void
kernel_neondot(int32_t *c, int ldc, const int8_t *w, const uint8_t *x, int kg, int accumulate)
{
    enum { MR = MR_NEONDOT, NR = NR_NEONDOT, NV = NR / 4 };
    const int8_t *xs = (const int8_t *)x;
    int32x4_t acc[MR][NV];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v] = vdupq_n_s32(0);
    for (int g = 0; g < kg; g++) {
        int8x16_t xv[NV];
        for (int v = 0; v < NV; v++) xv[v] = vld1q_s8(xs + (g * NR + v * 4) * 4);
        int8x16_t w0 = vld1q_s8(w + g * MR * 4), w1 = vld1q_s8(w + g * MR * 4 + 16);
        Q8_DOT_ROWS(0, w0)
        Q8_DOT_ROWS(4, w1)
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            int32_t *p = c + r * ldc + v * 4;
            int32x4_t s = acc[r][v];
            if (accumulate) s = vaddq_s32(s, vld1q_s32(p));
            vst1q_s32(p, s);
        }
}
#undef Q8_DOT_ROWS

static int runs_neondot(void)
{
#if defined(__linux__)
    return (getauxval(AT_HWCAP) >> 20) & 1; /* HWCAP_ASIMDDP */
#else
    return 0; /* no detection written for this OS: the NEON kernel runs */
#endif
}
static const dc__q8variant variant_neondot = {"neondot", "sdot", MR_NEONDOT, NR_NEONDOT, 0,
                                              kernel_neondot, runs_neondot, NULL};
const dc__q8variant *dc__q8_neondot(void) { return &variant_neondot; }
#else
const dc__q8variant *dc__q8_neondot(void) { return NULL; }
#endif
