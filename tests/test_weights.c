/* tests/test_weights.c - the .dcw loader: a good file written by
   tools/refs/make_test_dcw.py (numpy) reads back exactly, and every kind of
   damage is refused with a message that names it - never a crash. */
#include "test.h"

#include <stdlib.h>

static void write_all(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(p, 1, n, f);
    fclose(f);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* recompute the trailing checksum so a deliberate edit reaches the later checks */
static void reseal(uint8_t *p, size_t n)
{
    uint64_t s1, s2;
    dc__checksum(p, n - 16, &s1, &s2);
    put64(p + n - 16, s1);
    put64(p + n - 8, s2);
}

static const char *good_path(void) { return t_path(T.tmp, "test.dcw"); }

static void loader_should_read_metadata_written_by_numpy(void)
{
    dc__weights w;
    dc_error err;
    if (!t_weights(&w, good_path())) return;
    int64_t i = 0;
    double d = 0;
    char s[64];
    CHECK(dc__meta_int(&w, "test.int", &i, &err) == DC_OK && i == 42, "test.int");
    CHECK(dc__meta_float(&w, "test.float", &d, &err) == DC_OK && d == 0.5, "test.float");
    CHECK(dc__meta_str(&w, "test.name", s, sizeof s, &err) == DC_OK && !strcmp(s, "h\xc3\xa9llo"),
          "test.name '%s'", s);
    CHECK(dc__meta_str(&w, "dc.family", s, sizeof s, &err) == DC_OK && !strcmp(s, "test"),
          "dc.family");
    int64_t ints[4];
    uint32_t n = 0;
    CHECK(dc__meta_ints(&w, "test.ints", ints, 4, &n, &err) == DC_OK && n == 3 && ints[0] == 1 &&
          ints[2] == 3, "test.ints");
    double fl[4];
    CHECK(dc__meta_floats(&w, "test.floats", fl, 4, &n, &err) == DC_OK && n == 2 &&
          fl[0] == 0.25 && fl[1] == -1.5, "test.floats");
    n = 0;
    CHECK(dc__meta_ints(&w, "test.ints", NULL, 0, &n, &err) == DC_OK && n == 3, "test.ints: the count alone");
    CHECK(dc__meta_floats(&w, "test.floats", fl, 1, &n, &err) == DC_ERR_FORMAT && strstr(err.msg, "'test.floats'") &&
          strstr(err.msg, "at most 1"), "an array longer than cap: %s", err.msg);
    const char *str;
    uint32_t len;
    CHECK(dc__meta_strs_at(&w, "test.words", 1, &str, &len, &err) == DC_OK && len == 2 &&
          !memcmp(str, "bc", 2), "test.words[1]");
    CHECK(dc__meta_strs_at(&w, "test.words", 2, &str, &len, &err) == DC_OK && len == 0,
          "test.words[2] is empty");
    CHECK(dc__meta_strs_at(&w, "test.words", 3, &str, &len, &err) == DC_ERR_INVALID,
          "index past the end is refused");
    CHECK(dc__meta_int(&w, "test.nothing", &i, &err) == DC_ERR_MISSING &&
          strstr(err.msg, "'test.nothing' is missing"), "missing key: %s", err.msg);
    CHECK(dc__meta_int(&w, "test.name", &i, &err) == DC_ERR_FORMAT &&
          strstr(err.msg, "is a string, expected a int"), "wrong kind: %s", err.msg);
    dc__weights_close(&w);
}

static void loader_should_decode_f32_f16_and_q8_like_numpy(void)
{
    static const struct { const char *name, *npy; int dtype; int64_t r, c; } ts[] = {
        {"w.f32", "w_f32", DC_F32, 3, 5}, {"w.f16", "w_f16", DC_F16, 4, 6},
        {"w.q8", "w_q8", DC_Q8, 5, 7}, {"bias", "bias", DC_F32, 5, 1}};
    dc__weights w;
    dc_error err;
    if (!t_weights(&w, good_path())) return;
    for (int i = 0; i < 4; i++) {
        const dc__tensor *t;
        int64_t shape[2] = {ts[i].r, ts[i].c};
        if (dc__tensor_get(&w, ts[i].name, ts[i].c == 1 ? 1 : 2, shape, &t, &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        CHECK(t->dtype == ts[i].dtype, "%s dtype %d", ts[i].name, t->dtype);
        CHECK(((uintptr_t)t->data & 63) == 0, "%s is not 64-aligned", ts[i].name);
        dc__npy want;
        dc_error e2;
        if (dc__npy_load_f32(&want, t_path(T.tmp, "test_%s.npy", ts[i].npy), &e2) != DC_OK) {
            CHECK(0, "%s", e2.msg);
            continue;
        }
        float got[64];
        dc__decode_rows(got, t, 0, t->shape[0]);
        CHECK(!memcmp(got, want.data, (size_t)want.numel * 4), "%s decodes differently from numpy",
              ts[i].name);
        dc__npy_free(&want);
    }
    const dc__tensor *t;
    int64_t wrong[2] = {5, 8};
    CHECK(dc__tensor_get(&w, "w.q8", 2, wrong, &t, &err) == DC_ERR_FORMAT &&
          strstr(err.msg, "'w.q8' has shape [5, 7]") && strstr(err.msg, "needs [5, 8]"),
          "mis-shaped: %s", err.msg);
    CHECK(dc__tensor_get(&w, "w.nope", 2, wrong, &t, &err) == DC_ERR_MISSING &&
          strstr(err.msg, "'w.nope' is missing"), "missing: %s", err.msg);
    dc__weights_close(&w);
}

/* Opens a damaged copy; returns the status, the message in err. */
static dc_status open_damaged(const uint8_t *p, size_t n, dc_error *err)
{
    const char *path = t_path(T.tmp, "damaged.dcw");
    write_all(path, p, n);
    dc__weights w;
    dc_status st = dc__weights_open(&w, path, 1, err);
    if (st == DC_OK) dc__weights_close(&w);
    return st;
}

static void loader_should_refuse_each_kind_of_damage_by_name(void)
{
    size_t n;
    uint8_t *good = (uint8_t *)t_read_file(good_path(), &n);
    if (!good) {
        CHECK(0, "cannot read %s", good_path());
        return;
    }
    uint8_t *p = malloc(n + 64);
    dc_error err;
    struct { const char *what, *expect; } r;

    /* truncated */
    memcpy(p, good, n);
    r.what = "truncated", r.expect = "truncated";
    CHECK(open_damaged(p, n - 100, &err) == DC_ERR_FORMAT && strstr(err.msg, r.expect), "%s: %s", r.what, err.msg);
    CHECK(open_damaged(p, 10, &err) == DC_ERR_FORMAT && strstr(err.msg, "truncated"), "tiny: %s", err.msg);
    CHECK(open_damaged(p, 0, &err) == DC_ERR_FORMAT && strstr(err.msg, "truncated"), "empty: %s", err.msg);
    /* trailing bytes */
    memset(p + n, 0, 8);
    CHECK(open_damaged(p, n + 8, &err) == DC_ERR_FORMAT && strstr(err.msg, "trailing"), "trailing: %s", err.msg);
    /* wrong magic */
    memcpy(p, good, n);
    p[0] = 'X';
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "bad magic"), "magic: %s", err.msg);
    /* wrong version */
    memcpy(p, good, n);
    p[8] = 7;
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_UNSUPPORTED && strstr(err.msg, "version 7") &&
          strstr(err.msg, "reads version 1"), "version: %s", err.msg);
    /* bad checksum: one flipped bit in the last tensor's data */
    memcpy(p, good, n);
    p[n - 20] ^= 1;
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "checksum"), "checksum: %s", err.msg);

    /* tensor offset past the end, with a valid checksum */
    uint64_t table = get64(good + 40);
    int name_len = good[table] | good[table + 1] << 8;
    uint64_t ndim = good[table + 2 + name_len + 1];
    uint64_t off_at = table + 2 + name_len + 2 + 8 * ndim;
    memcpy(p, good, n);
    put64(p + off_at, n + 4096);
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "outside the data section"),
          "offset past end: %s", err.msg);
    /* misaligned offset */
    memcpy(p, good, n);
    put64(p + off_at, get64(good + off_at) + 4);
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "misaligned"), "align: %s", err.msg);
    /* nbytes that disagrees with dtype and shape */
    memcpy(p, good, n);
    put64(p + off_at + 8, get64(good + off_at + 8) + 4);
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "need"), "nbytes: %s", err.msg);
    /* a shape dimension changed: nbytes no longer matches */
    memcpy(p, good, n);
    put64(p + table + 2 + name_len + 2, get64(good + table + 2 + name_len + 2) + 1);
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "dtype and shape need"),
          "shape: %s", err.msg);
    /* unknown dtype */
    memcpy(p, good, n);
    p[table + 2 + name_len] = 9;
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "unknown dtype 9"), "dtype: %s", err.msg);
    /* section offsets inconsistent */
    memcpy(p, good, n);
    put64(p + 56, n * 2);
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "section offsets"), "sections: %s", err.msg);
    /* absurd counts */
    memcpy(p, good, n);
    p[48] = 0xff, p[49] = 0xff, p[50] = 0xff, p[51] = 0x7f;
    reseal(p, n);
    CHECK(open_damaged(p, n, &err) == DC_ERR_FORMAT && strstr(err.msg, "cannot fit"), "counts: %s", err.msg);
    free(p);
    free(good);

    dc__weights w;
    CHECK(dc__weights_open(&w, t_path(T.tmp, "no-such.dcw"), 1, &err) == DC_ERR_IO &&
          strstr(err.msg, "cannot open"), "missing: %s", err.msg);
    CHECK(dc__weights_open(&w, T.tmp, 1, &err) == DC_ERR_IO && strstr(err.msg, "not a regular file"),
          "directory: %s", err.msg);
}

static void loader_should_survive_every_single_byte_corruption_of_its_tables(void)
{
    /* Each byte of header, metadata and table set to three other values,
       checksum resealed so the structural checks are what stands between
       the bytes and the pointers. Refusal or success are both fine; a crash
       or a sanitizer report is not. */
    size_t n;
    uint8_t *good = (uint8_t *)t_read_file(good_path(), &n);
    if (!good) {
        CHECK(0, "cannot read %s", good_path());
        return;
    }
    uint64_t data_off = get64(good + 56);
    uint8_t *p = malloc(n);
    int refused = 0, tried = 0;
    const char *path = t_path(T.tmp, "fuzzed.dcw");
    for (uint64_t i = 0; i < data_off; i++) {
        static const uint8_t vals[3] = {0x00, 0xff, 0x80};
        for (int v = 0; v < 3; v++) {
            if (good[i] == vals[v]) continue;
            memcpy(p, good, n);
            p[i] = vals[v];
            reseal(p, n);
            write_all(path, p, n);
            dc__weights w;
            dc_error err;
            tried++;
            if (dc__weights_open(&w, path, 1, &err) != DC_OK) {
                refused++;
                CHECK(err.msg[0] != 0, "byte %llu: refused without a message", (unsigned long long)i);
            } else {
                /* if accepted, every tensor must lie inside the file */
                for (int t = 0; t < w.n_tensors; t++)
                    CHECK(w.tensors[t].offset + w.tensors[t].nbytes <= n,
                          "byte %llu: tensor outside the file accepted", (unsigned long long)i);
                dc__weights_close(&w);
            }
        }
    }
    printf("  %d corrupted files, %d refused, none crashed\n", tried, refused);
    CHECK(refused > tried / 2, "only %d of %d corruptions refused", refused, tried);
    free(p);
    free(good);
}

static void model_load_should_name_the_file_in_errors(void)
{
    dc_model *m = (dc_model *)1;
    dc_error err;
    CHECK(dc_model_load(&m, t_path(T.tmp, "absent.dcw"), NULL, &err) == DC_ERR_IO && m == NULL &&
          strstr(err.msg, "absent.dcw"), "%s", err.msg);
    CHECK(dc_model_load(&m, good_path(), NULL, &err) == DC_OK && m, "%s", err.msg);
    CHECK(m && !strcmp(dc_model_family(m), "test"), "family");
    dc_model_free(m);
    dc_model_free(NULL);
}

void suite_weights(void)
{
    RUN(loader_should_read_metadata_written_by_numpy);
    RUN(loader_should_decode_f32_f16_and_q8_like_numpy);
    RUN(loader_should_refuse_each_kind_of_damage_by_name);
    RUN(loader_should_survive_every_single_byte_corruption_of_its_tables);
    RUN(model_load_should_name_the_file_in_errors);
}
