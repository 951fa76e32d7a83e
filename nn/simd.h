/* nn/simd.h - the only place dc names SIMD intrinsics.

   A small vocabulary of vector helpers (vf = a vector of VW floats) per
   instruction set. nn/kernels_vec.h writes each kernel once in this
   vocabulary; nn/kernels_avx512.c, nn/kernels_avx2.c and nn/kernels_neon.c
   instantiate it, one instruction set each; nn/kernels.c holds the scalar
   reference twins and picks the table. x86 variants are compiled with
   function target attributes and chosen at run time by cpuid, so one
   binary runs the best kernels on any x86-64; aarch64 always has NEON.

   Define DC_SIMD_AVX512, DC_SIMD_AVX2 or DC_SIMD_NEON before including,
   and include nn/simd_end.h after the kernels, so that the single-file
   build can hold several instruction sets in one translation unit (hence
   the vector types: one typedef name per instruction set, vf and vi
   macros for whichever is current). */

#if defined(DC_SIMD_AVX512)
#include <immintrin.h>
#define VW 16
#define DC_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
typedef __m512 dc__vf_avx512;
typedef __m512i dc__vi_avx512;
#define vf dc__vf_avx512
#define vi dc__vi_avx512
#define vld(p) _mm512_loadu_ps(p)
#define vst(p, v) _mm512_storeu_ps((p), (v))
#define vset(s) _mm512_set1_ps(s)
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vdiv(a, b) _mm512_div_ps(a, b)
#define vfma(a, b, c) _mm512_fmadd_ps(a, b, c)      /* a*b + c */
#define vmax(a, b) _mm512_max_ps(a, b)
#define vmin(a, b) _mm512_min_ps(a, b)
#define vround_i(a) _mm512_cvt_roundps_epi32(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define vi_to_f(i) _mm512_cvtepi32_ps(i)
#define vpow2_i(i) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(i, _mm512_set1_epi32(127)), 23))
#define vsel_ge0(u, a, b) _mm512_mask_blend_ps(_mm512_cmp_ps_mask(u, _mm512_setzero_ps(), _CMP_GE_OQ), b, a)
#define vhsum(v) _mm512_reduce_add_ps(v)
#define vhmax(v) _mm512_reduce_max_ps(v)
#define vld_f16(p) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p)))
#define vld_q8(p) _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p))))

#elif defined(DC_SIMD_AVX2)
#include <immintrin.h>
#define VW 8
#define DC_TARGET __attribute__((target("avx2,fma,f16c")))
typedef __m256 dc__vf_avx2;
typedef __m256i dc__vi_avx2;
#define vf dc__vf_avx2
#define vi dc__vi_avx2
#define vld(p) _mm256_loadu_ps(p)
#define vst(p, v) _mm256_storeu_ps((p), (v))
#define vset(s) _mm256_set1_ps(s)
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vdiv(a, b) _mm256_div_ps(a, b)
#define vfma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vmax(a, b) _mm256_max_ps(a, b)
#define vmin(a, b) _mm256_min_ps(a, b)
#define vround_i(a) _mm256_cvtps_epi32(a)            /* current mode: nearest */
#define vi_to_f(i) _mm256_cvtepi32_ps(i)
#define vpow2_i(i) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(i, _mm256_set1_epi32(127)), 23))
#define vsel_ge0(u, a, b) _mm256_blendv_ps(b, a, _mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GE_OQ))
#define vld_f16(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))
#define vld_q8(p) _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p))))
#define vhsum(v) dc__avx2_hsum(v)
#define vhmax(v) dc__avx2_hmax(v)
DC_TARGET static inline float dc__avx2_hsum(vf v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
DC_TARGET static inline float dc__avx2_hmax(vf v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#elif defined(DC_SIMD_NEON)
#include <arm_neon.h>
#define VW 4
#define DC_TARGET
typedef float32x4_t dc__vf_neon;
typedef int32x4_t dc__vi_neon;
#define vf dc__vf_neon
#define vi dc__vi_neon
#define vld(p) vld1q_f32(p)
#define vst(p, v) vst1q_f32((p), (v))
#define vset(s) vdupq_n_f32(s)
#define vadd(a, b) vaddq_f32(a, b)
#define vsub(a, b) vsubq_f32(a, b)
#define vmul(a, b) vmulq_f32(a, b)
#define vdiv(a, b) vdivq_f32(a, b)
#define vfma(a, b, c) vfmaq_f32(c, a, b)
#define vmax(a, b) vmaxq_f32(a, b)
#define vmin(a, b) vminq_f32(a, b)
#define vround_i(a) vcvtnq_s32_f32(a)
#define vi_to_f(i) vcvtq_f32_s32(i)
#define vpow2_i(i) vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(i, vdupq_n_s32(127)), 23))
#define vsel_ge0(u, a, b) vbslq_f32(vcgeq_f32(u, vdupq_n_f32(0.0f)), a, b)
#define vhsum(v) vaddvq_f32(v)
#define vhmax(v) vmaxvq_f32(v)
#define vld_f16(p) vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)))
/* 4 int8 -> 4 floats, loading exactly 4 bytes (never past the row) */
#define vld_q8(p) dc__neon_ld_q8(p)
static inline vf dc__neon_ld_q8(const int8_t *p)
{
    int32_t w;
    memcpy(&w, p, 4);
    int8x8_t b = vreinterpret_s8_s32(vdup_n_s32(w));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(vmovl_s8(b))));
}
#endif
