/* tests/test_q8.c - the int8 product (nn/q8.c and its variants).

   Integer accumulation is exact, so every variant's int32 sums must equal
   the scalar twin's bit for bit, and the twin's a plain triple loop. Each
   variant runs natively where the CPU has its unit, else (x86) compiled
   through SIMDe (tests/q8_simde.c); each test prints how it ran: native,
   simde or qemu (tools/arm64_test.sh sets DC_TEST_EMULATOR=qemu). The float
   results are checked twice: to the last bit against the quantized inputs
   multiplied here, and against a double-precision product of the
   unquantized inputs within the bound quantization allows. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include "test.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const dc__q8variant *dc__q8_avx512vnni_simde(void);
const dc__q8variant *dc__q8_avxvnni_simde(void);
const dc__q8variant *dc__q8_avx2_simde(void);

static uint32_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* s8 values in [-127, 127]: mode 0 uniform, 1 only -127 and 127, 2 only 127
   (255 on the u8 side of vpdpbusd), 3 only -127 */
static void fill_s8(int8_t *p, size_t n, int mode)
{
    for (size_t i = 0; i < n; i++) {
        int v = mode == 0 ? (int)(rnd() % 255) - 127 : mode == 1 ? (rnd() & 1 ? 127 : -127)
                : mode == 2 ? 127 : -127;
        p[i] = (int8_t)v;
    }
}

static void triple_loop(int32_t *c, const int8_t *a, const int8_t *bt, int M, int N, int K)
{
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            int64_t s = 0;
            for (int k = 0; k < K; k++) s += (int64_t)a[(size_t)m * K + k] * bt[(size_t)n * K + k];
            c[(size_t)m * N + n] = (int32_t)s;
        }
}

/* (M, N, K) covering every tail: 1, primes, around every MR (4, 6, 8) and
   NR (4, 8, 12, 16, 64) and around the K block (256) */
static const int Ms[] = {1, 2, 3, 5, 7, 8, 9, 13, 24, 31};
static const int Ns[] = {1, 2, 3, 5, 11, 16, 17, 47, 48, 49, 63, 64, 65, 97, 128, 131};
static const int Ks[] = {1, 2, 3, 4, 5, 7, 8, 13, 63, 255, 256, 257, 1031};
#define COUNT(a) ((int)(sizeof a / sizeof *a))

/* v's sums against `ref` (the scalar twin, or the triple loop when v is
   the twin) on one problem; returns 1 when equal */
static int compare_one(const dc__q8variant *v, int M, int N, int K, int mode, int twin_vs_loop)
{
    int8_t *a = malloc((size_t)M * K), *bt = malloc((size_t)N * K);
    int32_t *got = malloc((size_t)M * N * 4), *want = malloc((size_t)M * N * 4);
    int ok = 0;
    if (!a || !bt || !got || !want) {
        CHECK(0, "out of memory");
        goto done;
    }
    fill_s8(a, (size_t)M * K, mode == 4 ? 1 : mode);
    fill_s8(bt, (size_t)N * K, mode == 4 ? 2 : mode); /* mode 4: +-127 times u8 255 */
    dc_error e;
    if (dc__q8_int_product(got, a, bt, M, N, K, v, &e)) {
        CHECK(0, "%s: %s", v->name, e.msg);
        goto done;
    }
    if (twin_vs_loop)
        triple_loop(want, a, bt, M, N, K);
    else if (dc__q8_int_product(want, a, bt, M, N, K, dc__q8_scalar(), &e)) {
        CHECK(0, "scalar: %s", e.msg);
        goto done;
    }
    ok = 1;
    for (int i = 0; i < M * N && ok; i++)
        if (got[i] != want[i]) {
            CHECK(0, "%s: M=%d N=%d K=%d mode %d: sum %d at (%d, %d), %s %d", v->name, M, N, K,
                  mode, got[i], i / N, i % N, twin_vs_loop ? "triple loop" : "scalar twin", want[i]);
            ok = 0;
        }
done:
    free(a);
    free(bt);
    free(got);
    free(want);
    return ok;
}

/* every size of the grid, each input mode, SD 1.5's largest K and the
   largest K allowed at the extremes (the int32 bound itself) */
static void compare_sums(const dc__q8variant *v, int twin_vs_loop)
{
    rng_state = 7;
    int runs = 0, good = 0;
    for (int i = 0; i < COUNT(Ms); i++)
        for (int j = 0; j < COUNT(Ns); j++) {
            int K = Ks[(i * 7 + j * 3) % COUNT(Ks)];
            int mode = (i + j) % 5;
            runs++;
            good += compare_one(v, Ms[i], Ns[j], K, mode, twin_vs_loop);
        }
    for (int mode = 0; mode < 5; mode++) {
        runs++;
        good += compare_one(v, 9, 49, 23040, mode, twin_vs_loop);
    }
    for (int mode = 1; mode < 5; mode++) {
        runs++;
        good += compare_one(v, 3, 17, DC_Q8_MAX_K, mode, twin_vs_loop);
    }
    printf("  %s: %d of %d products equal to the %s\n", v->name, good, runs,
           twin_vs_loop ? "triple loop" : "scalar twin");
}

static const char *emulator(void)
{
    const char *e = getenv("DC_TEST_EMULATOR");
    return e && *e ? e : "native";
}

static void check_native(const dc__q8variant *v, const char *what)
{
    if (!v) SKIP("%s: not compiled in this build (another architecture, or PORTABLE)", what);
    if (!v->runs_here()) SKIP("%s: this CPU lacks %s (the simde test runs its code)", what, v->units);
    printf("  ran: %s (%s, tile %dx%d)\n", emulator(), v->units, v->mr, v->nr);
    compare_sums(v, 0);
}

/* Under an emulator (arm64 under qemu) the SIMDe copies of the x86 kernels
   would run x86 code translated twice, for minutes, to test what the x86
   suites already test natively and through SIMDe. */
static int under_emulator(void)
{
    return strcmp(emulator(), "native") != 0;
}

static void check_simde(const dc__q8variant *v, const char *what)
{
    if (!v) SKIP("%s: SIMDe (libsimde-dev) is not installed: `make setup` installs it", what);
    if (under_emulator())
        SKIP("%s: the SIMDe copy of an x86 kernel is tested by the x86 suites, not under %s", what,
             emulator());
    printf("  ran: simde (%s, tile %dx%d)\n", v->units, v->mr, v->nr);
    compare_sums(v, 0);
}

static void int8_scalar_twin_should_equal_a_triple_loop(void)
{
    printf("  ran: %s\n", emulator());
    compare_sums(dc__q8_scalar(), 1);
}
static void int8_avx512vnni_native_should_equal_the_scalar_twin(void) { check_native(dc__q8_avx512vnni(), "avx512vnni"); }
static void int8_avx512vnni_simde_should_equal_the_scalar_twin(void) { check_simde(dc__q8_avx512vnni_simde(), "avx512vnni"); }
static void int8_avxvnni_native_should_equal_the_scalar_twin(void) { check_native(dc__q8_avxvnni(), "avxvnni"); }
static void int8_avxvnni_simde_should_equal_the_scalar_twin(void) { check_simde(dc__q8_avxvnni_simde(), "avxvnni"); }
static void int8_avx2_native_should_equal_the_scalar_twin(void) { check_native(dc__q8_avx2(), "avx2"); }
static void int8_avx2_simde_should_equal_the_scalar_twin(void) { check_simde(dc__q8_avx2_simde(), "avx2"); }
static void int8_neon_should_equal_the_scalar_twin(void) { check_native(dc__q8_neon(), "neon"); }
static void int8_neondot_should_equal_the_scalar_twin(void) { check_native(dc__q8_neondot(), "neondot"); }

static void int8_quantization_should_round_trip(void)
{
    enum { n = 1000 };
    float x[n];
    int8_t q[n];
    rng_state = 3;
    for (int t = 0; t < 20; t++) {
        float span = ldexpf(1.0f, t - 10);
        for (int i = 0; i < n; i++) x[i] = span * ((float)(rnd() % 20001) / 10000.0f - 1.0f);
        x[t] = t & 1 ? -span * 1.5f : span * 1.5f; /* the maximum, either sign */
        float s = dc__q8_quantize_row(q, x, n);
        CHECK(s == fabsf(x[t]) / 127.0f, "scale %g for max %g", s, x[t]);
        CHECK(q[t] == (t & 1 ? -127 : 127), "the maximum became %d", q[t]);
        int bad = 0;
        for (int i = 0; i < n; i++) {
            bad += q[i] < -127;
            /* rounding to nearest: within half a step (and a float's error) */
            bad += fabs((double)q[i] * s - x[i]) > 0.5 * s * (1 + 1e-5);
        }
        CHECK(bad == 0, "span %g: %d values out of half a step (or -128)", span, bad);
    }
    for (int i = 0; i < n; i++) x[i] = 0.0f;
    q[0] = 5;
    CHECK(dc__q8_quantize_row(q, x, n) == 0.0f && q[0] == 0, "a zero row has scale 0 and q 0");
    x[3] = INFINITY;
    float s = dc__q8_quantize_row(q, x, n);
    CHECK(s != s, "an infinite value gives a NaN scale (got %g)", s);
}

static void int8_packing_should_refuse_bad_weights(void)
{
    dc__q8mat q;
    dc_error e;
    float w[8] = {1, 2, 3, 4, 5, NAN, 7, 8};
    CHECK(dc__q8mat_pack(&q, w, 2, 4, dc__q8_scalar(), &e) == DC_ERR_FORMAT &&
              strstr(e.msg, "row 1"),
          "a NaN weight: %s", e.msg);
    int8_t qw[4] = {1, -128, 3, 4};
    CHECK(dc__q8mat_pack_q8(&q, qw, NULL, 1, 4, dc__q8_scalar(), &e) == DC_ERR_FORMAT &&
              strstr(e.msg, "-128"),
          "-128: %s", e.msg);
    CHECK(dc__q8mat_pack(&q, w, 1, DC_Q8_MAX_K + 1, dc__q8_scalar(), &e) == DC_ERR_INVALID &&
              strstr(e.msg, "overflow"),
          "K too large: %s", e.msg);
    CHECK(dc__q8mat_pack(&q, w, 0, 4, dc__q8_scalar(), &e) == DC_ERR_INVALID, "M = 0");
}

/* ---- the float entry points ---- */

typedef struct {
    const dc__q8variant *v;
    const char *how;
} ran_variant;

/* every variant this run can execute (native and SIMDe) */
static int runnable(ran_variant *out, int cap)
{
    const dc__q8variant *nat[] = {dc__q8_scalar(), dc__q8_avx512vnni(), dc__q8_avxvnni(),
                                  dc__q8_avx2(), dc__q8_neondot(), dc__q8_neon()};
    const dc__q8variant *sim[] = {dc__q8_avx512vnni_simde(), dc__q8_avxvnni_simde(),
                                  dc__q8_avx2_simde()};
    int n = 0;
    for (int i = 0; i < COUNT(nat); i++)
        if (nat[i] && nat[i]->runs_here() && n < cap) out[n++] = (ran_variant){nat[i], emulator()};
    for (int i = 0; i < COUNT(sim); i++)
        if (sim[i] && !under_emulator() && n < cap) out[n++] = (ran_variant){sim[i], "simde"};
    return n;
}

/* y = W . X (+ b) from the quantized values, multiplied here: what every
   variant must give to the last bit. X[n*cs + k*ks]; y[m*ym + n*yn]. */
static void quantized_reference(float *y, size_t ym, size_t yn, const float *W, const float *X,
                                size_t cs, size_t ks, const float *b, int M, int N, int K)
{
    int8_t *qw = malloc((size_t)M * K), *qx = malloc((size_t)N * K);
    float *sw = malloc((size_t)M * 4), *sx = malloc((size_t)N * 4), *col = malloc((size_t)K * 4);
    int32_t *acc = malloc((size_t)M * N * 4);
    if (!qw || !qx || !sw || !sx || !col || !acc) {
        CHECK(0, "out of memory");
        M = N = 0;
    }
    for (int m = 0; m < M; m++) sw[m] = dc__q8_quantize_row(qw + (size_t)m * K, W + (size_t)m * K, K);
    for (int n = 0; n < N; n++) {
        for (int k = 0; k < K; k++) col[k] = X[n * cs + k * ks];
        sx[n] = dc__q8_quantize_row(qx + (size_t)n * K, col, K);
    }
    if (M) triple_loop(acc, qw, qx, M, N, K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++)
            y[m * ym + n * yn] = dc__q8_dequant(acc[(size_t)m * N + n], sw[m], sx[n], b ? b[m] : 0.0f);
    free(qw);
    free(qx);
    free(sw);
    free(sx);
    free(col);
    free(acc);
}

/* The error quantization allows: with w = sw*qw + ew, |ew| <= sw/2, and
   x = sx*qx + ex, |ex| <= sx/2, sum_k w x - sum_k sw qw sx qx =
   sum_k (ew x + sw qw ex) and |sw qw| <= |w| + sw/2, so the error is at
   most sum_k (sw/2 |x| + sx/2 |w| + sw sx/4); the f32 scales and epilogue
   add a few roundings (1e-6 of sum_k |w x| + |b| + that bound). Checks y against the double product. */
static int within_bound(const float *y, size_t ym, size_t yn, const float *W, const float *X,
                        size_t cs, size_t ks, const float *b, int M, int N, int K, double *worst)
{
    int bad = 0;
    for (int m = 0; m < M; m++) {
        double wmax = 0;
        for (int k = 0; k < K; k++) wmax = fmax(wmax, fabs(W[(size_t)m * K + k]));
        double sw = wmax / 127;
        for (int n = 0; n < N; n++) {
            double xmax = 0, ref = b ? b[m] : 0, bound = 0, sum_abs = fabs(ref);
            for (int k = 0; k < K; k++) xmax = fmax(xmax, fabs(X[n * cs + k * ks]));
            double sx = xmax / 127;
            for (int k = 0; k < K; k++) {
                double w = W[(size_t)m * K + k], x = X[n * cs + k * ks];
                ref += w * x;
                sum_abs += fabs(w * x);
                bound += sw / 2 * fabs(x) + sx / 2 * fabs(w) + sw * sx / 4;
            }
            double got = y[m * ym + n * yn], err = fabs(got - ref);
            if (!isfinite(ref)) { /* a non-finite input gives NaN, as in f32 */
                bad += got == got;
                continue;
            }
            bound += 1e-6 * (sum_abs + bound);
            if (!(err <= bound)) bad++;
            if (bound > 0 && err / bound > *worst) *worst = err / bound;
        }
    }
    return bad;
}

static float *random_floats(size_t n, float span)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n && p; i++) p[i] = span * ((float)(rnd() % 20001) / 10000.0f - 1.0f);
    return p;
}

static void entry_points(const dc__q8variant *v, const char *how, int M, int K, int N)
{
    dc__q8mat q;
    dc_error e;
    float *W = random_floats((size_t)M * K, 0.5f), *b = random_floats((size_t)M, 1.0f);
    int ldx = N + 5, ldy = N + 3;
    float *X = random_floats((size_t)K * ldx, 2.0f);
    for (int m = 0; m < M; m += 7) W[(size_t)m * K + m % K] = 3.0f; /* a few outliers */
    if (N > 5 && K > 2) X[2 * ldx + 5] = INFINITY; /* a non-finite activation */
    float *y = calloc((size_t)M * ldy, 4), *want = calloc((size_t)M * ldy, 4);
    float *yr = calloc((size_t)M * N, 4), *wantr = calloc((size_t)M * N, 4);
    if (dc__q8mat_pack(&q, W, M, K, v, &e)) {
        CHECK(0, "%s: %s", v->name, e.msg);
        return;
    }
    void *scratch = dc__aligned_alloc(dc__q8_scratch_bytes(&q, N));
    double worst = 0;

    /* the conv seam: X [K][ldx], y [M][ldy] */
    dc__q8_matmul_cols(y, ldy, &q, X, ldx, N, scratch);
    quantized_reference(want, (size_t)ldy, 1, W, X, 1, (size_t)ldx, NULL, M, N, K);
    int diff = 0;
    for (int m = 0; m < M; m++)
        diff += memcmp(y + (size_t)m * ldy, want + (size_t)m * ldy, (size_t)N * 4) != 0;
    CHECK(diff == 0, "%s (%s) cols %dx%dx%d: %d rows differ from the quantized reference", v->name,
          how, M, K, N, diff);
    int bad = within_bound(y, (size_t)ldy, 1, W, X, 1, (size_t)ldx, NULL, M, N, K, &worst);
    CHECK(bad == 0, "%s cols: %d values outside the quantization bound", v->name, bad);

    /* the linear seam: x [N][K] (X read as rows of K), y [N][M], with bias */
    dc__q8_matmul_rows(yr, X, &q, b, N, scratch);
    quantized_reference(wantr, 1, (size_t)M, W, X, (size_t)K, 1, b, M, N, K);
    CHECK(!memcmp(yr, wantr, (size_t)M * N * 4), "%s (%s) rows %dx%dx%d differ from the quantized reference",
          v->name, how, M, K, N);
    bad = within_bound(yr, 1, (size_t)M, W, X, (size_t)K, 1, b, M, N, K, &worst);
    CHECK(bad == 0, "%s rows: %d values outside the quantization bound", v->name, bad);

    /* inside a parallel region: each thread its own columns and scratch */
    memset(y, 0, (size_t)M * ldy * 4);
    int parts = 3, each = (N + parts - 1) / parts, fail = 0;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : fail)
#endif
    for (int p = 0; p < parts; p++) {
        int n0 = p * each, nn = N - n0 < each ? N - n0 : each;
        if (nn <= 0) continue;
        void *s = dc__aligned_alloc(dc__q8_scratch_bytes(&q, nn));
        if (!s) {
            fail++;
            continue;
        }
        dc__q8_matmul_cols(y + n0, ldy, &q, X + n0, ldx, nn, s);
        dc__aligned_free(s);
    }
    diff = fail;
    for (int m = 0; m < M; m++)
        diff += memcmp(y + (size_t)m * ldy, want + (size_t)m * ldy, (size_t)N * 4) != 0;
    CHECK(diff == 0, "%s: called per thread inside a parallel region, %d rows differ", v->name, diff);
    printf("  %s (%s) %dx%dx%d: bit-equal to the quantized reference; error at most %.2f of the bound\n",
           v->name, how, M, K, N, worst);

    dc__aligned_free(scratch);
    dc__q8mat_free(&q);
    free(W);
    free(b);
    free(X);
    free(y);
    free(want);
    free(yr);
    free(wantr);
}

static void int8_entry_points_should_match_references(void)
{
    ran_variant list[12];
    int n = runnable(list, 12);
    rng_state = 11;
    for (int i = 0; i < n; i++) {
        entry_points(list[i].v, list[i].how, 37, 300, 70);
        entry_points(list[i].v, list[i].how, 20, 77, 261);  /* two blocks of columns */
        entry_points(list[i].v, list[i].how, 1, 1, 1);
        if (strcmp(list[i].how, "simde") && list[i].v != dc__q8_scalar())
            entry_points(list[i].v, list[i].how, 64, 600, 300); /* big enough to share among threads */
    }
}

/* ---- the self-check and the choice ---- */

static void kernel_broken(int32_t *c, int ldc, const int8_t *w, const uint8_t *x, int kg,
                          int accumulate)
{
    dc__q8_scalar()->kernel(c, ldc, w, x, kg, accumulate);
    if (kg < 64) c[ldc + 3] += 1; /* wrong only on the last K block: a tail bug */
}
static int always_runs(void) { return 1; }

static void int8_self_check_should_catch_a_wrong_kernel_and_pick_a_good_one(void)
{
    dc__q8variant broken = *dc__q8_scalar();
    broken.name = "broken";
    broken.kernel = kernel_broken;
    broken.runs_here = always_runs;
    char why[300];
    CHECK(!dc__q8_self_check(&broken, why, sizeof why) && strstr(why, "self-check failed"),
          "a wrong kernel passed its self-check: %s", why);
    CHECK(dc__q8_self_check(dc__q8_scalar(), why, sizeof why), "scalar: %s", why);
    ran_variant list[12];
    int n = runnable(list, 12);
    for (int i = 0; i < n; i++)
        CHECK(dc__q8_self_check(list[i].v, why, sizeof why), "%s (%s): %s", list[i].v->name,
              list[i].how, why);
    const dc__q8variant *best = dc__q8_best(why, sizeof why);
    printf("  best: %s (%s)\n", dc__q8_name(best), why);
    if (best) CHECK(best->runs_here(), "best %s does not run here", best->name);
    /* arm64_test.sh says whether the emulated CPU has sdot */
    const char *dot = getenv("DC_TEST_EXPECT_DOT");
    if (dot && *dot && dc__q8_neondot()) {
        CHECK(dc__q8_neondot()->runs_here() == (*dot == '1'), "sdot detected %d, expected %s",
              dc__q8_neondot()->runs_here(), dot);
        CHECK(best && !strcmp(best->name, *dot == '1' ? "neondot" : "neon"), "best is %s with sdot=%s",
              dc__q8_name(best), dot);
    }
#if (defined(__x86_64__) || defined(__i386__)) && !defined(DC_PORTABLE)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) CHECK(best != NULL, "an AVX2 CPU has an int8 variant");
#endif
#ifdef DC_PORTABLE
    CHECK(best == NULL, "a PORTABLE build has no SIMD variant, got %s", dc__q8_name(best));
#endif
}

/* DC_INT8_VARIANT puts a variant first for timing; one that does not run
   here, or a name no variant has, leaves the automatic choice */
static void int8_variant_should_follow_DC_INT8_VARIANT_where_it_runs(void)
{
    const char *before = getenv("DC_INT8_VARIANT");
    char saved[64] = "";
    if (before) snprintf(saved, sizeof saved, "%s", before);
    unsetenv("DC_INT8_VARIANT");
    char why[300];
    const dc__q8variant *automatic = dc__q8_best(why, sizeof why);
    const dc__q8variant *list[8];
    dc__q8_candidates(list, 8);
    for (int i = 0; list[i]; i++) {
        setenv("DC_INT8_VARIANT", list[i]->name, 1);
        const dc__q8variant *got = dc__q8_best(why, sizeof why);
        if (list[i]->runs_here())
            CHECK(got == list[i], "DC_INT8_VARIANT=%s gave %s (%s)", list[i]->name, dc__q8_name(got), why);
        else
            CHECK(got == automatic, "DC_INT8_VARIANT=%s (not on this CPU) gave %s, automatic %s",
                  list[i]->name, dc__q8_name(got), dc__q8_name(automatic));
    }
    setenv("DC_INT8_VARIANT", "no-such-unit", 1);
    const dc__q8variant *got = dc__q8_best(why, sizeof why);
    CHECK(got == automatic && strstr(why, "no such variant"), "an unknown name gave %s (%s)",
          dc__q8_name(got), why);
    if (before) setenv("DC_INT8_VARIANT", saved, 1);
    else unsetenv("DC_INT8_VARIANT");
}

void suite_q8(void)
{
    RUN(int8_scalar_twin_should_equal_a_triple_loop);
    RUN(int8_avx512vnni_native_should_equal_the_scalar_twin);
    RUN(int8_avx512vnni_simde_should_equal_the_scalar_twin);
    RUN(int8_avxvnni_native_should_equal_the_scalar_twin);
    RUN(int8_avxvnni_simde_should_equal_the_scalar_twin);
    RUN(int8_avx2_native_should_equal_the_scalar_twin);
    RUN(int8_avx2_simde_should_equal_the_scalar_twin);
    RUN(int8_neon_should_equal_the_scalar_twin);
    RUN(int8_neondot_should_equal_the_scalar_twin);
    RUN(int8_quantization_should_round_trip);
    RUN(int8_packing_should_refuse_bad_weights);
    RUN(int8_entry_points_should_match_references);
    RUN(int8_self_check_should_catch_a_wrong_kernel_and_pick_a_good_one);
    RUN(int8_variant_should_follow_DC_INT8_VARIANT_where_it_runs);
}
