/* bench/q8_bench.c - the int8 product alone, next to raw sgemm and the
   vector units' own peaks, in one run.

   First the peaks: register-only loops (12 independent accumulators, no
   memory) of each multiply unit this CPU has: f32 FMA, vpdpbusd (zmm and
   the VEX ymm form), vpmaddubsw + vpmaddwd (what the AVX2 variant needs
   per 32 multiply-adds, before its vpsignb and vpaddd), on arm64 f32 FMA,
   smull + sadalp and sdot; as GMAC/s on one thread. Then, at shapes of the
   SD 1.5 UNet (M = output channels, K = cin*kh*kw, N = pixels; 128 is
   the conv's im2col tile), on 1 thread and on all: raw sgemm (OpenBLAS,
   the kernel it picked is printed), the variant's microkernel alone on
   packed operands, and the whole dc__q8_matmul_cols (quantizing and
   packing the activations, the float epilogue) and dc__q8_matmul_rows
   (the linear seam: tokens as rows), as GMAC/s, best of reps;
   and the int8 unit's peak (its loop, measured again between those, times
   the threads) with the kernel's share of it.

   usage: q8_bench [--quick] [--reps N] [--variant NAME] */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

/* One-thread figures are timed on the thread's CPU clock, so that time the
   (shared, loaded) machine gives to other processes is not counted; with
   more threads, on the wall clock, fastest call of many. */
static clockid_t clock_id = CLOCK_THREAD_CPUTIME_ID;

static double now(void)
{
    struct timespec ts;
    clock_gettime(clock_id, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- peaks: 12 independent accumulators, ITER iterations a call ---- */
#define ITER 200000L
#if (defined(__x86_64__) || defined(__aarch64__)) && !defined(DC_PORTABLE)
/* GMAC/s of the fastest of the calls fn(ITER) made in `secs` seconds */
static double rate(void (*fn)(long), double macs, double secs)
{
    double best = 1e30, t0 = now(), t;
    do {
        double c = now();
        fn(ITER);
        t = now();
        if (t - c < best) best = t - c;
    } while (t - t0 < secs);
    return ITER * 12.0 * macs / best / 1e9;
}

/* a multiply unit's peak loop, whether this CPU has the unit, and the
   multiply-adds one call of its operation does */
typedef struct { const char *name; int ok; void (*fn)(long); double macs; } peak_unit;

static void print_peaks(const peak_unit *p, size_t n)
{
    printf("unit peaks, 1 thread, register-only loop (12 accumulators), thread CPU time:\n");
    for (size_t i = 0; i < n; i++) {
        if (!p[i].ok) {
            printf("  %-26s  not on this CPU\n", p[i].name);
            continue;
        }
        printf("  %-26s %8.1f GMAC/s\n", p[i].name, rate(p[i].fn, p[i].macs, 0.3));
    }
}
#endif

/* The body of a peak function: 12 independent accumulators, each updated by
   OP every iteration, summed with SUM at the end so none is dead code. The
   empty asm keeps them in vector registers (PEAK_REG: "v" on x86, "w" on
   arm64) and stops the compiler from folding the loop. */
#define PEAK_LOOP(T, ZERO, OP, SUM)                                                 \
    T a0 = ZERO, a1 = ZERO, a2 = ZERO, a3 = ZERO, a4 = ZERO, a5 = ZERO, a6 = ZERO, \
      a7 = ZERO, a8 = ZERO, a9 = ZERO, a10 = ZERO, a11 = ZERO;                      \
    for (long i = 0; i < n; i++) {                                                  \
        __asm__ volatile("" : "+" PEAK_REG(a0), "+" PEAK_REG(a1), "+" PEAK_REG(a2),      \
                         "+" PEAK_REG(a3), "+" PEAK_REG(a4), "+" PEAK_REG(a5),          \
                         "+" PEAK_REG(a6), "+" PEAK_REG(a7), "+" PEAK_REG(a8),          \
                         "+" PEAK_REG(a9), "+" PEAK_REG(a10), "+" PEAK_REG(a11));       \
        a0 = OP(a0); a1 = OP(a1); a2 = OP(a2); a3 = OP(a3); a4 = OP(a4); a5 = OP(a5); \
        a6 = OP(a6); a7 = OP(a7); a8 = OP(a8); a9 = OP(a9); a10 = OP(a10); a11 = OP(a11); \
    }                                                                               \
    T s = SUM(SUM(SUM(a0, a1), SUM(a2, a3)), SUM(SUM(a4, a5), SUM(a6, a7)));         \
    s = SUM(s, SUM(SUM(a8, a9), SUM(a10, a11)));                                    \
    volatile T sink = s;                                                            \
    (void)sink;

#if defined(__x86_64__) && !defined(DC_PORTABLE)
#include <immintrin.h>
#define PEAK_REG "v"

__attribute__((target("avx512f,avx512vnni"))) static void peak_dpbusd_zmm(long n)
{
    __m512i x = _mm512_set1_epi8(3), y = _mm512_set1_epi8(-2);
    __asm__ volatile("" : "+v"(x), "+v"(y));
#define OPZ(a) _mm512_dpbusd_epi32(a, x, y)
    PEAK_LOOP(__m512i, _mm512_setzero_si512(), OPZ, _mm512_add_epi32)
#undef OPZ
}
__attribute__((target("avx2,avxvnni"))) static void peak_dpbusd_ymm(long n)
{
    __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2);
    __asm__ volatile("" : "+x"(x), "+x"(y));
#define OPY(a) _mm256_dpbusd_avx_epi32(a, x, y)
    PEAK_LOOP(__m256i, _mm256_setzero_si256(), OPY, _mm256_add_epi32)
#undef OPY
}
/* vpmaddubsw then vpmaddwd: 32 u8 x s8 multiply-adds into 8 int32 (the
   accumulating add is left out, as dpbusd's peak counts no add) */
__attribute__((target("avx2"))) static void peak_maddubs(long n)
{
    __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    __asm__ volatile("" : "+x"(x), "+x"(y), "+x"(one));
#define OPM(a) _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_xor_si256(a, x), y), one)
    PEAK_LOOP(__m256i, _mm256_setzero_si256(), OPM, _mm256_add_epi32)
#undef OPM
}
__attribute__((target("avx512f"))) static void peak_fma_zmm(long n)
{
    __m512 x = _mm512_set1_ps(1.0f), y = _mm512_set1_ps(1e-9f);
    __asm__ volatile("" : "+v"(x), "+v"(y));
#define OPF(a) _mm512_fmadd_ps(a, x, y)
    PEAK_LOOP(__m512, _mm512_setzero_ps(), OPF, _mm512_add_ps)
#undef OPF
}
__attribute__((target("avx2,fma"))) static void peak_fma_ymm(long n)
{
    __m256 x = _mm256_set1_ps(1.0f), y = _mm256_set1_ps(1e-9f);
    __asm__ volatile("" : "+x"(x), "+x"(y));
#define OPG(a) _mm256_fmadd_ps(a, x, y)
    PEAK_LOOP(__m256, _mm256_setzero_ps(), OPG, _mm256_add_ps)
#undef OPG
}
#include <cpuid.h>
static int has_leaf7(int sub, int reg, int bit)
{
    unsigned r[4];
    if (!__get_cpuid_count(7, sub, &r[0], &r[1], &r[2], &r[3])) return 0;
    return (r[reg] >> bit) & 1;
}

/* the int8 unit the chosen variant uses, for the % of peak column */
static double int8_peak(const char *variant)
{
    void (*fn)(long) = !strcmp(variant, "avx512vnni") ? peak_dpbusd_zmm
                       : !strcmp(variant, "avxvnni") ? peak_dpbusd_ymm
                       : !strcmp(variant, "avx2") ? peak_maddubs : NULL;
    double macs = !strcmp(variant, "avx512vnni") ? 64 : 32;
    return fn ? rate(fn, macs, 0.02) : 0;
}

static void peaks(void)
{
    const peak_unit p[] = {
        {"f32 FMA zmm", __builtin_cpu_supports("avx512f"), peak_fma_zmm, 16},
        {"f32 FMA ymm", __builtin_cpu_supports("fma"), peak_fma_ymm, 8},
        {"vpdpbusd zmm", __builtin_cpu_supports("avx512f") && has_leaf7(0, 2, 11), peak_dpbusd_zmm, 64},
        {"vpdpbusd ymm (VEX)", __builtin_cpu_supports("avx2") && has_leaf7(1, 0, 4), peak_dpbusd_ymm, 32},
        {"vpmaddubsw+vpmaddwd ymm", __builtin_cpu_supports("avx2"), peak_maddubs, 32},
    };
    print_peaks(p, sizeof p / sizeof *p);
}
#elif defined(__aarch64__) && !defined(DC_PORTABLE)
#include <arm_neon.h>
#include <sys/auxv.h>
#define PEAK_REG "w"
__attribute__((target("arch=armv8.2-a+dotprod"))) static void peak_sdot(long n)
{
    int8x16_t x = vdupq_n_s8(3), y = vdupq_n_s8(-2);
    __asm__ volatile("" : "+w"(x), "+w"(y));
#define OPD(a) vdotq_s32(a, x, y)
    PEAK_LOOP(int32x4_t, vdupq_n_s32(0), OPD, vaddq_s32)
#undef OPD
}
/* smull + sadalp: 8 multiply-adds */
static void peak_smull(long n)
{
    int8x8_t x = vdup_n_s8(3), y = vdup_n_s8(-2);
    __asm__ volatile("" : "+w"(x), "+w"(y));
#define OPS(a) vpadalq_s16(a, vmull_s8(x, y))
    PEAK_LOOP(int32x4_t, vdupq_n_s32(0), OPS, vaddq_s32)
#undef OPS
}
static void peak_fma(long n)
{
    float32x4_t x = vdupq_n_f32(1.0f), y = vdupq_n_f32(1e-9f);
    __asm__ volatile("" : "+w"(x), "+w"(y));
#define OPF(a) vfmaq_f32(y, a, x)
    PEAK_LOOP(float32x4_t, vdupq_n_f32(0), OPF, vaddq_f32)
#undef OPF
}
static double int8_peak(const char *variant)
{
    void (*fn)(long) = !strcmp(variant, "neondot") ? peak_sdot : !strcmp(variant, "neon") ? peak_smull : NULL;
    double macs = !strcmp(variant, "neondot") ? 16 : 8;
    return fn ? rate(fn, macs, 0.02) : 0;
}

static void peaks(void)
{
    const peak_unit p[] = {
        {"f32 FMA", 1, peak_fma, 4},
        {"smull+sadalp", 1, peak_smull, 8},
        {"sdot", (int)((getauxval(AT_HWCAP) >> 20) & 1), peak_sdot, 16},
    };
    print_peaks(p, sizeof p / sizeof *p);
}
#else
static void peaks(void) { printf("unit peaks: no SIMD in this build\n"); }
static double int8_peak(const char *variant) { (void)variant; return 0; }
#endif

/* ---- the products ---- */

/* the fastest single call of body over at least `secs` seconds: on a
   shared machine the fastest call is the one no other process interrupted */
#define TIME_BEST(secs, best, body)                                          \
    do {                                                                     \
        best = 1e30;                                                         \
        double t0_ = now(), t_;                                              \
        do {                                                                 \
            double c_ = now();                                               \
            body;                                                            \
            t_ = now();                                                      \
            if (t_ - c_ < best) best = t_ - c_;                              \
        } while (t_ - t0_ < (secs));                                         \
    } while (0)

/* the variant's microkernel alone, over W's panels and packed activations
   (every M panel against every N panel, K blocks of 64 groups, as
   nn/q8.c orders them); with threads, over M panels */
static void kernel_only(const dc__q8mat *q, const uint8_t *x, int np, int32_t *c, int threads)
{
    const dc__q8variant *v = q->v;
    int mr = v->mr, nr = v->nr, ldc = np * nr;
    size_t wpanel = (size_t)q->kg * mr * 4, xpanel = (size_t)q->kg * nr * 4;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int p0 = q->panels * t / T, p1 = q->panels * (t + 1) / T;
        for (int g0 = 0; g0 < q->kg; g0 += 64) {
            int gn = q->kg - g0 < 64 ? q->kg - g0 : 64;
            for (int jp = 0; jp < np; jp++)
                for (int p = p0; p < p1; p++)
                    v->kernel(c + (size_t)p * mr * ldc + jp * nr, ldc, q->w + p * wpanel + (size_t)g0 * mr * 4,
                              x + jp * xpanel + (size_t)g0 * nr * 4, gn, g0 > 0);
        }
    }
}

int main(int argc, char **argv)
{
    int quick = 0, reps = 3;
    const char *want = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1, reps = 2;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--variant") && i + 1 < argc) want = argv[++i];
        else {
            fprintf(stderr, "usage: q8_bench [--quick] [--reps N] [--variant NAME]\n");
            return 2;
        }
    }
    char why[400];
    const dc__q8variant *v = dc__q8_best(why, sizeof why);
    if (want) {
        const dc__q8variant *list[8];
        dc__q8_candidates(list, 8);
        v = !strcmp(want, "scalar") ? dc__q8_scalar() : NULL;
        for (int i = 0; list[i]; i++)
            if (!strcmp(list[i]->name, want) && list[i]->runs_here()) v = list[i];
        if (!v) {
            fprintf(stderr, "q8_bench: variant %s is not compiled or not on this CPU\n", want);
            return 2;
        }
    }
    if (!v) {
        printf("q8_bench: no int8 variant: %s\n", why);
        return 1;
    }
    int T = omp_get_max_threads();
    printf("int8 product: variant %s (%s, tile %dx%d); choice: %s\n", v->name, v->units, v->mr,
           v->nr, why);
    printf("cpu %s, openblas core %s, %d threads\n", dc__cpu_level(), openblas_get_corename(), T);
    peaks();

    static const struct { int M, K, N; const char *what; } shapes[] = {
        {320, 2880, 1024, "3x3 conv 320ch, 32x32"},
        {320, 2880, 128, "3x3 conv 320ch, one 128-pixel tile"},
        {640, 5760, 256, "3x3 conv 640ch, 16x16"},
        {1280, 11520, 64, "3x3 conv 1280ch, 8x8"},
        {1280, 1280, 64, "linear 1280, 64 tokens"},
        {2560, 320, 1024, "GEGLU in 320->2560, 1024 tokens"},
    };
    int ns = quick ? 2 : (int)(sizeof shapes / sizeof *shapes);
    printf("\n1 thread: thread CPU time; %d threads: wall clock, fastest call\n", T);
    printf("%-36s %5s %5s %5s %3s %9s %9s %9s %9s %7s %8s %6s\n", "shape (GMAC/s, best of reps)", "M",
           "K", "N", "thr", "sgemm", "kernel", "q8 cols", "q8 rows", "cols/sg", "peak*thr", "kernel");
    for (int s = 0; s < ns; s++) {
        int M = shapes[s].M, K = shapes[s].K, N = shapes[s].N;
        float *W = randv((size_t)M * K, 1), *X = randv((size_t)K * N, 2), *Y = randv((size_t)M * N, 3);
        dc__q8mat q;
        dc_error e;
        if (!W || !X || !Y || dc__q8mat_pack(&q, W, M, K, v, &e)) {
            printf("q8_bench: cannot set up %dx%dx%d\n", M, K, N);
            return 1;
        }
        void *scratch = dc__aligned_alloc(dc__q8_scratch_bytes(&q, N));
        int np = (N + v->nr - 1) / v->nr;
        uint8_t *xp = dc__aligned_alloc((size_t)np * q.kg * v->nr * 4);
        int32_t *c = dc__aligned_alloc((size_t)q.panels * v->mr * np * v->nr * 4);
        for (size_t i = 0; i < (size_t)np * q.kg * v->nr * 4; i++) xp[i] = (uint8_t)(i * 7);
        double macs = (double)M * K * N;
        int thr[2] = {1, T};
        for (int ti = 0; ti < (T > 1 ? 2 : 1); ti++) {
            int t = thr[ti];
            double ts = 1e30, tk = 1e30, tq = 1e30, tr = 1e30, pk = 0, x;
            omp_set_num_threads(t);
            openblas_set_num_threads(t);
            clock_id = t == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
            /* interleaved, best of reps each: the machine's load hits all alike */
            for (int r = 0; r < reps; r++) {
                TIME_BEST(0.1, x, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f,
                                            W, K, X, N, 0.0f, Y, N));
                ts = x < ts ? x : ts;
                TIME_BEST(0.1, x, kernel_only(&q, xp, np, c, t));
                tk = x < tk ? x : tk;
                TIME_BEST(0.1, x, dc__q8_matmul_cols(Y, N, &q, X, N, N, scratch));
                tq = x < tq ? x : tq;
                TIME_BEST(0.1, x, dc__q8_matmul_rows(Y, X, &q, NULL, N, scratch));
                tr = x < tr ? x : tr;
                clock_id = CLOCK_THREAD_CPUTIME_ID;
                x = int8_peak(v->name) * t;
                clock_id = t == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
                pk = x > pk ? x : pk;
            }
            printf("%-36s %5d %5d %5d %3d %9.1f %9.1f %9.1f %9.1f %6.2fx %8.1f %5.0f%%\n", shapes[s].what,
                   M, K, N, t, macs / ts / 1e9, macs / tk / 1e9, macs / tq / 1e9, macs / tr / 1e9, ts / tq, pk,
                   pk > 0 ? 100 * macs / tk / 1e9 / pk : 0);
        }
        omp_set_num_threads(T);
        openblas_set_num_threads(T);
        dc__aligned_free(xp);
        dc__aligned_free(c);
        dc__aligned_free(scratch);
        dc__q8mat_free(&q);
        dc__aligned_free(W);
        dc__aligned_free(X);
        dc__aligned_free(Y);
    }
    return 0;
}
