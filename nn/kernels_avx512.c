/* nn/kernels_avx512.c - the AVX512 copy of the vector kernels (nn/kernels_vec.h). */
#include "nn.h"
#if (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
#include <math.h>
#include <string.h>
#define DC_SIMD_AVX512
#include "simd.h"
#define KN(name) dc__##name##_avx512
#include "kernels_vec.h"

static const dc__kernels dc__table_avx512 = {
    KN(add), KN(silu), KN(gelu_erf), KN(gelu_tanh), KN(quick_gelu), KN(softmax),
    KN(sum), KN(sumsq_dev), KN(scale_shift), KN(norm_affine), KN(f16_to_f32),
    KN(q8_to_f32), "avx512"
};
const dc__kernels *dc__kernels_avx512(void) { return &dc__table_avx512; }
#include "simd_end.h"
#else
const dc__kernels *dc__kernels_avx512(void) { return NULL; }
#endif
