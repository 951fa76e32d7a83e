#define _POSIX_C_SOURCE 200809L
/* tests/test_kernels.c - every SIMD kernel against its scalar twin, on
   every instruction set this CPU runs, at lengths that exercise the
   leftovers; and f16 conversion against IEEE values. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

static const size_t lengths[] = {0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 257, 1000, 4099};
#define NLEN (sizeof lengths / sizeof lengths[0])
#define MAXN 4099

/* deterministic inputs in [-lo, hi], with a few exact zeros and extremes */
static void fill(float *x, size_t n, float span, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = span * ((float)(seed >> 8) / (float)(1u << 24) * 2.0f - 1.0f);
    }
    if (n > 3) x[1] = 0.0f, x[2] = -span, x[3] = span;
}

typedef void (*unary_fn)(float *, const float *, size_t);

static void compare_unary(const dc__kernels *k, const char *what, unary_fn simd, unary_fn ref,
                          float span)
{
    static float x[MAXN], a[MAXN], b[MAXN];
    char name[64];
    for (size_t li = 0; li < NLEN; li++) {
        size_t n = lengths[li];
        fill(x, n, span, (unsigned)n + 7);
        ref(a, x, n);
        simd(b, x, n);
        if (n == MAXN) {
            snprintf(name, sizeof name, "%s %s n=%zu", k->name, what, n);
            t_close(name, b, a, n, DC_TOL_SIMD_ABS, DC_TOL_SIMD_REL);
        } else {
            int ok = 1;
            for (size_t i = 0; i < n; i++)
                ok &= fabs((double)a[i] - b[i]) <= DC_TOL_SIMD_ABS + DC_TOL_SIMD_REL * fabs(a[i]);
            CHECK(ok, "%s %s differs from the scalar twin at n=%zu", k->name, what, n);
        }
    }
}

static void compare_table(const dc__kernels *k)
{
    const dc__kernels *s = dc__kernels_scalar();
    compare_unary(k, "silu", k->silu, s->silu, 20.0f);
    compare_unary(k, "gelu_erf", k->gelu_erf, s->gelu_erf, 9.0f);
    compare_unary(k, "gelu_tanh", k->gelu_tanh, s->gelu_tanh, 9.0f);
    compare_unary(k, "quick_gelu", k->quick_gelu, s->quick_gelu, 20.0f);

    static float x[MAXN], x2[MAXN], a[MAXN], b[MAXN], g[MAXN], bb[MAXN];
    static uint16_t h[MAXN];
    static int8_t q[MAXN];
    for (size_t li = 0; li < NLEN; li++) {
        size_t n = lengths[li];
        fill(x, n, 5.0f, 11u + (unsigned)n);
        fill(x2, n, 5.0f, 99u + (unsigned)n);
        fill(g, n, 1.0f, 5u);
        fill(bb, n, 1.0f, 6u);

        s->add(a, x, x2, n);
        k->add(b, x, x2, n);
        CHECK(!memcmp(a, b, n * 4), "%s add differs at n=%zu", k->name, n);

        double rs = s->sum(x, n), ks = k->sum(x, n);
        CHECK(fabs(rs - ks) <= 1e-5 * (1 + fabs(rs)) + 1e-6 * n, "%s sum %g vs %g at n=%zu",
              k->name, ks, rs, n);
        rs = s->sumsq_dev(x, n, 0.3f);
        ks = k->sumsq_dev(x, n, 0.3f);
        CHECK(fabs(rs - ks) <= 1e-5 * (1 + fabs(rs)), "%s sumsq_dev %g vs %g at n=%zu", k->name,
              ks, rs, n);

        s->scale_shift(a, x, n, 1.5f, -0.25f);
        k->scale_shift(b, x, n, 1.5f, -0.25f);
        for (size_t i = 0; i < n; i++)
            CHECK(fabsf(a[i] - b[i]) <= 1e-6f * (1 + fabsf(a[i])), "%s scale_shift n=%zu i=%zu",
                  k->name, n, i);
        s->norm_affine(a, x, n, 0.1f, 2.0f, g, bb);
        k->norm_affine(b, x, n, 0.1f, 2.0f, g, bb);
        for (size_t i = 0; i < n; i++)
            CHECK(fabsf(a[i] - b[i]) <= 1e-6f * (1 + fabsf(a[i])), "%s norm_affine n=%zu i=%zu",
                  k->name, n, i);
        s->norm_affine(a, x, n, 0.1f, 2.0f, NULL, NULL);
        k->norm_affine(b, x, n, 0.1f, 2.0f, NULL, NULL);
        for (size_t i = 0; i < n; i++)
            CHECK(fabsf(a[i] - b[i]) <= 1e-6f * (1 + fabsf(a[i])), "%s norm n=%zu i=%zu",
                  k->name, n, i);

        fill(a, n, 30.0f, 3u + (unsigned)n);
        memcpy(b, a, n * 4);
        s->softmax(a, n);
        k->softmax(b, n);
        for (size_t i = 0; i < n; i++)
            CHECK(fabsf(a[i] - b[i]) <= 1e-6f * (1 + a[i]) + 1e-9f, "%s softmax n=%zu i=%zu: %g vs %g",
                  k->name, n, i, b[i], a[i]);

        for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i * 2654435761u >> 16) & 0x7bff;
        s->f16_to_f32(a, h, n);
        k->f16_to_f32(b, h, n);
        CHECK(!memcmp(a, b, n * 4), "%s f16_to_f32 differs at n=%zu", k->name, n);

        for (size_t i = 0; i < n; i++) q[i] = (int8_t)((int)(i * 37 % 255) - 127);
        s->q8_to_f32(a, q, n, 0.0123f);
        k->q8_to_f32(b, q, n, 0.0123f);
        CHECK(!memcmp(a, b, n * 4), "%s q8_to_f32 differs at n=%zu", k->name, n);
    }
}

static void avx512_kernels_should_match_their_scalar_twins(void)
{
    const dc__kernels *k = dc__kernels_avx512();
    if (!k) SKIP("a PORTABLE=1 or non-x86 build has no AVX-512 kernels");
    if (strcmp(dc__cpu_level(), "avx512")) SKIP("this CPU lacks AVX-512 (F, BW, DQ and VL, with FMA)");
    compare_table(k);
}

static void avx2_kernels_should_match_their_scalar_twins(void)
{
    const dc__kernels *k = dc__kernels_avx2();
    if (!k) SKIP("a PORTABLE=1 or non-x86 build has no AVX2 kernels");
    if (strcmp(dc__cpu_level(), "avx512") && strcmp(dc__cpu_level(), "avx2"))
        SKIP("this CPU lacks AVX2 with FMA");
    compare_table(k);
}

static void neon_kernels_should_match_their_scalar_twins(void)
{
    const dc__kernels *k = dc__kernels_neon();
    if (!k)
        SKIP("NEON kernels need an aarch64 build (this is another CPU, or PORTABLE=1); "
             "tools/arm64_test.sh runs them under qemu");
    compare_table(k);
}

static void kernel_choice_should_honour_dc_kernels_scalar(void)
{
    setenv("DC_KERNELS", "scalar", 1);
    CHECK(!strcmp(dc__kern()->name, "scalar"), "DC_KERNELS=scalar gave %s", dc__kern()->name);
    unsetenv("DC_KERNELS");
#ifdef DC_PORTABLE
    CHECK(!strcmp(dc__kern()->name, "scalar"), "PORTABLE build chose %s", dc__kern()->name);
#endif
}

static void f16_should_round_trip_every_half(void)
{
    int bad = 0;
    for (uint32_t v = 0; v < 65536; v++) {
        uint16_t h = (uint16_t)v;
        int is_nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        float f = dc__f16_to_f32(h);
        if (is_nan) bad += f == f;
        else bad += dc__f32_to_f16(f) != h;
    }
    CHECK(bad == 0, "%d halves did not round trip", bad);
}

static void f16_should_round_to_nearest_even(void)
{
    CHECK(dc__f32_to_f16(1.0f) == 0x3c00, "1.0");
    CHECK(dc__f32_to_f16(-2.0f) == 0xc000, "-2.0");
    CHECK(dc__f32_to_f16(65504.0f) == 0x7bff, "max half");
    CHECK(dc__f32_to_f16(65520.0f) == 0x7c00, "65520 rounds to inf");
    CHECK(dc__f32_to_f16(65519.0f) == 0x7bff, "65519 rounds to max");
    CHECK(dc__f32_to_f16(ldexpf(1, -24)) == 0x0001, "smallest subnormal");
    CHECK(dc__f32_to_f16(ldexpf(1, -25)) == 0x0000, "half of it: ties to even (0)");
    CHECK(dc__f32_to_f16(ldexpf(3, -25)) == 0x0002, "1.5 subnormal steps: ties to even (2)");
    CHECK(dc__f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00, "1 + half ulp ties to even");
    CHECK(dc__f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02, "1 + 1.5 ulp ties to even");
    CHECK(dc__f16_to_f32(0x0001) == ldexpf(1, -24), "decode smallest subnormal");
    CHECK(dc__f16_to_f32(0x3555) == 0.333251953125f, "decode 1/3");
}

void suite_kernels(void)
{
    RUN(avx512_kernels_should_match_their_scalar_twins);
    RUN(avx2_kernels_should_match_their_scalar_twins);
    RUN(neon_kernels_should_match_their_scalar_twins);
    RUN(kernel_choice_should_honour_dc_kernels_scalar);
    RUN(f16_should_round_trip_every_half);
    RUN(f16_should_round_to_nearest_even);
}
