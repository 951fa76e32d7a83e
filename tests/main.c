/* tests/main.c - the test runner: runs every suite, prints one line per
   test and ends with "N passed, M failed, K skipped".

   usage: run_tests [--data DIR] [--tmp DIR] [--dc PATH] [--fixtures DIR] [FILTER]
   FILTER runs only the tests whose name contains it. */
#include "test.h"
#include "../nn/q8.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

test_env T = {"tests/data", "/tmp", "./dc", "tests/fixtures"};
int t_failed_checks, t_skip;
static int passed, failed, skipped;
static const char *filter;

void t_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("  %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    t_failed_checks++;
}

int t_close(const char *name, const float *got, const float *want, size_t n, double atol,
            double rtol)
{
    double max_abs = 0, max_rel = 0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double rel = d / (fabs(want[i]) > 1e-30 ? fabs(want[i]) : 1e-30);
        if (!(d <= atol + rtol * fabs(want[i]))) { /* also catches NaN */
            if (!bad) worst = i;
            bad++;
        }
        if (d > max_abs || d != d) max_abs = d;
        if (rel > max_rel && fabs(want[i]) > atol) max_rel = rel;
    }
    printf("  %s: max abs err %.3g, max rel err %.3g (%zu values)\n", name, max_abs, max_rel, n);
    if (bad) {
        t_fail(__FILE__, __LINE__, "%s: %zu of %zu values outside atol %g + rtol %g; first at "
               "[%zu]: got %.9g, want %.9g", name, bad, n, atol, rtol, worst, got[worst],
               want[worst]);
        return 0;
    }
    return 1;
}

dc_status t_int8_begin(dc__weights *w, dc_error *err)
{
    char why[256];
    const struct dc__q8variant *v = dc__q8_best(why, sizeof why);
    if (!v) return dc__fail(err, DC_ERR_UNSUPPORTED, "no int8 product passed its check: %s", why);
    return dc__int8_begin(w, v, 1, err);
}

int t_readable(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

const char *t_path(const char *dir, const char *fmt, ...)
{
    static char bufs[8][1024];
    static int next;
    char *b = bufs[next++ % 8];
    int len = snprintf(b, 1024, "%s/", dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + len, 1024 - (size_t)len, fmt, ap);
    va_end(ap);
    return b;
}

int t_weights(dc__weights *w, const char *path)
{
    dc_error err;
    if (dc__weights_open(w, path, 1, &err) == DC_OK) return 1;
    t_fail(__FILE__, __LINE__, "%s", err.msg);
    return 0;
}

char *t_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (size) *size = buf ? (size_t)n : 0;
    return buf;
}

int t_npy(dc__npy *a, const char *fmt, ...)
{
    char rel[512], path[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s/%s.npy", T.data, rel);
    dc_error err;
    if (dc__npy_load_f32(a, path, &err) != DC_OK) {
        t_fail(__FILE__, __LINE__, "%s", err.msg);
        return 0;
    }
    return 1;
}

void t_run(const char *name, void (*fn)(void))
{
    if (filter && !strstr(name, filter)) return;
    t_failed_checks = 0;
    t_skip = 0;
    fn();
    if (t_failed_checks) {
        printf("FAIL %s\n", name);
        failed++;
    } else if (t_skip) {
        printf("skip %s\n", name);
        skipped++;
    } else {
        printf("ok   %s\n", name);
        passed++;
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--data")) T.data = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--tmp")) T.tmp = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--dc")) T.dc = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--fixtures")) T.fixtures = argv[++i];
        else if (argv[i][0] != '-') filter = argv[i];
        else {
            fprintf(stderr, "run_tests: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    printf("dc %s tests, kernels: %s, threads: %d\n", dc_version(), dc__kern()->name,
           dc_get_threads());
    suite_kernels();
    suite_q8();
    suite_layers();
    suite_npy();
    suite_weights();
    suite_cpu();
    suite_dit();
    suite_tokenizer();
    suite_clip();
    suite_vae();
    suite_unet();
    suite_classify();
    suite_image();
    suite_docs();
    suite_threads();
    suite_driver();
    suite_durable();
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
