/* bench/bench.h - what the bench programs share. */
#ifndef DC_BENCH_H
#define DC_BENCH_H

#include "../nn/nn.h"

/* n floats in [-0.5, 0.5) from a fixed linear congruential sequence, so that
   every run times the same operands; NULL when the allocation fails */
static inline float *randv(size_t n, unsigned seed)
{
    float *p = dc__aligned_alloc(n * 4);
    for (size_t i = 0; p && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) / (float)(1u << 24) - 0.5f;
    }
    return p;
}

#endif
