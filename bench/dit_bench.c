/* bench/dit_bench.c - seconds per DiT forward, GFLOP/s and peak RSS.

   usage: dit_bench MODEL.dcw BATCH REPS [f32|int8]
   Computes in f32 (the default) or int8 (the model name gets ":int8").
   Prints one line: model, batch, best seconds per forward, seconds per
   sample, GFLOP/s (2 FLOPs per multiply-add, counted from the config) and
   the process's peak RSS. bench/dit_bench.sh runs it next to the same
   forward in PyTorch. */
#define _POSIX_C_SOURCE 200809L
#include "../nn/nn.h"
#include "../nn/q8.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* multiply-adds of one sample, from the architecture */
static double dit_macs(const dc__dit *m)
{
    double T = m->tokens, D = m->hidden, Dm = m->mlp_hidden, p = m->patch;
    double block = T * D * 3 * D + 2 * T * T * D + T * D * D + 2 * T * D * Dm + D * 6 * D;
    return T * D * m->in_ch * p * p + m->depth * block + T * D * p * p * m->out_ch + 256 * D + D * D;
}

int main(int argc, char **argv)
{
    int int8 = argc == 5 && !strcmp(argv[4], "int8");
    if ((argc != 4 && argc != 5) || (argc == 5 && !int8 && strcmp(argv[4], "f32"))) {
        fprintf(stderr, "usage: dit_bench MODEL.dcw BATCH REPS [f32|int8]\n");
        return 2;
    }
    int n = atoi(argv[2]), reps = atoi(argv[3]);
    dc_error err;
    dc__weights w;
    dc__dit m;
    dc__runner r;
    char why[256] = "";
    memset(&r, 0, sizeof r);
    double tl = now();
    const dc__q8variant *v = int8 ? dc__q8_best(why, sizeof why) : NULL;
    if (int8 && !v) {
        fprintf(stderr, "dit_bench: no int8 product here: %s\n", why);
        return 1;
    }
    if (dc__weights_open(&w, argv[1], 0, &err) != DC_OK || (v && dc__int8_begin(&w, v, DC_INT8_MIN_SIDE, &err) != DC_OK) ||
        dc__dit_build(&m, &w, &err) != DC_OK) {
        fprintf(stderr, "dit_bench: %s\n", err.msg);
        return 1;
    }
    tl = now() - tl;
    dc__runner_use_int8(&r, &w);
    int S = m.input_size;
    size_t xn = (size_t)n * m.in_ch * S * S;
    float *x = malloc(xn * 4), *out = malloc((size_t)n * m.out_ch * S * S * 4), *t = malloc(n * 4);
    int64_t *y = malloc(n * 8);
    for (size_t i = 0; i < xn; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < n; i++) t[i] = (float)(37 * i % 1000), y[i] = i % m.num_classes;
    double best = 1e30;
    for (int k = 0; k < reps + 1; k++) { /* the first run warms up (page faults, arena) */
        double t0 = now();
        if (dc__dit_forward(&m, &r, out, x, t, y, n, &err) != DC_OK) {
            fprintf(stderr, "dit_bench: %s\n", err.msg);
            return 1;
        }
        double dt = now() - t0;
        if (k > 0 && dt < best) best = dt;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const char *slash = strrchr(argv[1], '/');
    char name[64];
    snprintf(name, sizeof name, "%s%s", slash ? slash + 1 : argv[1], int8 ? ":int8" : "");
    printf("dc     %-28s batch %2d  %8.3f s/forward  %7.3f s/sample  %6.1f GFLOP/s  peak RSS %6.0f MB  load %.1f s\n",
           name, n, best, best / n, 2 * dit_macs(&m) * n / best / 1e9, ru.ru_maxrss / 1024.0, tl);
    dc__runner_free(&r);
    dc__weights_close(&w);
    free(x), free(out), free(t), free(y);
    return 0;
}
