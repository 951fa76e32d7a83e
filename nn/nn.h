/* nn/nn.h - internal declarations shared by dc.c and the nn/ sources.

   Nothing here is public API (that is dc.h). Names: dc__ + snake_case.
   Layer kernels take plain pointers and sizes, llm.c style:
   <layer>_forward(out, in, weights..., sizes...). Layouts are written next
   to each declaration; activations are f32, row-major / NCHW like PyTorch.
   The networks (nn/clip.c, vae.c, unet.c, dit.c, each with its header,
   included at the end) share one idiom: tensors found by dc__load*,
   products with weights through dc__linear / dc__conv2d, memory planned
   on a measuring arena (see the arena below). */
#ifndef DC_NN_H
#define DC_NN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "../dc.h"
#include "q8.h" /* the int8 product */

/* ---- errors ---- */

/* Fills err (if non-NULL) and returns status, so callers can write
   `return dc__fail(err, DC_ERR_FORMAT, "%s: bad magic", path);` */
dc_status dc__fail(dc_error *err, dc_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void dc__ok(dc_error *err);

/* Programming errors only (never bad input): abort with file:line. */
#define DC_ASSERT(c) \
    do { if (!(c)) dc__assert_fail(#c, __FILE__, __LINE__); } while (0)
void dc__assert_fail(const char *cond, const char *file, int line);

/* ---- overflow-checked size math (before every allocation) ---- */

/* *out = a * b; returns 0 on overflow of size_t. */
int dc__mul_size(size_t *out, size_t a, size_t b);
/* *out = a + b; returns 0 on overflow. */
int dc__add_size(size_t *out, size_t a, size_t b);

/* 64-byte aligned allocation (SIMD loads, cache lines); NULL on failure. */
void *dc__aligned_alloc(size_t nbytes);
void dc__aligned_free(void *p);

/* ---- arena: activations allocated once per forward, sized ahead ----

   Every network plans its memory the same way. The code that takes a
   forward's buffers runs twice: first on a measuring arena (base == NULL:
   requests are only counted), then on the runner's arena, reserved for
   exactly the measured peak, which hands out the same offsets:

       dc__arena plan;
       dc__arena_measure(&plan);
       net_layout(&plan, sizes, &bufs);          (the UNet: its whole walk)
       if ((st = dc__runner_reserve_plan(r, &plan, m->decode_floats, err))) return st;
       net_layout(&r->arena, sizes, &bufs);

   So each buffer is listed once, beside its shape; the hot path never
   mallocs and a forward never runs out of scratch halfway. Scratch that
   lives only inside one layer is taken above a mark and handed back
   (dc__arena_mark, dc__arena_reset), so the layers share one region. */
typedef struct {
    char *base;     /* NULL while measuring */
    size_t cap;     /* bytes available (ignored while measuring) */
    size_t used;    /* bytes handed out so far */
    size_t peak;    /* high-water mark of used */
    int overflow;   /* a request overflowed size_t: the plan is void */
} dc__arena;

void dc__arena_measure(dc__arena *a);                 /* start a measuring pass */
int dc__arena_init(dc__arena *a, size_t nbytes);      /* 0 on allocation failure */
void dc__arena_free(dc__arena *a);
/* n floats, 64-aligned. While measuring returns NULL, and a size that
   overflows sets a->overflow; in a real arena a request the plan did not
   cover is a programming error (DC_ASSERT). */
float *dc__arena_floats(dc__arena *a, size_t n);
/* x * y * z floats (a buffer's shape), the product checked. */
float *dc__arena_take(dc__arena *a, size_t x, size_t y, size_t z);
static inline size_t dc__arena_mark(const dc__arena *a) { return a->used; }
static inline void dc__arena_reset(dc__arena *a, size_t mark) { a->used = mark; }

/* A forward's working memory, kept between calls so the hot path does not
   malloc: the arena for activations and the f32 scratch that f16/q8
   weights are decoded into. Grown (never shrunk) when a bigger batch comes. */
typedef struct {
    dc__arena arena;
    float *wbuf;        /* decoded weights */
    size_t wcap;        /* floats in wbuf */
    /* int8 compute (nn/int8.c): room to quantise and pack activations, for
       one product over DC_Q8_CHUNK columns or one per thread over
       DC_Q8_TILE (the two sizes: 0 when the weights are not packed; set
       with dc__runner_use_int8), reserved with the arena */
    unsigned char *q8buf;
    size_t q8cap;
    size_t q8_tile_bytes, q8_chunk_bytes;
} dc__runner;
/* Makes sure the arena holds `bytes` and the weight scratch `wfloats`;
   DC_ERR_NOMEM (with a message saying how much) when it cannot. Starts
   every forward from an empty arena. */
dc_status dc__runner_reserve(dc__runner *r, size_t bytes, size_t wfloats, dc_error *err);
/* The same for a measured plan: its peak, or DC_ERR_NOMEM when it overflowed. */
dc_status dc__runner_reserve_plan(dc__runner *r, const dc__arena *plan, size_t wfloats, dc_error *err);
void dc__runner_free(dc__runner *r);

/* ---- threads ---- */
int dc__num_threads(void);
/* This thread's index in the running parallel region, 0..dc__num_threads()-1
   (0 outside one, or without OpenMP): which slice of a shared scratch it owns. */
int dc__thread_index(void);

/* ---- weight file (nn/weights.c, docs/dcw-format.md) ---- */

enum { DC_F32 = 0, DC_F16 = 1, DC_Q8 = 2 };

typedef struct {
    const char *name;   /* points into the mapping; not NUL-terminated */
    int name_len;
    int dtype;          /* DC_F32, DC_F16, DC_Q8 */
    int ndim;
    int64_t shape[4];
    int64_t numel;
    const void *data;   /* inside the mapping, 64-aligned */
    uint64_t offset;    /* byte offset in the file, for messages */
    uint64_t nbytes;
    const struct dc__q8mat *q8; /* int8 compute: this matrix packed at load
                                   (nn/int8.c), else NULL */
} dc__tensor;

enum { DC_META_INT = 1, DC_META_FLOAT, DC_META_STR, DC_META_INTS,
       DC_META_FLOATS, DC_META_STRS };

typedef struct {
    const char *key;    /* into the mapping, not NUL-terminated */
    int key_len;
    int kind;           /* DC_META_* */
    uint32_t count;
    const uint8_t *payload; /* first payload byte (see format doc) */
    uint64_t offset;    /* byte offset of the entry, for messages */
} dc__meta;

typedef struct {
    char path[256];
    const uint8_t *map;
    size_t size;
    uint32_t version;
    int n_meta, n_tensors;
    dc__meta *meta;
    dc__tensor *tensors;
    struct dc__int8_state *int8; /* NULL: f32 compute; else the loader packs
                                    the matrices it finds (nn/int8.c) */
} dc__weights;

dc_status dc__weights_open(dc__weights *w, const char *path, int verify_checksum,
                           dc_error *err);
void dc__weights_close(dc__weights *w);
/* Checksum over the first n bytes (n multiple of 8): see the format doc. */
void dc__checksum(const uint8_t *p, size_t n, uint64_t *s1, uint64_t *s2);

const dc__meta *dc__meta_find(const dc__weights *w, const char *key);
dc_status dc__meta_int(const dc__weights *w, const char *key, int64_t *v, dc_error *err);
/* An int that must lie in [lo, hi] (config values that size allocations). */
dc_status dc__meta_int_in(const dc__weights *w, const char *key, int *v, int lo, int hi, dc_error *err);
dc_status dc__meta_float(const dc__weights *w, const char *key, double *v, dc_error *err);
/* Copies the string (NUL-terminated, truncated to cap) into buf. */
dc_status dc__meta_str(const dc__weights *w, const char *key, char *buf, size_t cap,
                       dc_error *err);
/* A whole array (kind 4: ints, kind 5: floats) copied into v[0..count);
   *n gets the count. An array of more than cap values is an error naming
   the key; with v NULL only the count is read (cap is not checked). */
dc_status dc__meta_ints(const dc__weights *w, const char *key, int64_t *v, uint32_t cap,
                        uint32_t *n, dc_error *err);
dc_status dc__meta_floats(const dc__weights *w, const char *key, double *v, uint32_t cap,
                          uint32_t *n, dc_error *err);
/* String array: element i as pointer + length into the mapping (kind 6).
   Walks the array: O(i). */
dc_status dc__meta_strs_at(const dc__weights *w, const char *key, uint32_t i,
                           const char **s, uint32_t *len, dc_error *err);

/* Finds tensor `name` and checks its shape (ndim dims, -1 = any); a missing
   or mis-shaped tensor is an error naming it and both shapes. */
dc_status dc__tensor_get(const dc__weights *w, const char *name, int ndim,
                         const int64_t *shape, const dc__tensor **out, dc_error *err);
const dc__tensor *dc__tensor_find(const dc__weights *w, const char *name);

/* ---- .npy files (nn/npy.c) ---- */

enum { DC_NPY_F32 = 0, DC_NPY_F64, DC_NPY_I32, DC_NPY_I64 };

typedef struct {
    int dtype;          /* DC_NPY_* */
    int ndim;
    int64_t shape[8];
    int64_t numel;
    void *data;         /* malloc'ed, C order, native little-endian */
} dc__npy;

dc_status dc__npy_load(dc__npy *a, const char *path, dc_error *err);
/* Like dc__npy_load, but refuses anything but f32 with a clear message. */
dc_status dc__npy_load_f32(dc__npy *a, const char *path, dc_error *err);
dc_status dc__npy_save(const char *path, int dtype, int ndim, const int64_t *shape,
                       const void *data, dc_error *err);
void dc__npy_free(dc__npy *a);
const char *dc__npy_dtype_name(int dtype);

/* ---- f16 / q8 decoding (nn/kernels.c) ---- */

float dc__f16_to_f32(uint16_t h);
uint16_t dc__f32_to_f16(float f);   /* round to nearest even */
/* Decodes weight rows [r0, r1) of a (rows x cols) tensor into out (f32,
   (r1-r0) x cols), whatever its dtype. */
void dc__decode_rows(float *out, const dc__tensor *t, int64_t r0, int64_t r1);

/* ---- elementwise kernels (nn/kernels.c): dispatched to the best SIMD
   the CPU has, each with a scalar reference twin `_ref` ---- */

typedef struct {
    void (*add)(float *y, const float *a, const float *b, size_t n);         /* y=a+b */
    void (*silu)(float *y, const float *x, size_t n);                       /* x*sigmoid(x) */
    void (*gelu_erf)(float *y, const float *x, size_t n);                   /* exact GELU */
    void (*gelu_tanh)(float *y, const float *x, size_t n);                  /* tanh approx */
    void (*quick_gelu)(float *y, const float *x, size_t n);                 /* x*sigmoid(1.702x) */
    void (*softmax)(float *x, size_t n);                                    /* in place, one row */
    double (*sum)(const float *x, size_t n);
    double (*sumsq_dev)(const float *x, size_t n, float mean);              /* sum (x-mean)^2 */
    void (*scale_shift)(float *y, const float *x, size_t n, float a, float b); /* y=x*a+b */
    void (*norm_affine)(float *y, const float *x, size_t n, float mean, float rstd,
                        const float *g, const float *b);                    /* (x-m)*r*g+b */
    void (*f16_to_f32)(float *y, const uint16_t *x, size_t n);
    void (*q8_to_f32)(float *y, const int8_t *x, size_t n, float scale);
    const char *name;   /* "avx512", "avx2", "neon", "scalar" */
} dc__kernels;

/* The scalar reference twins (plain C, double accumulation where it sums). */
void dc__add_ref(float *y, const float *a, const float *b, size_t n);
void dc__silu_ref(float *y, const float *x, size_t n);
void dc__gelu_erf_ref(float *y, const float *x, size_t n);
void dc__gelu_tanh_ref(float *y, const float *x, size_t n);
void dc__quick_gelu_ref(float *y, const float *x, size_t n);
void dc__softmax_ref(float *x, size_t n);
double dc__sum_ref(const float *x, size_t n);
double dc__sumsq_dev_ref(const float *x, size_t n, float mean);
void dc__scale_shift_ref(float *y, const float *x, size_t n, float a, float b);
void dc__norm_affine_ref(float *y, const float *x, size_t n, float mean, float rstd,
                         const float *g, const float *b);
void dc__f16_to_f32_ref(float *y, const uint16_t *x, size_t n);
void dc__q8_to_f32_ref(float *y, const int8_t *x, size_t n, float scale);

/* The kernel table in use (best for this CPU, or scalar in PORTABLE builds
   or when DC_KERNELS=scalar is set). */
const dc__kernels *dc__kern(void);
/* Specific tables, for tests: NULL where the CPU or build lacks them. */
const dc__kernels *dc__kernels_scalar(void);
const dc__kernels *dc__kernels_avx2(void);
const dc__kernels *dc__kernels_avx512(void);
const dc__kernels *dc__kernels_neon(void);

/* ---- where networks meet their weights (nn/linear.c, nn/conv.c) ----

   At build, every network finds its tensors through one loader, which
   checks each shape against the config and each dtype against its use:
   norms and biases are read in place as f32; matrices (linear and conv
   weights) may be f32, f16 or q8; embedding tables are read a row at a
   time. At forward, every product with a weight goes through dc__linear
   or dc__conv2d (the attention products, weight-free, go through
   dc__attention_forward). These two take the tensor as stored and decide
   how to multiply by it: today by decoding f16/q8 to f32 rows in the
   runner's scratch and calling sgemm. A compute type (bf16 or int8
   weights packed once at load, activations converted on the fly) is a
   choice made in nn/linear.c (dc__matrix_of, dc__matmul,
   dc__matmul_cols), and in no network. */

enum {
    DC_USE_F32,     /* read in place: must be stored f32 (norms, biases, fixed tables) */
    DC_USE_MATRIX,  /* multiplied through dc__linear / dc__conv2d: any dtype */
    DC_USE_ROWS     /* an embedding table, decoded a row at a time: any dtype */
};

typedef struct {
    const dc__weights *w;
    const char *prefix;     /* put before every tensor name: "unet.", "vae.", "text.", "" */
    dc_error *err;
    size_t decode_floats;   /* the weight scratch a forward needs: the largest matrix
                               found so far that is not read in place */
} dc__loader;

/* Finds prefix + the printf-formatted name with shape (d0, d1, d2, d3) of
   ndim dims (-1 = any size) and a dtype `use` (DC_USE_*) allows; an error
   names the tensor and what is wrong with it. */
dc_status dc__load(dc__loader *L, const dc__tensor **t, int use, int ndim, int64_t d0, int64_t d1,
                   int64_t d2, int64_t d3, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 9, 10)))
#endif
    ;
/* A linear layer: name.weight [out, in] and, if b is not NULL, name.bias [out]. */
dc_status dc__load_linear(dc__loader *L, const dc__tensor **w, const dc__tensor **b, int64_t out,
                          int64_t in, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
/* A convolution: name.weight [out, in, k, k], name.bias [out]. */
dc_status dc__load_conv(dc__loader *L, const dc__tensor **w, const dc__tensor **b, int64_t out,
                        int64_t in, int k, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 7, 8)))
#endif
    ;
/* A norm's affine: name.weight [c], name.bias [c]. */
dc_status dc__load_norm(dc__loader *L, const dc__tensor **g, const dc__tensor **b, int64_t c,
                        const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* A weight as the multiply kernel reads it: W [out, in], f32 rows, or
   packed for int8 compute (q8 not NULL; f32 then unused) with the
   runner's activation scratch, `stride` bytes per thread. */
typedef struct {
    const float *f32;
    int out, in;
    const struct dc__q8mat *q8;
    unsigned char *scratch;
    size_t stride, slices;  /* per-thread slices of the scratch: bytes, count */
} dc__matrix;

/* Floats of the runner's weight scratch that W takes while it is
   multiplied by (0 when it is read in place). */
size_t dc__decode_floats(const dc__tensor *W);
/* W ([out, in], or a conv's [out, cin, kh, kw] as [out, cin*kh*kw]) ready
   to multiply by; decoded at float `at` of the runner's weight scratch if
   it needs decoding. Two matrices used in turn sit side by side: the
   second at dc__decode_floats(first). Valid until that scratch is reused. */
dc__matrix dc__matrix_of(dc__runner *r, const dc__tensor *W, size_t at);
/* y [rows, out] = x [rows, in] . W^T + b  (b [out] or NULL) */
void dc__matmul(float *y, const float *x, const dc__matrix *W, const float *b, int rows);
/* The same for a weight tensor of any dtype (b: a [out] f32 tensor or NULL):
   the one linear layer every network calls. */
void dc__linear(dc__runner *r, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                int rows);
/* y [out, cols] = W . x [in, cols], row strides ldy and ldx: the product a
   convolution makes with its im2col columns (nn/conv.c) */
void dc__matmul_cols(float *y, int ldy, const dc__matrix *W, const float *x, int ldx, int cols);

/* The sgemm kernel under dc__matmul:
   y[n, out] = x[n, in] . W[out, in]^T + b[out]  (b may be NULL) */
void dc__linear_forward(float *y, const float *x, const float *W, const float *b,
                        int n, int in, int out);

/* 2-D convolution, NCHW. x [n, cin, h, w] -> y [n, cout, ho, wo] with
   ho = (h + pad_t + pad_b - kh) / stride + 1 (likewise wo).
   W [cout, cin, kh, kw], b [cout] or NULL. Padding may be asymmetric
   (the SD VAE downsampler pads (0,1,0,1)). cols is scratch of
   dc__conv2d_scratch_floats(...) floats. */
typedef struct {
    int n, cin, h, w, cout, kh, kw, stride;
    int pad_t, pad_b, pad_l, pad_r;
} dc__conv2d_shape;
/* The shape of conv weight W [cout, cin, k, k] on x [n, cin, h, w] with
   padding k/2 on every side (the UNet's and VAE's convs keep the size at
   stride 1). */
dc__conv2d_shape dc__conv2d_shape_of(const dc__tensor *W, int n, int h, int w, int stride);
int dc__conv2d_out_h(const dc__conv2d_shape *s);
int dc__conv2d_out_w(const dc__conv2d_shape *s);
size_t dc__conv2d_scratch_floats(const dc__conv2d_shape *s);
/* The one convolution every network calls: W a tensor of any dtype whose
   shape s describes, b a [cout] f32 tensor or NULL. */
void dc__conv2d(dc__runner *r, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                const dc__conv2d_shape *s, float *cols);
/* The im2col + sgemm kernel under it, on an f32 weight. */
void dc__conv2d_forward(float *y, const float *x, const float *W, const float *b,
                        const dc__conv2d_shape *s, float *cols);
/* Plain direct convolution, the scalar reference twin (slow; tests only). */
void dc__conv2d_ref(float *y, const float *x, const float *W, const float *b,
                    const dc__conv2d_shape *s);

/* ---- int8 compute (nn/int8.c) ----

   With int8 compute the loader packs every matrix it finds (linear and
   conv weights, decoded from f32, f16 or q8 and quantised per output row)
   into the layout nn/q8.h's product reads, once, and dc__matrix_of hands
   out the packed form; activations are quantised per token / per im2col
   column as they are multiplied. The weight's own pages of the mapping
   are then given back (they are not read again). */
#define DC_Q8_TILE 128   /* most columns of one product inside a parallel region
                            (a convolution's im2col tile, DC_CONV_TILE) */
#define DC_Q8_CHUNK 1024 /* columns (tokens) per product outside one: the
                            product shares them among the threads */
struct dc__q8variant;
/* Starts int8 compute on w with variant v: the loader packs from now on
   every matrix with at least min_side rows and inputs (DC_INT8_MIN_SIDE:
   the rule dc_model_load applies, nn/int8.c says why; 1: every matrix,
   for tests on small networks). */
#define DC_INT8_MIN_SIDE 64
dc_status dc__int8_begin(dc__weights *w, const struct dc__q8variant *v, int min_side, dc_error *err);
void dc__int8_end(dc__weights *w);
/* Packs matrix t (found by the loader under `name`) when w computes in int8
   and the rule in nn/int8.c does not keep it f32; DC_OK otherwise. */
dc_status dc__int8_pack_tensor(const dc__weights *w, const dc__tensor *t, const char *name,
                               dc_error *err);
/* Activation scratch for w's packed matrices: the most bytes one product
   over DC_Q8_TILE and over DC_Q8_CHUNK columns needs (0 with f32 compute). */
void dc__int8_scratch(const dc__weights *w, size_t *tile_bytes, size_t *chunk_bytes);
/* Makes r's forwards reserve that scratch (call once, before the first). */
void dc__runner_use_int8(dc__runner *r, const dc__weights *w);
/* 1 when variant v multiplies with a dot-product unit (VNNI, SDOT): where
   `auto` compute means int8. */
int dc__int8_is_dot(const struct dc__q8variant *v);
/* dc_blas_check's int8 fields: the variant dc__q8_best picks here and why. */
void dc__int8_describe(dc_blas_info *info);
/* The variant w's matrices are packed for, or NULL (f32 compute). */
const struct dc__q8variant *dc__int8_variant(const dc__weights *w);
/* Packed matrices in w and their bytes (what int8 compute holds in memory). */
void dc__int8_count(const dc__weights *w, int *packed, int *kept_f32, size_t *bytes);

/* ---- layers (nn/norm.c, nn/attn.c, nn/ops.c) ---- */

/* Group norm over x [n, c, hw] with g groups; gamma/beta [c] may be NULL.
   silu=1 applies SiLU to the result (the UNet/VAE always follow with it). */
void dc__group_norm_forward(float *y, const float *x, const float *gamma,
                            const float *beta, int n, int c, int hw, int groups,
                            float eps, int silu);
/* Layer norm over the last dim: x [rows, c]; gamma/beta NULL = no affine. */
void dc__layer_norm_forward(float *y, const float *x, const float *gamma,
                            const float *beta, int rows, int c, float eps);

/* Activations over n floats (in place allowed: y == x). */
enum { DC_ACT_SILU, DC_ACT_GELU, DC_ACT_GELU_TANH, DC_ACT_QUICK_GELU };
void dc__act_forward(float *y, const float *x, size_t n, int act);
/* GEGLU: x [rows, 2d] -> y [rows, d], y = x[:, :d] * gelu(x[:, d:]) */
void dc__geglu_forward(float *y, const float *x, int rows, int d);
/* Softmax over each row of x [rows, n], in place. */
void dc__softmax_forward(float *x, int rows, int n);
/* y = a + b, n floats (y may alias a or b). */
void dc__add_forward(float *y, const float *a, const float *b, size_t n);
/* Nearest 2x upsample: x [n, c, h, w] -> y [n, c, 2h, 2w] */
void dc__upsample2x_forward(float *y, const float *x, int n, int c, int h, int w);
/* Channel concat: a [n, ca, hw], b [n, cb, hw] -> y [n, ca+cb, hw] */
void dc__concat_forward(float *y, const float *a, const float *b, int n, int ca,
                        int cb, int hw);
/* Sinusoidal timestep embedding: t [n] -> y [n, dim].
   freq_i = exp(-ln(max_period) * i / (half - shift)), i < half = dim/2;
   flip_sin_to_cos=1 gives [cos, sin] (DiT, SD), 0 gives [sin, cos];
   an odd dim gets a zero last column. */
void dc__timestep_embedding(float *y, const float *t, int n, int dim,
                            int flip_sin_to_cos, float shift, float max_period);

/* Scaled dot-product attention, per batch b and head h:
     O = softmax(Q K^T * scale [+ causal mask]) V
   Q [nb, lq, ldq] with head h at columns h*dh .. h*dh+dh-1 (likewise K, V,
   O with their own row strides), so the output of a fused or separate q/k/v
   projection is used in place. Computed in query blocks: the full lq x lk
   score matrix is never held, only blocks of DC_ATTN_QBLOCK rows per thread.
   scratch: dc__attention_scratch_floats(lk) floats. */
#define DC_ATTN_QBLOCK 64
typedef struct {
    int nb, heads, lq, lk, dh;
    int ldq, ldk, ldv, ldo;         /* row strides in floats */
    size_t bsq, bsk, bsv, bso;      /* batch strides in floats */
    float scale;
    int causal;
} dc__attn_shape;
size_t dc__attention_scratch_floats(int lk);
void dc__attention_forward(float *o, const float *q, const float *k, const float *v,
                           const dc__attn_shape *s, float *scratch);
/* Straightforward reference (full score row per query), tests only. */
void dc__attention_ref(float *o, const float *q, const float *k, const float *v,
                       const dc__attn_shape *s);

/* ---- OpenBLAS kernel selection (nn/cpu.c) ---- */

/* What the CPU can run: "avx512", "avx2", "avx", "sse", "neon", "other". */
const char *dc__cpu_level(void);
/* Pure decision, testable: given the OpenBLAS core name and the CPU level,
   the OPENBLAS_CORETYPE to use, or NULL when the core is already right. */
const char *dc__blas_better_core(const char *corename, const char *cpu_level);

/* ---- images (nn/image.c) ---- */

#define DC_IMAGE_MAX_SIDE 16384
#define DC_IMAGE_MAX_PIXELS 100000000
#define DC_IMAGE_MAX_FILE (512 << 20)   /* bytes of one image file */
typedef struct {
    int w, h;
    unsigned char *rgb;   /* [h, w, 3] */
    int owned;            /* 0: from stb_image, 1: malloc'ed by dc, 2: borrowed */
} dc__image;
/* Why the bytes of an image file would be unsafe for Debian's stb_image
   2.27 (a reason to print), or NULL: dc__image_load refuses such files. */
const char *dc__image_refusal(const unsigned char *d, size_t n);
/* Decodes any stb_image format to 8-bit RGB; sizes checked before decoding. */
dc_status dc__image_load(dc__image *img, const char *path, dc_error *err);
void dc__image_free(dc__image *img);     /* any dc__image (borrowed ones: no-op) */
/* Pillow's Image.resize((w, h), BICUBIC or BOX), bit-exact. */
dc_status dc__image_resize(dc__image *out, const dc__image *in, int w, int h, int box, dc_error *err);
/* Stable Diffusion (official code): Resize(size, bicubic), CenterCrop, [-1, 1]; out [3, size, size] */
dc_status dc__preprocess_sd(float *out, const dc__image *img, int size, dc_error *err);
/* DiT / ADM center_crop_arr, then [-1, 1]; out [3, size, size] */
dc_status dc__preprocess_adm(float *out, const dc__image *img, int size, dc_error *err);

/* ---- statistics (nn/stats.c) ---- */

/* One-sided p-value P(T > t) of Student's t with df degrees of freedom. */
double dc__student_t_sf(double t, double df);

/* ---- the networks and the tokenizer: each in its own file ---- */
#include "tokenizer.h"
#include "clip.h"
#include "vae.h"
#include "unet.h"
#include "dit.h"

#endif /* DC_NN_H */
