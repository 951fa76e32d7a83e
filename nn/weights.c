/* nn/weights.c - the .dcw weight file: mmap, validate, look up.

   docs/dcw-format.md is the byte-by-byte specification. Everything in the
   file is checked here before any pointer into it is used: sizes, offsets,
   alignment, kinds, shapes and a checksum. Afterwards the rest of dc reads
   tensors and metadata through the tables built here and never parses the
   raw bytes again. */
#define _POSIX_C_SOURCE 200809L
#include "nn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DCW_HEADER_SIZE 64
#define DCW_CHECKSUM_SIZE 16

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Bounds-checked reader over [pos, end) of the mapping. Each take fails
   (returns NULL) rather than step past end. */
typedef struct {
    const uint8_t *base;
    uint64_t pos, end;
} cursor;

static const uint8_t *take(cursor *c, uint64_t n)
{
    if (n > c->end - c->pos) return NULL;
    const uint8_t *p = c->base + c->pos;
    c->pos += n;
    return p;
}

void dc__checksum(const uint8_t *p, size_t n, uint64_t *s1_out, uint64_t *s2_out)
{
    /* s1 = sum w[i], s2 = sum (i+1) w[i], mod 2^64, over little-endian words */
    uint64_t s1 = 0, s2 = 0;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++) {
        uint64_t w;
        memcpy(&w, p + 8 * i, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = rd64(p + 8 * i);
#endif
        s1 += w;
        s2 += (uint64_t)(i + 1) * w;
    }
    *s1_out = s1;
    *s2_out = s2;
}

static dc_status parse_meta(dc__weights *w, uint64_t off, uint64_t size, dc_error *err)
{
    cursor c = {w->map, off, off + size};
    for (int i = 0; i < w->n_meta; i++) {
        dc__meta *m = &w->meta[i];
        m->offset = c.pos;
        const uint8_t *p = take(&c, 2);
        if (!p) goto truncated;
        m->key_len = p[0] | p[1] << 8;
        if (m->key_len < 1 || m->key_len > 255)
            return dc__fail(err, DC_ERR_FORMAT, "%s: metadata entry %d at byte %llu has key "
                            "length %d (must be 1..255)", w->path, i,
                            (unsigned long long)m->offset, m->key_len);
        if (!(m->key = (const char *)take(&c, (uint64_t)m->key_len))) goto truncated;
        if (!(p = take(&c, 5))) goto truncated;
        m->kind = p[0];
        m->count = rd32(p + 1);
        m->payload = w->map + c.pos;
        switch (m->kind) {
        case DC_META_INT: case DC_META_FLOAT: case DC_META_STR:
            if (m->count != 1)
                return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%.*s' is a scalar with "
                                "count %u", w->path, m->key_len, m->key, m->count);
            break;
        case DC_META_INTS: case DC_META_FLOATS: case DC_META_STRS:
            break;
        default:
            return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%.*s' at byte %llu has unknown "
                            "kind %d", w->path, m->key_len, m->key,
                            (unsigned long long)m->offset, m->kind);
        }
        if (m->kind == DC_META_STR || m->kind == DC_META_STRS) {
            for (uint32_t k = 0; k < m->count; k++) {
                if (!(p = take(&c, 4)) || !take(&c, rd32(p))) goto truncated;
            }
        } else if (!take(&c, 8ull * m->count)) {
            goto truncated;
        }
        for (int j = 0; j < i; j++)
            if (w->meta[j].key_len == m->key_len && !memcmp(w->meta[j].key, m->key, (size_t)m->key_len))
                return dc__fail(err, DC_ERR_FORMAT, "%s: metadata key '%.*s' appears twice",
                                w->path, m->key_len, m->key);
        continue;
    truncated:
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata entry %d (byte %llu) runs past the "
                        "end of the metadata block", w->path, i, (unsigned long long)m->offset);
    }
    if (c.pos != c.end)
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata block has %llu unexplained bytes "
                        "at its end", w->path, (unsigned long long)(c.end - c.pos));
    return DC_OK;
}

static int name_cmp(const void *a, const void *b)
{
    const dc__tensor *x = a, *y = b;
    int n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int r = memcmp(x->name, y->name, (size_t)n);
    return r ? r : x->name_len - y->name_len;
}

static int offset_cmp(const void *a, const void *b)
{
    const dc__tensor *x = *(const dc__tensor *const *)a, *y = *(const dc__tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static dc_status parse_table(dc__weights *w, uint64_t off, uint64_t end, uint64_t data_off,
                             uint64_t data_end, dc_error *err)
{
    cursor c = {w->map, off, end};
    for (int i = 0; i < w->n_tensors; i++) {
        dc__tensor *t = &w->tensors[i];
        uint64_t at = c.pos;
        const uint8_t *p = take(&c, 2);
        if (!p) goto truncated;
        t->name_len = p[0] | p[1] << 8;
        if (t->name_len < 1 || t->name_len > 255)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor entry %d at byte %llu has name "
                            "length %d (must be 1..255)", w->path, i, (unsigned long long)at,
                            t->name_len);
        if (!(t->name = (const char *)take(&c, (uint64_t)t->name_len))) goto truncated;
        if (!(p = take(&c, 2))) goto truncated;
        t->dtype = p[0];
        t->ndim = p[1];
        if (t->dtype > DC_Q8)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s' has unknown dtype %d",
                            w->path, t->name_len, t->name, t->dtype);
        if (t->ndim < 1 || t->ndim > 4)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s' has %d dimensions (1..4)",
                            w->path, t->name_len, t->name, t->ndim);
        if (!(p = take(&c, 8ull * (uint64_t)t->ndim + 16))) goto truncated;
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            uint64_t dim = rd64(p + 8 * d);
            if (dim == 0 || dim > (1ull << 40) || numel > (1ull << 40) / dim)
                return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s' has a bad shape "
                                "(dimension %d is %llu)", w->path, t->name_len, t->name, d,
                                (unsigned long long)dim);
            t->shape[d] = (int64_t)dim;
            numel *= dim;
        }
        t->numel = (int64_t)numel;
        t->offset = rd64(p + 8 * t->ndim);
        t->nbytes = rd64(p + 8 * t->ndim + 8);
        uint64_t want;
        if (t->dtype == DC_F32) want = 4 * numel;
        else if (t->dtype == DC_F16) want = 2 * numel;
        else want = ((numel + 3) & ~3ull) + 4ull * (uint64_t)t->shape[0];
        if (t->nbytes != want)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s': %llu data bytes, but its "
                            "dtype and shape need %llu", w->path, t->name_len, t->name,
                            (unsigned long long)t->nbytes, (unsigned long long)want);
        if (t->offset % 64 || t->offset < data_off || t->offset > data_end ||
            t->nbytes > data_end - t->offset)
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%.*s': data at byte %llu (+%llu) "
                            "is misaligned or outside the data section [%llu, %llu)", w->path,
                            t->name_len, t->name, (unsigned long long)t->offset,
                            (unsigned long long)t->nbytes, (unsigned long long)data_off,
                            (unsigned long long)data_end);
        t->data = w->map + t->offset;
        continue;
    truncated:
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor entry %d (byte %llu) runs past the end "
                        "of the tensor table", w->path, i, (unsigned long long)at);
    }
    int padding_ok = c.end - c.pos < 64;
    for (uint64_t k = c.pos; padding_ok && k < c.end; k++) padding_ok = w->map[k] == 0;
    if (!padding_ok)
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor table has %llu unexplained bytes at "
                        "its end", w->path, (unsigned long long)(c.end - c.pos));

    /* sorted by name for lookup; duplicate names and overlapping data are errors */
    qsort(w->tensors, (size_t)w->n_tensors, sizeof *w->tensors, name_cmp);
    for (int i = 1; i < w->n_tensors; i++)
        if (!name_cmp(&w->tensors[i - 1], &w->tensors[i]))
            return dc__fail(err, DC_ERR_FORMAT, "%s: tensor name '%.*s' appears twice",
                            w->path, w->tensors[i].name_len, w->tensors[i].name);
    if (w->n_tensors > 1) {
        const dc__tensor **by_off = malloc(sizeof *by_off * (size_t)w->n_tensors);
        if (!by_off) return dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", w->path);
        for (int i = 0; i < w->n_tensors; i++) by_off[i] = &w->tensors[i];
        qsort(by_off, (size_t)w->n_tensors, sizeof *by_off, offset_cmp);
        for (int i = 1; i < w->n_tensors; i++) {
            if (by_off[i - 1]->offset + by_off[i - 1]->nbytes > by_off[i]->offset) {
                dc_status st = dc__fail(err, DC_ERR_FORMAT, "%s: data of tensors '%.*s' and "
                                        "'%.*s' overlap", w->path, by_off[i - 1]->name_len,
                                        by_off[i - 1]->name, by_off[i]->name_len, by_off[i]->name);
                free(by_off);
                return st;
            }
        }
        free(by_off);
    }
    return DC_OK;
}

dc_status dc__weights_open(dc__weights *w, const char *path, int verify_checksum, dc_error *err)
{
    memset(w, 0, sizeof *w);
    snprintf(w->path, sizeof w->path, "%s", path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return dc__fail(err, DC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return dc__fail(err, DC_ERR_IO, "%s: not a regular file", path);
    }
    w->size = (size_t)sb.st_size;
    if ((uint64_t)sb.st_size < DCW_HEADER_SIZE + DCW_CHECKSUM_SIZE) {
        close(fd);
        return dc__fail(err, DC_ERR_FORMAT, "%s: truncated: %lld bytes is smaller than any "
                        "dc weight file", path, (long long)sb.st_size);
    }
    void *map = mmap(NULL, w->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return dc__fail(err, DC_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
    w->map = map;

    dc_status st;
    const uint8_t *h = w->map;
    if (memcmp(h, "DCWEIGHT", 8) != 0) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: not a dc weight file (bad magic; convert models "
                      "with tools/convert/convert.py)", path);
        goto fail;
    }
    w->version = rd32(h + 8);
    if (w->version != DC_WEIGHTS_VERSION) {
        st = dc__fail(err, DC_ERR_UNSUPPORTED, "%s: weight file version %u, this build of dc "
                      "reads version %d", path, w->version, DC_WEIGHTS_VERSION);
        goto fail;
    }
    if (rd32(h + 12) != DCW_HEADER_SIZE) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: header size %u, expected %d", path, rd32(h + 12),
                      DCW_HEADER_SIZE);
        goto fail;
    }
    uint64_t file_size = rd64(h + 16);
    if (file_size != w->size) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: %s: the header says %llu bytes, the file has "
                      "%zu", path, file_size > w->size ? "truncated" : "trailing bytes",
                      (unsigned long long)file_size, w->size);
        goto fail;
    }
    uint64_t body = file_size - DCW_CHECKSUM_SIZE;
    if (body % 8) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: file size %llu is not a multiple of 8", path,
                      (unsigned long long)file_size);
        goto fail;
    }
    if (verify_checksum) {
        uint64_t s1, s2;
        dc__checksum(w->map, (size_t)body, &s1, &s2);
        if (s1 != rd64(w->map + body) || s2 != rd64(w->map + body + 8)) {
            st = dc__fail(err, DC_ERR_FORMAT, "%s: checksum mismatch: the file is corrupt or "
                          "was modified", path);
            goto fail;
        }
    }
    uint64_t meta_off = rd64(h + 24), meta_size = rd64(h + 32), table_off = rd64(h + 40);
    uint32_t n_tensors = rd32(h + 48), n_meta = rd32(h + 52);
    uint64_t data_off = rd64(h + 56);
    if (meta_off != DCW_HEADER_SIZE || meta_size > body - meta_off ||
        table_off < meta_off + meta_size || table_off % 8 || table_off > body ||
        data_off < table_off || data_off % 64 || data_off > body) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: section offsets are inconsistent (meta %llu+%llu, "
                      "table %llu, data %llu, file %llu)", path, (unsigned long long)meta_off,
                      (unsigned long long)meta_size, (unsigned long long)table_off,
                      (unsigned long long)data_off, (unsigned long long)file_size);
        goto fail;
    }
    /* each entry takes at least 8 bytes (meta) / 20 bytes (tensor): bounds the allocations */
    if (n_meta > meta_size / 8 || n_tensors > (data_off - table_off) / 20) {
        st = dc__fail(err, DC_ERR_FORMAT, "%s: %u metadata entries / %u tensors cannot fit "
                      "their sections", path, n_meta, n_tensors);
        goto fail;
    }
    w->n_meta = (int)n_meta;
    w->n_tensors = (int)n_tensors;
    w->meta = calloc(n_meta ? n_meta : 1, sizeof *w->meta);
    w->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *w->tensors);
    if (!w->meta || !w->tensors) {
        st = dc__fail(err, DC_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((st = parse_meta(w, meta_off, meta_size, err)) != DC_OK) goto fail;
    /* the table is followed by < 64 zero bytes of padding up to data_off */
    if ((st = parse_table(w, table_off, data_off, data_off, body, err)) != DC_OK) goto fail;
    return DC_OK;
fail:
    dc__weights_close(w);
    return st;
}

void dc__weights_close(dc__weights *w)
{
    if (!w) return;
    dc__int8_end(w); /* packed matrices go with the mapping */
    if (w->map) munmap((void *)w->map, w->size);
    free(w->meta);
    free(w->tensors);
    memset(w, 0, sizeof *w);
}

/* ---- lookups ---- */

const dc__meta *dc__meta_find(const dc__weights *w, const char *key)
{
    size_t n = strlen(key);
    for (int i = 0; i < w->n_meta; i++)
        if ((size_t)w->meta[i].key_len == n && !memcmp(w->meta[i].key, key, n)) return &w->meta[i];
    return NULL;
}

static dc_status meta_of_kind(const dc__weights *w, const char *key, int kind,
                              const dc__meta **m, dc_error *err)
{
    static const char *const kinds[] = {"?", "int", "float", "string", "int array",
                                        "float array", "string array"};
    *m = dc__meta_find(w, key);
    if (!*m) return dc__fail(err, DC_ERR_MISSING, "%s: metadata '%s' is missing", w->path, key);
    if ((*m)->kind != kind)
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s' is a %s, expected a %s", w->path,
                        key, kinds[(*m)->kind], kinds[kind]);
    return DC_OK;
}

dc_status dc__meta_int(const dc__weights *w, const char *key, int64_t *v, dc_error *err)
{
    const dc__meta *m;
    dc_status st = meta_of_kind(w, key, DC_META_INT, &m, err);
    if (st == DC_OK) *v = (int64_t)rd64(m->payload);
    return st;
}

dc_status dc__meta_int_in(const dc__weights *w, const char *key, int *v, int lo, int hi, dc_error *err)
{
    int64_t x;
    dc_status st = dc__meta_int(w, key, &x, err);
    if (st != DC_OK) return st;
    if (x < lo || x > hi)
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s' = %lld is out of range [%d, %d]", w->path, key,
                        (long long)x, lo, hi);
    *v = (int)x;
    return DC_OK;
}

dc_status dc__meta_float(const dc__weights *w, const char *key, double *v, dc_error *err)
{
    const dc__meta *m = dc__meta_find(w, key);
    if (m && m->kind == DC_META_INT) { /* an integer is a fine float */
        *v = (double)(int64_t)rd64(m->payload);
        return DC_OK;
    }
    dc_status st = meta_of_kind(w, key, DC_META_FLOAT, &m, err);
    if (st == DC_OK) {
        uint64_t b = rd64(m->payload);
        memcpy(v, &b, 8);
    }
    return st;
}

dc_status dc__meta_str(const dc__weights *w, const char *key, char *buf, size_t cap,
                       dc_error *err)
{
    const dc__meta *m;
    dc_status st = meta_of_kind(w, key, DC_META_STR, &m, err);
    if (st != DC_OK) return st;
    uint32_t len = rd32(m->payload);
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(buf, m->payload + 4, n);
    buf[n] = 0;
    return DC_OK;
}

/* An array entry of kind, its count in *n; an error when the caller gives
   an array (v) of cap values and the entry holds more. */
static dc_status meta_array(const dc__weights *w, const char *key, int kind, const void *v, uint32_t cap,
                            uint32_t *n, const dc__meta **m, dc_error *err)
{
    dc_status st = meta_of_kind(w, key, kind, m, err);
    if (st != DC_OK) return st;
    *n = (*m)->count;
    if (v && (*m)->count > cap)
        return dc__fail(err, DC_ERR_FORMAT, "%s: metadata '%s' has %u values, at most %u allowed", w->path, key,
                        (*m)->count, cap);
    return DC_OK;
}

dc_status dc__meta_ints(const dc__weights *w, const char *key, int64_t *v, uint32_t cap,
                        uint32_t *n, dc_error *err)
{
    const dc__meta *m;
    dc_status st = meta_array(w, key, DC_META_INTS, v, cap, n, &m, err);
    for (uint32_t i = 0; st == DC_OK && v && i < m->count; i++) v[i] = (int64_t)rd64(m->payload + 8 * i);
    return st;
}

dc_status dc__meta_floats(const dc__weights *w, const char *key, double *v, uint32_t cap,
                          uint32_t *n, dc_error *err)
{
    const dc__meta *m;
    dc_status st = meta_array(w, key, DC_META_FLOATS, v, cap, n, &m, err);
    for (uint32_t i = 0; st == DC_OK && v && i < m->count; i++) {
        uint64_t b = rd64(m->payload + 8 * i);
        memcpy(&v[i], &b, 8);
    }
    return st;
}

dc_status dc__meta_strs_at(const dc__weights *w, const char *key, uint32_t i, const char **s,
                           uint32_t *len, dc_error *err)
{
    const dc__meta *m;
    dc_status st = meta_of_kind(w, key, DC_META_STRS, &m, err);
    if (st != DC_OK) return st;
    if (i >= m->count)
        return dc__fail(err, DC_ERR_INVALID, "%s: metadata '%s' has %u strings, asked for #%u",
                        w->path, key, m->count, i);
    const uint8_t *p = m->payload; /* lengths were checked at open */
    for (uint32_t k = 0; k < i; k++) p += 4 + rd32(p);
    *len = rd32(p);
    *s = (const char *)p + 4;
    return DC_OK;
}

const dc__tensor *dc__tensor_find(const dc__weights *w, const char *name)
{
    dc__tensor key;
    memset(&key, 0, sizeof key);
    key.name = name;
    key.name_len = (int)strlen(name);
    return bsearch(&key, w->tensors, (size_t)w->n_tensors, sizeof *w->tensors, name_cmp);
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    int len = snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < (int)cap; i++) {
        if (shape[i] < 0) len += snprintf(buf + len, cap - (size_t)len, "%s*", i ? ", " : "");
        else len += snprintf(buf + len, cap - (size_t)len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
    if (len < (int)cap) snprintf(buf + len, cap - (size_t)len, "]");
}

dc_status dc__tensor_get(const dc__weights *w, const char *name, int ndim, const int64_t *shape,
                         const dc__tensor **out, dc_error *err)
{
    const dc__tensor *t = dc__tensor_find(w, name);
    *out = NULL;
    if (!t) return dc__fail(err, DC_ERR_MISSING, "%s: tensor '%s' is missing", w->path, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || shape[i] == t->shape[i];
    if (!ok) {
        char want[96], got[96];
        shape_str(want, sizeof want, ndim, shape);
        shape_str(got, sizeof got, t->ndim, t->shape);
        return dc__fail(err, DC_ERR_FORMAT, "%s: tensor '%s' has shape %s, the model's config "
                        "needs %s", w->path, name, got, want);
    }
    *out = t;
    return DC_OK;
}
