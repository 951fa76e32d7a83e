#define _POSIX_C_SOURCE 200809L
/* nn/core.c - the version, errors, checked size math, aligned memory, the
   activation arena and the thread count: the small things every other
   file uses. */
#include "nn.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

const char *dc_version(void) { return DC_VERSION_STRING; }

const char *dc_status_name(dc_status s)
{
    switch (s) {
    case DC_OK: return "ok";
    case DC_ERR_IO: return "i/o error";
    case DC_ERR_FORMAT: return "bad format";
    case DC_ERR_NOMEM: return "out of memory";
    case DC_ERR_INVALID: return "invalid argument";
    case DC_ERR_MISSING: return "missing";
    case DC_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

dc_status dc__fail(dc_error *err, dc_status status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void dc__ok(dc_error *err)
{
    if (err) {
        err->status = DC_OK;
        err->msg[0] = 0;
    }
}

void dc__assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "dc: internal error: %s (%s:%d)\n", cond, file, line);
    abort();
}

int dc__mul_size(size_t *out, size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int dc__add_size(size_t *out, size_t a, size_t b)
{
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

void *dc__aligned_alloc(size_t nbytes)
{
    void *p = NULL;
    if (nbytes == 0) nbytes = 64;
    /* posix_memalign: C11's aligned_alloc is not C99 */
    if (posix_memalign(&p, 64, nbytes) != 0) return NULL;
    return p;
}

void dc__aligned_free(void *p) { free(p); }

void dc__arena_measure(dc__arena *a)
{
    memset(a, 0, sizeof *a);
}

int dc__arena_init(dc__arena *a, size_t nbytes)
{
    memset(a, 0, sizeof *a);
    a->base = dc__aligned_alloc(nbytes);
    if (!a->base) return 0;
    a->cap = nbytes;
    return 1;
}

void dc__arena_free(dc__arena *a)
{
    if (a->base) dc__aligned_free(a->base);
    memset(a, 0, sizeof *a);
}

float *dc__arena_floats(dc__arena *a, size_t n)
{
    size_t bytes, end;
    if (!dc__mul_size(&bytes, n, sizeof(float)) || !dc__add_size(&bytes, bytes, 63) ||
        !dc__add_size(&end, a->used, bytes & ~(size_t)63)) {
        DC_ASSERT(!a->base); /* a real arena's plan measured every size */
        a->overflow = 1;
        return NULL;
    }
    DC_ASSERT(!a->base || end <= a->cap);
    float *p = a->base ? (float *)(a->base + a->used) : NULL;
    a->used = end;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *dc__arena_take(dc__arena *a, size_t x, size_t y, size_t z)
{
    size_t xy, xyz;
    if (!dc__mul_size(&xy, x, y) || !dc__mul_size(&xyz, xy, z)) {
        DC_ASSERT(!a->base);
        a->overflow = 1;
        return NULL;
    }
    return dc__arena_floats(a, xyz);
}

int dc__num_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int dc__thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* OpenBLAS's own setter (declared here: not every cblas.h has it) */
void openblas_set_num_threads(int num_threads);

void dc_set_threads(int n)
{
    if (n <= 0) return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    /* the OpenMP build of OpenBLAS shares our pool; this keeps the pthread
       build (if linked instead) at the same count */
    openblas_set_num_threads(n);
}

int dc_get_threads(void) { return dc__num_threads(); }

/* MemAvailable from /proc/meminfo in bytes, or 0 where there is none. */
static size_t available_memory(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    fclose(f);
    return (size_t)kb * 1024;
}

/* Bytes of int8 activation scratch a forward with the current thread count needs. */
static size_t int8_scratch_need(const dc__runner *r)
{
    size_t per_threads;
    if (!dc__mul_size(&per_threads, r->q8_tile_bytes, (size_t)dc__num_threads())) return SIZE_MAX;
    return per_threads > r->q8_chunk_bytes ? per_threads : r->q8_chunk_bytes;
}

dc_status dc__runner_reserve(dc__runner *r, size_t bytes, size_t wfloats, dc_error *err)
{
    /* Linux overcommits: a too-large malloc succeeds and the OOM killer ends
       the process halfway through. Refuse up front what cannot fit. */
    size_t q8need = int8_scratch_need(r);
    size_t need = (bytes > r->arena.cap ? bytes : 0) + (wfloats > r->wcap ? wfloats * sizeof(float) : 0) +
                  (q8need > r->q8cap ? q8need : 0);
    size_t avail = need > ((size_t)1 << 28) ? available_memory() : 0;
    if (avail && need > avail)
        return dc__fail(err, DC_ERR_NOMEM, "this forward pass needs %.0f MB more memory, only %.0f MB are "
                        "available (try a smaller --batch)", need / 1e6, avail / 1e6);
    if (bytes > r->arena.cap) {
        dc__arena_free(&r->arena);
        if (!dc__arena_init(&r->arena, bytes))
            return dc__fail(err, DC_ERR_NOMEM, "out of memory: a forward pass needs %.1f MB of "
                            "activations", bytes / 1e6);
    }
    r->arena.used = 0;
    if (wfloats > r->wcap) {
        dc__aligned_free(r->wbuf);
        r->wcap = 0;
        size_t wbytes;
        if (!dc__mul_size(&wbytes, wfloats, sizeof(float)) ||
            !(r->wbuf = dc__aligned_alloc(wbytes)))
            return dc__fail(err, DC_ERR_NOMEM, "out of memory: %.1f MB to decode weights",
                            wfloats * 4 / 1e6);
        r->wcap = wfloats;
    }
    if (q8need > r->q8cap) {
        dc__aligned_free(r->q8buf);
        r->q8cap = 0;
        if (q8need == SIZE_MAX || !(r->q8buf = dc__aligned_alloc(q8need)))
            return dc__fail(err, DC_ERR_NOMEM, "out of memory: %.1f MB to quantise activations",
                            q8need / 1e6);
        r->q8cap = q8need;
    }
    return DC_OK;
}

dc_status dc__runner_reserve_plan(dc__runner *r, const dc__arena *plan, size_t wfloats, dc_error *err)
{
    if (plan->overflow)
        return dc__fail(err, DC_ERR_NOMEM, "this forward pass needs more memory than can be "
                        "addressed (try a smaller --batch)");
    return dc__runner_reserve(r, plan->peak, wfloats, err);
}

void dc__runner_free(dc__runner *r)
{
    if (!r) return;
    dc__arena_free(&r->arena);
    dc__aligned_free(r->wbuf);
    r->wbuf = NULL;
    r->wcap = 0;
    dc__aligned_free(r->q8buf);
    r->q8buf = NULL;
    r->q8cap = 0;
}
