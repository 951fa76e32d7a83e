/* nn/npy.c - reading and writing NumPy .npy files (format versions 1-3).

   dc's `forward` command and the tests exchange tensors with numpy and
   torch this way (dc_tensor_load_npy / dc_tensor_save_npy, at the end,
   are the public face). Only what those need: little-endian f32, f64, i32, i64
   in C order. Anything else (big-endian, Fortran order, objects, other
   dtypes) is refused with a message that says which. A file is written
   under a temporary name and renamed into place when whole, so a failed
   write (a full disk) leaves no truncated .npy that numpy would misread. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include "nn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct { const char *descr; int dtype; int size; } npy_types[] = {
    {"<f4", DC_NPY_F32, 4}, {"<f8", DC_NPY_F64, 8},
    {"<i4", DC_NPY_I32, 4}, {"<i8", DC_NPY_I64, 8},
};

const char *dc__npy_dtype_name(int dtype)
{
    switch (dtype) {
    case DC_NPY_F32: return "float32";
    case DC_NPY_F64: return "float64";
    case DC_NPY_I32: return "int32";
    case DC_NPY_I64: return "int64";
    }
    return "?";
}

static int npy_item_size(int dtype)
{
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == dtype) return npy_types[i].size;
    return 0;
}

/* Finds 'key': in the header dict and returns a pointer just past the colon. */
static const char *dict_value(const char *hdr, const char *key)
{
    const char *p = strstr(hdr, key);
    if (!p) return NULL;
    p += strlen(key);
    while (*p == ' ') p++;
    if (*p != ':') return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static dc_status parse_header(dc__npy *a, const char *hdr, const char *path, dc_error *err)
{
    const char *v = dict_value(hdr, "'descr'");
    if (!v || (*v != '\'' && *v != '"'))
        return dc__fail(err, DC_ERR_FORMAT, "%s: .npy header has no 'descr'", path);
    char descr[16] = {0};
    const char *end = strchr(v + 1, *v);
    if (!end || end - v - 1 >= (long)sizeof descr)
        return dc__fail(err, DC_ERR_FORMAT, "%s: .npy header has a malformed 'descr'", path);
    memcpy(descr, v + 1, (size_t)(end - v - 1));
    a->dtype = -1;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (!strcmp(descr, npy_types[i].descr)) a->dtype = npy_types[i].dtype;
    if (a->dtype < 0)
        return dc__fail(err, DC_ERR_UNSUPPORTED,
                        "%s: .npy dtype '%s' is not supported (dc reads little-endian "
                        "float32, float64, int32, int64)", path, descr);

    v = dict_value(hdr, "'fortran_order'");
    if (!v) return dc__fail(err, DC_ERR_FORMAT, "%s: .npy header has no 'fortran_order'", path);
    if (strncmp(v, "False", 5) != 0)
        return dc__fail(err, DC_ERR_UNSUPPORTED,
                        "%s: .npy array is in Fortran order; save it C-contiguous "
                        "(np.ascontiguousarray)", path);

    v = dict_value(hdr, "'shape'");
    if (!v || *v != '(') return dc__fail(err, DC_ERR_FORMAT, "%s: .npy header has no 'shape'", path);
    v++;
    a->ndim = 0;
    a->numel = 1;
    for (;;) {
        while (*v == ' ' || *v == ',') v++;
        if (*v == ')') break;
        if (*v < '0' || *v > '9')
            return dc__fail(err, DC_ERR_FORMAT, "%s: .npy header has a malformed 'shape'", path);
        if (a->ndim == 8)
            return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: .npy array has more than 8 dimensions", path);
        int64_t d = 0;
        while (*v >= '0' && *v <= '9') {
            if (d > (INT64_MAX - 9) / 10)
                return dc__fail(err, DC_ERR_FORMAT, "%s: .npy shape dimension too large", path);
            d = d * 10 + (*v++ - '0');
        }
        if (d != 0 && a->numel > INT64_MAX / d)
            return dc__fail(err, DC_ERR_FORMAT, "%s: .npy shape overflows", path);
        a->shape[a->ndim++] = d;
        a->numel *= d;
    }
    return DC_OK;
}

dc_status dc__npy_load(dc__npy *a, const char *path, dc_error *err)
{
    memset(a, 0, sizeof *a);
    FILE *f = fopen(path, "rb");
    char *hdr = NULL;
    dc_status st = DC_OK;
    if (!f) return dc__fail(err, DC_ERR_IO, "%s: cannot open", path);

    unsigned char pre[12];
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    uint32_t hlen;
    long data_start;
    if (pre[6] == 1) {
        hlen = pre[8] | (uint32_t)pre[9] << 8;
        data_start = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            st = dc__fail(err, DC_ERR_FORMAT, "%s: .npy header truncated", path);
            goto fail;
        }
        hlen = pre[8] | (uint32_t)pre[9] << 8 | (uint32_t)pre[10] << 16 | (uint32_t)pre[11] << 24;
        data_start = 12;
    } else {
        st = dc__fail(err, DC_ERR_UNSUPPORTED, "%s: .npy format version %d is not supported",
                      path, pre[6]);
        goto fail;
    }
    if (hlen > (1u << 20)) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: .npy header length %u is implausible", path, hlen);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (fread(hdr, 1, hlen, f) != hlen) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: .npy header truncated", path);
        goto fail;
    }
    hdr[hlen] = 0;
    if ((st = parse_header(a, hdr, path, err)) != DC_OK) goto fail;

    size_t nbytes;
    if (!dc__mul_size(&nbytes, (size_t)a->numel, (size_t)npy_item_size(a->dtype))) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: .npy array too large", path);
        goto fail;
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        st = dc__fail(err, DC_ERR_IO, "%s: cannot seek", path);
        goto fail;
    }
    long fsize = ftell(f), avail = fsize - data_start - (long)hlen;
    if (fsize < 0 || avail < 0 || (uint64_t)avail < nbytes) {
        st = dc__fail(err, DC_ERR_FORMAT,
                      "%s: .npy data truncated (header promises %zu bytes)", path, nbytes);
        goto fail;
    }
    a->data = malloc(nbytes ? nbytes : 1);
    if (!a->data) {
        st = dc__fail(err, DC_ERR_NOMEM, "%s: out of memory for %zu bytes", path, nbytes);
        goto fail;
    }
    if (fseek(f, data_start + (long)hlen, SEEK_SET) != 0 || fread(a->data, 1, nbytes, f) != nbytes) {
        st = dc__fail(err, DC_ERR_IO, "%s: read failed", path);
        goto fail;
    }
    free(hdr);
    fclose(f);
    return DC_OK;
fail:
    free(hdr);
    fclose(f);
    dc__npy_free(a);
    return st;
}

dc_status dc__npy_load_f32(dc__npy *a, const char *path, dc_error *err)
{
    dc_status st = dc__npy_load(a, path, err);
    if (st != DC_OK) return st;
    if (a->dtype != DC_NPY_F32) {
        int dt = a->dtype;
        dc__npy_free(a);
        return dc__fail(err, DC_ERR_FORMAT, "%s: expected float32 data, found %s "
                        "(convert with .astype(np.float32))", path, dc__npy_dtype_name(dt));
    }
    return DC_OK;
}

void dc__npy_free(dc__npy *a)
{
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

dc_status dc__npy_save(const char *path, int dtype, int ndim, const int64_t *shape,
                       const void *data, dc_error *err)
{
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == dtype) descr = npy_types[i].descr;
    if (!descr || ndim < 0 || ndim > 8)
        return dc__fail(err, DC_ERR_INVALID, "%s: cannot save this dtype/rank as .npy", path);
    char dict[256];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%lld%s", (long long)shape[i],
                        ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        if (!dc__mul_size(&numel, numel, (size_t)shape[i]))
            return dc__fail(err, DC_ERR_INVALID, "%s: shape overflows", path);
    }
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* pad with spaces so that magic + len + header + '\n' is a multiple of 64 */
    int total = 10 + len + 1;
    int pad = (64 - total % 64) % 64;
    /* a regular file (or a new one) is replaced whole; a device or pipe
       (/dev/stdout) is written in place */
    struct stat sb;
    int in_place = stat(path, &sb) == 0 && !S_ISREG(sb.st_mode);
    char tmp[4200];
    if (!in_place && (size_t)snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= sizeof tmp)
        return dc__fail(err, DC_ERR_IO, "%s: file name too long", path);
    FILE *f = in_place ? NULL : fopen(tmp, "wb");
    if (!f && !in_place) /* no file can be made beside it (/proc/self/fd/N, a read-only folder): write in place */
        in_place = 1;
    if (!f) f = fopen(path, "wb");
    if (!f) return dc__fail(err, DC_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    unsigned hl = (unsigned)(len + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff),
                             (unsigned char)(hl >> 8)};
    size_t nbytes = numel * (size_t)npy_item_size(dtype);
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(dict, 1, (size_t)len, f) == (size_t)len;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(data, 1, nbytes, f) == nbytes;
    ok = ok && fflush(f) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (ok && !in_place && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) {
        if (!in_place) remove(tmp);
        return dc__fail(err, DC_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return DC_OK;
}

/* ---- the public face: .npy files as dc_tensor (dc.h) ---- */

dc_status dc_tensor_load_npy(dc_tensor *t, const char *path, dc_error *err)
{
    dc__ok(err);
    memset(t, 0, sizeof *t);
    dc__npy a;
    dc_status st = dc__npy_load(&a, path, err);
    if (st != DC_OK) return st;
    t->ndim = a.ndim;
    memcpy(t->shape, a.shape, sizeof a.shape);
    if (a.dtype == DC_NPY_F32) {
        t->f32 = a.data;
    } else if (a.dtype == DC_NPY_I64) {
        t->i64 = a.data;
    } else if (a.dtype == DC_NPY_I32) {
        t->i64 = malloc(sizeof(int64_t) * (size_t)(a.numel ? a.numel : 1));
        if (!t->i64) {
            dc__npy_free(&a);
            return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
        }
        for (int64_t i = 0; i < a.numel; i++) t->i64[i] = ((int32_t *)a.data)[i];
        dc__npy_free(&a);
    } else {
        dc__npy_free(&a);
        return dc__fail(err, DC_ERR_FORMAT, "%s: float64 data; dc computes in float32: save it "
                        "with .astype(np.float32)", path);
    }
    return DC_OK;
}

dc_status dc_tensor_save_npy(const dc_tensor *t, const char *path, dc_error *err)
{
    dc__ok(err);
    if (t->f32) return dc__npy_save(path, DC_NPY_F32, t->ndim, t->shape, t->f32, err);
    return dc__npy_save(path, DC_NPY_I64, t->ndim, t->shape, t->i64, err);
}
