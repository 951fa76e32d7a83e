/* nn/simd_end.h - forgets nn/simd.h's vocabulary, so the next instruction
   set can define it afresh (the single-file build holds them all). */
#undef DC_SIMD_AVX512
#undef DC_SIMD_AVX2
#undef DC_SIMD_NEON
#undef VW
#undef vf
#undef vi
#undef DC_TARGET
#undef vld
#undef vst
#undef vset
#undef vadd
#undef vsub
#undef vmul
#undef vdiv
#undef vfma
#undef vmax
#undef vmin
#undef vround_i
#undef vi_to_f
#undef vpow2_i
#undef vsel_ge0
#undef vhsum
#undef vhmax
#undef vld_f16
#undef vld_q8
#undef KN
