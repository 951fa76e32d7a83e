/* nn/q8_neon.c - the int8 product's NEON microkernel for cores without the
   dot-product instructions (Cortex-A72: Raspberry Pi 4): smull then sadalp.

   Tile: MR = 4 rows of W by NR = 8 columns. A 16-byte activation vector
   holds 4 columns of one group of 4 along K; smull multiplies 8 of its
   bytes (2 columns) by the row's 4 weight bytes twice over into 8 int16,
   and sadalp adds neighbouring pairs into 4 int32 lanes: (column, k 0-1)
   and (column, k 2-3). Two such half-sums per column are added at the end
   (addp). 16 accumulators, 2 activation vectors, the weight group and 2
   products (21 of 32 registers).

   Exactness: activations and weights are s8 in [-127, 127]; a product is
   at most 127 * 127 = 16129, inside int16 (no saturating instruction is
   used); a pair, 32258, is added in int32, and |sum| <= 127 * 127 * K
   stays far below 2^31 for K <= DC_Q8_MAX_K. */
#include "nn.h"
#include "q8.h"

#include <string.h>

#if defined(__aarch64__) && !defined(DC_PORTABLE)
#include <arm_neon.h>
enum { MR_NEON = 4, NR_NEON = 8 };

static void kernel_neon(int32_t *c, int ldc, const int8_t *w, const uint8_t *x, int kg,
                        int accumulate)
{
    enum { MR = MR_NEON, NR = NR_NEON, NV = NR / 4 };
    const int8_t *xs = (const int8_t *)x;
    /* acc[r][v][h]: row r, columns 4v .. 4v+3, h = 0 for the first two */
    int32x4_t acc[MR][NV][2];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) acc[r][v][0] = acc[r][v][1] = vdupq_n_s32(0);
    for (int g = 0; g < kg; g++) {
        int8x16_t xv[NV];
        for (int v = 0; v < NV; v++) xv[v] = vld1q_s8(xs + (g * NR + v * 4) * 4);
        for (int r = 0; r < MR; r++) {
            int32_t w4;
            memcpy(&w4, w + (g * MR + r) * 4, 4);
            int8x8_t wb = vreinterpret_s8_s32(vdup_n_s32(w4));
            for (int v = 0; v < NV; v++) {
                acc[r][v][0] = vpadalq_s16(acc[r][v][0], vmull_s8(vget_low_s8(xv[v]), wb));
                acc[r][v][1] = vpadalq_s16(acc[r][v][1], vmull_s8(vget_high_s8(xv[v]), wb));
            }
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++) {
            int32_t *p = c + r * ldc + v * 4;
            int32x4_t s = vpaddq_s32(acc[r][v][0], acc[r][v][1]);
            if (accumulate) s = vaddq_s32(s, vld1q_s32(p));
            vst1q_s32(p, s);
        }
}

static int runs_neon(void) { return 1; }
static const dc__q8variant variant_neon = {"neon", "smull+sadalp", MR_NEON, NR_NEON, 0, kernel_neon,
                                           runs_neon, NULL};
const dc__q8variant *dc__q8_neon(void) { return &variant_neon; }
#else
const dc__q8variant *dc__q8_neon(void) { return NULL; }
#endif
