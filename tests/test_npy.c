/* tests/test_npy.c - .npy reading and writing, and refusals. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

static void npy_should_round_trip_f32_and_i64(void)
{
    dc_error err;
    float v[6] = {1, -2, 3.5f, 4, 5, 6e-8f};
    int64_t shape[2] = {2, 3};
    const char *p = t_path(T.tmp, "rt.npy");
    CHECK(dc__npy_save(p, DC_NPY_F32, 2, shape, v, &err) == DC_OK, "%s", err.msg);
    dc__npy a;
    CHECK(dc__npy_load_f32(&a, p, &err) == DC_OK, "%s", err.msg);
    CHECK(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3, "shape");
    CHECK(a.data && !memcmp(a.data, v, sizeof v), "data");
    dc__npy_free(&a);

    int64_t ids[3] = {49406, 320, 49407}, s1[1] = {3};
    CHECK(dc__npy_save(p, DC_NPY_I64, 1, s1, ids, &err) == DC_OK, "%s", err.msg);
    CHECK(dc__npy_load(&a, p, &err) == DC_OK && a.dtype == DC_NPY_I64 && a.numel == 3 &&
          !memcmp(a.data, ids, sizeof ids), "i64 round trip");
    dc__npy_free(&a);
    /* a 0-d scalar too */
    CHECK(dc__npy_save(p, DC_NPY_F32, 0, NULL, v, &err) == DC_OK, "%s", err.msg);
    CHECK(dc__npy_load(&a, p, &err) == DC_OK && a.ndim == 0 && a.numel == 1, "0-d");
    dc__npy_free(&a);
}

static void npy_should_read_what_numpy_wrote(void)
{
    /* tests/data/layers files were written by numpy, f32 and i64 */
    dc__npy a;
    dc_error err;
    CHECK(dc__npy_load(&a, t_path(T.data, "layers/conv_a_p.npy"), &err) == DC_OK, "%s", err.msg);
    CHECK(a.dtype == DC_NPY_I64 && a.numel == 12 && ((int64_t *)a.data)[4] == 4, "params");
    dc__npy_free(&a);
}

static void npy_should_refuse_non_f32_where_f32_is_needed(void)
{
    dc_error err;
    dc__npy a;
    dc_status st = dc__npy_load_f32(&a, t_path(T.data, "layers/conv_a_p.npy"), &err);
    CHECK(st == DC_ERR_FORMAT && strstr(err.msg, "expected float32") && strstr(err.msg, "int64"),
          "got %d: %s", st, err.msg);
}

static void npy_should_refuse_bad_files_with_clear_messages(void)
{
#define B(lit) lit, sizeof(lit) - 1 /* bytes and their count */
    static const struct { const char *bytes; size_t n; const char *expect; } cases[] = {
        {B(""), "bad magic"},
        {B("\x93NUMPZ\x01\x00\x10\x00"), "bad magic"},
        {B("\x93NUMPY\x09\x00\x10\x00"), "version 9"},
        {B("\x93NUMPY\x01\x00\x40\x00{'descr': '<f4'"), "header truncated"},
        {B("\x93NUMPY\x01\x00\x3a\x00{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n"),
         "'>f4' is not supported"},
        {B("\x93NUMPY\x01\x00\x3a\x00{'descr': '<f4', 'fortran_order': True,  'shape': (2,), }\n"),
         "Fortran order"},
        {B("\x93NUMPY\x01\x00\x3a\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"),
         "truncated"},
        {B("\x93NUMPY\x01\x00\x3a\x00{'descr': '<u2', 'fortran_order': False, 'shape': (2,), }\n"),
         "'<u2' is not supported"},
        {B("\x93NUMPY\x01\x00\x3a\x00{'descr': '<f4', 'fortran_order': False, 'shape': (x2,),}\n"),
         "malformed 'shape'"},
        {B("\x93NUMPY\x01\x00\x5a\x00{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999,99999999999,99999999999),}\n"),
         "overflows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = t_path(T.tmp, "bad%zu.npy", i);
        write_bytes(p, cases[i].bytes, cases[i].n);
        dc__npy a;
        dc_error err = {DC_OK, ""};
        dc_status st = dc__npy_load(&a, p, &err);
        CHECK(st != DC_OK && strstr(err.msg, cases[i].expect) && strstr(err.msg, p),
              "case %zu: status %d, message '%s' should contain '%s' and the path", i, st,
              err.msg, cases[i].expect);
        CHECK(a.data == NULL, "case %zu leaves data allocated", i);
    }
    dc__npy a;
    dc_error err;
    CHECK(dc__npy_load(&a, t_path(T.tmp, "no-such-file.npy"), &err) == DC_ERR_IO &&
          strstr(err.msg, "cannot open"), "missing file: %s", err.msg);
}

/* A write that fails (a full disk; a file-size limit stands in for one)
   is reported, and leaves the file that was there whole. */
static void npy_save_should_fail_whole_and_keep_the_old_file(void)
{
    dc_error err;
    float v[1024] = {0};
    int64_t one[1] = {2}, big[1] = {1024};
    v[0] = 7, v[1] = 8;
    dc_status st = dc__npy_save("/dev/full", DC_NPY_F32, 1, big, v, &err);
    CHECK(st == DC_ERR_IO && strstr(err.msg, "/dev/full: write failed: No space left"), "got %d: %s", st, err.msg);
    char p[1024];
    snprintf(p, sizeof p, "%s", t_path(T.tmp, "keep.npy"));
    CHECK(dc__npy_save(p, DC_NPY_F32, 1, one, v, &err) == DC_OK, "%s", err.msg);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* 4 kB of data under a 1 kB limit */
        struct rlimit rl = {1000, 1000};
        signal(SIGXFSZ, SIG_IGN);
        setrlimit(RLIMIT_FSIZE, &rl);
        dc_status s2 = dc__npy_save(p, DC_NPY_F32, 1, big, v, &err);
        _exit(s2 == DC_ERR_IO && strstr(err.msg, "File too large") ? 0 : 1);
    }
    int status = -1;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the save under a 1 kB limit did not fail with EFBIG (status %d)", status);
    dc__npy a;
    CHECK(dc__npy_load_f32(&a, p, &err) == DC_OK && a.numel == 2 && ((float *)a.data)[1] == 8, "the old file is not whole");
    dc__npy_free(&a);
    CHECK(access(t_path(T.tmp, "keep.npy.tmp%ld", (long)pid), F_OK) != 0, "the temporary file was left behind");
}

void suite_npy(void)
{
    RUN(npy_should_round_trip_f32_and_i64);
    RUN(npy_should_read_what_numpy_wrote);
    RUN(npy_should_refuse_non_f32_where_f32_is_needed);
    RUN(npy_should_refuse_bad_files_with_clear_messages);
    RUN(npy_save_should_fail_whole_and_keep_the_old_file);
}
