/* bench/conv_bench.c - how close dc's conv2d comes to raw sgemm.

   For each SD-like layer: the raw sgemm of the same M (cout), N (h*w) and
   K (cin*kh*kw), on contiguous matrices; then dc__conv2d_forward on the
   activation; both as GFLOP/s from the best of several runs, and the conv's
   efficiency = conv GFLOP/s / sgemm GFLOP/s. Both in one run, same threads
   and OpenBLAS kernel (printed), so the machine's noise hits both alike.

   usage: conv_bench [--quick] [--batch N] [--reps N] */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *openblas_get_corename(void);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int quick = 0, batch = 1, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1, reps = 2;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: conv_bench [--quick] [--batch N] [--reps N]\n");
            return 2;
        }
    }
    static const struct { const char *name; int hw, cin, cout, k; } layers[] = {
        {"64x64x320 3x3", 64, 320, 320, 3},
        {"32x32x640 3x3", 32, 640, 640, 3},
        {"16x16x1280 3x3", 16, 1280, 1280, 3},
        {"8x8x1280 3x3", 8, 1280, 1280, 3},
        {"64x64 320->320 1x1", 64, 320, 320, 1},
        {"32x32 640->640 1x1", 32, 640, 640, 1},
        {"16x16 1280->1280 1x1", 16, 1280, 1280, 1},
    };
    int nl = quick ? 2 : (int)(sizeof layers / sizeof layers[0]);
    printf("conv2d vs raw sgemm: openblas core %s, cpu %s, %d threads, kernels %s, batch %d, "
           "best of %d\n", openblas_get_corename(), dc__cpu_level(), dc__num_threads(),
           dc__kern()->name, batch, reps);
    printf("%-22s %6s %6s %6s %10s %10s %8s\n", "layer", "M", "N", "K", "sgemm GF/s",
           "conv GF/s", "conv/sgemm");
    for (int l = 0; l < nl; l++) {
        int hw = layers[l].hw, cin = layers[l].cin, cout = layers[l].cout, k = layers[l].k;
        int M = cout, N = hw * hw, K = cin * k * k;
        dc__conv2d_shape s = {batch, cin, hw, hw, cout, k, k, 1, k / 2, k / 2, k / 2, k / 2};
        float *x = randv((size_t)batch * cin * N, 1), *w = randv((size_t)M * K, 2),
              *b = randv((size_t)M, 3), *y = dc__aligned_alloc((size_t)batch * M * N * 4);
        float *A = randv((size_t)M * K, 4), *Bm = randv((size_t)K * N, 5),
              *C = dc__aligned_alloc((size_t)M * N * 4);
        float *cols = dc__aligned_alloc(dc__conv2d_scratch_floats(&s) * 4 + 64);
        double flops = 2.0 * M * N * K;
        double best_g = 1e30, best_c = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            for (int n = 0; n < batch; n++)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, Bm, N,
                            0.0f, C, N);
            double t1 = now();
            dc__conv2d_forward(y, x, w, b, &s, cols);
            double t2 = now();
            if (t1 - t0 < best_g) best_g = t1 - t0;
            if (t2 - t1 < best_c) best_c = t2 - t1;
        }
        double gs = flops * batch / best_g / 1e9, gc = flops * batch / best_c / 1e9;
        printf("%-22s %6d %6d %6d %10.1f %10.1f %7.0f%%\n", layers[l].name, M, N, K, gs, gc,
               100 * gc / gs);
        fflush(stdout);
        dc__aligned_free(x), dc__aligned_free(w), dc__aligned_free(b), dc__aligned_free(y);
        dc__aligned_free(A), dc__aligned_free(Bm), dc__aligned_free(C), dc__aligned_free(cols);
    }
    return 0;
}
