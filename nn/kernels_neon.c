/* nn/kernels_neon.c - the NEON copy of the vector kernels (nn/kernels_vec.h). */
#include "nn.h"
#if defined(__aarch64__) && !defined(DC_PORTABLE)
#include <math.h>
#include <string.h>
#define DC_SIMD_NEON
#include "simd.h"
#define KN(name) dc__##name##_neon
#include "kernels_vec.h"

static const dc__kernels dc__table_neon = {
    KN(add), KN(silu), KN(gelu_erf), KN(gelu_tanh), KN(quick_gelu), KN(softmax),
    KN(sum), KN(sumsq_dev), KN(scale_shift), KN(norm_affine), KN(f16_to_f32),
    KN(q8_to_f32), "neon"
};
const dc__kernels *dc__kernels_neon(void) { return &dc__table_neon; }
#include "simd_end.h"
#else
const dc__kernels *dc__kernels_neon(void) { return NULL; }
#endif
