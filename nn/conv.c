/* nn/conv.c - 2-D convolution as im2col + sgemm, NCHW like PyTorch.

   For each sample the convolution is one matrix product
       y[cout, ho*wo] = W[cout, cin*kh*kw] . cols[cin*kh*kw, ho*wo]
   where column p of cols holds the input patch under output pixel p. The
   whole cols matrix of a 64x64x320 layer is 47 MB, larger than any cache, so
   it is built a tile of DC_CONV_TILE output pixels at a time, each thread
   filling its own tile (which stays in its L2) and multiplying it at once;
   OpenBLAS runs single-threaded inside our parallel region. A 1x1 stride-1
   unpadded convolution needs no cols at all: it is a plain sgemm.

   Networks call dc__conv2d, which takes the weight tensor as stored and
   gets the matrix to multiply by from dc__matrix_of; every product here
   goes through dc__matmul_cols. Both are in nn/linear.c, the one place a
   compute type is chosen. dc__conv2d_forward runs the same on an f32
   weight (tests, bench). */
#include "nn.h"

#include <string.h>

/* Output pixels per tile: wide enough for an efficient sgemm, narrow enough
   for the tile (cin*kh*kw x DC_CONV_TILE floats) to stay in L2. Measured with
   bench/conv_bench (see bench/README.md). */
#ifndef DC_CONV_TILE
#define DC_CONV_TILE 128
#endif
#if DC_CONV_TILE > DC_Q8_TILE
#error "an im2col tile must fit the int8 product's per-thread scratch (DC_Q8_TILE, nn/nn.h)"
#endif

int dc__conv2d_out_h(const dc__conv2d_shape *s)
{
    return (s->h + s->pad_t + s->pad_b - s->kh) / s->stride + 1;
}

int dc__conv2d_out_w(const dc__conv2d_shape *s)
{
    return (s->w + s->pad_l + s->pad_r - s->kw) / s->stride + 1;
}

dc__conv2d_shape dc__conv2d_shape_of(const dc__tensor *W, int n, int h, int w, int stride)
{
    int k = (int)W->shape[2], p = k / 2;
    dc__conv2d_shape s = {n, (int)W->shape[1], h, w, (int)W->shape[0], k, k, stride, p, p, p, p};
    return s;
}

static int is_pointwise(const dc__conv2d_shape *s)
{
    return s->kh == 1 && s->kw == 1 && s->stride == 1 && !s->pad_t && !s->pad_b && !s->pad_l &&
           !s->pad_r;
}

size_t dc__conv2d_scratch_floats(const dc__conv2d_shape *s)
{
    if (is_pointwise(s)) return 0;
    return (size_t)dc__num_threads() * (size_t)s->cin * s->kh * s->kw * DC_CONV_TILE;
}

/* Fills cols[k, 0..np) for output pixels p0..p0+np-1 of one sample x[cin, h, w]. */
static void im2col_tile(float *cols, const float *x, const dc__conv2d_shape *s, int wo, int p0,
                        int np)
{
    int K = s->cin * s->kh * s->kw;
    for (int k = 0; k < K; k++) {
        int c = k / (s->kh * s->kw), ky = (k / s->kw) % s->kh, kx = k % s->kw;
        const float *xc = x + (size_t)c * s->h * s->w;
        float *dst = cols + (size_t)k * np;
        int p = p0, end = p0 + np;
        while (p < end) {
            int oy = p / wo, ox = p % wo;
            int run = wo - ox < end - p ? wo - ox : end - p; /* rest of this output row */
            int iy = oy * s->stride - s->pad_t + ky;
            if (iy < 0 || iy >= s->h) {
                memset(dst, 0, sizeof(float) * (size_t)run);
            } else if (s->stride == 1) {
                /* contiguous: input columns ix = ox - pad_l + kx .. */
                const float *row = xc + (size_t)iy * s->w;
                int ix = ox - s->pad_l + kx, i = 0;
                for (; i < run && ix + i < 0; i++) dst[i] = 0;
                int lim = s->w - ix < run ? s->w - ix : run;
                if (lim > i) {
                    memcpy(dst + i, row + ix + i, sizeof(float) * (size_t)(lim - i));
                    i = lim;
                }
                for (; i < run; i++) dst[i] = 0;
            } else {
                const float *row = xc + (size_t)iy * s->w;
                for (int i = 0; i < run; i++) {
                    int ix = (ox + i) * s->stride - s->pad_l + kx;
                    dst[i] = ix >= 0 && ix < s->w ? row[ix] : 0.0f;
                }
            }
            dst += run;
            p += run;
        }
    }
}

/* Job j = (sample, tile of output pixels): im2col the tile, then one sgemm
   writes its columns of y (row stride P). */
static void conv_tile(float *y, const float *x, const dc__matrix *W, const dc__conv2d_shape *s, int j,
                      float *cols)
{
    int ho = dc__conv2d_out_h(s), wo = dc__conv2d_out_w(s), P = ho * wo;
    int tiles = (P + DC_CONV_TILE - 1) / DC_CONV_TILE;
    int n = j / tiles, p0 = (j % tiles) * DC_CONV_TILE;
    int np = P - p0 < DC_CONV_TILE ? P - p0 : DC_CONV_TILE;
    im2col_tile(cols, x + (size_t)n * s->cin * s->h * s->w, s, wo, p0, np);
    dc__matmul_cols(y + (size_t)n * s->cout * P + p0, P, W, cols, np, np);
}

/* y = conv(x) with W [cout, K] as the multiply seam gives it */
static void conv_run(float *y, const float *x, const dc__matrix *W, const float *b,
                     const dc__conv2d_shape *s, float *cols)
{
    int ho = dc__conv2d_out_h(s), wo = dc__conv2d_out_w(s), P = ho * wo;
    int K = s->cin * s->kh * s->kw;
    size_t xs = (size_t)s->cin * s->h * s->w, ys = (size_t)s->cout * P;

    if (is_pointwise(s)) {
        for (int n = 0; n < s->n; n++)
            dc__matmul_cols(y + n * ys, P, W, x + n * xs, P, P);
    } else {
        int tiles = (P + DC_CONV_TILE - 1) / DC_CONV_TILE, jobs = s->n * tiles;
        /* one tile job per (sample, tile); each thread owns one cols slice.
           With fewer jobs than threads (8x8 latents, batch 1) the jobs run
           one after another and OpenBLAS threads each sgemm instead. */
        size_t tile_floats = (size_t)K * DC_CONV_TILE;
        if (jobs >= dc__num_threads()) {
#pragma omp parallel for schedule(dynamic, 1)
            for (int j = 0; j < jobs; j++) {
                int tid = dc__thread_index();
                conv_tile(y, x, W, s, j, cols + (size_t)tid * tile_floats);
            }
        } else {
            for (int j = 0; j < jobs; j++) conv_tile(y, x, W, s, j, cols);
        }
    }
    if (b) {
        const dc__kernels *k = dc__kern();
#pragma omp parallel for if ((size_t)s->n * s->cout * P > 65536)
        for (int i = 0; i < s->n * s->cout; i++)
            k->scale_shift(y + (size_t)i * P, y + (size_t)i * P, (size_t)P, 1.0f, b[i % s->cout]);
    }
}

void dc__conv2d(dc__runner *r, float *y, const float *x, const dc__tensor *W, const dc__tensor *b,
                const dc__conv2d_shape *s, float *cols)
{
    DC_ASSERT(W->ndim == 4 && W->shape[0] == s->cout && W->shape[1] == s->cin &&
              W->shape[2] == s->kh && W->shape[3] == s->kw);
    dc__matrix m = dc__matrix_of(r, W, 0); /* [cout, cin*kh*kw] */
    conv_run(y, x, &m, b ? (const float *)b->data : NULL, s, cols);
}

void dc__conv2d_forward(float *y, const float *x, const float *W, const float *b,
                        const dc__conv2d_shape *s, float *cols)
{
    dc__matrix m = {W, s->cout, s->cin * s->kh * s->kw, NULL, NULL, 0, 0};
    conv_run(y, x, &m, b, s, cols);
}

void dc__conv2d_ref(float *y, const float *x, const float *W, const float *b,
                    const dc__conv2d_shape *s)
{
    int ho = dc__conv2d_out_h(s), wo = dc__conv2d_out_w(s);
    for (int n = 0; n < s->n; n++)
        for (int co = 0; co < s->cout; co++)
            for (int oy = 0; oy < ho; oy++)
                for (int ox = 0; ox < wo; ox++) {
                    double acc = b ? b[co] : 0.0;
                    for (int c = 0; c < s->cin; c++)
                        for (int ky = 0; ky < s->kh; ky++)
                            for (int kx = 0; kx < s->kw; kx++) {
                                int iy = oy * s->stride - s->pad_t + ky;
                                int ix = ox * s->stride - s->pad_l + kx;
                                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue;
                                acc += (double)x[(((size_t)n * s->cin + c) * s->h + iy) * s->w + ix] *
                                       W[(((size_t)co * s->cin + c) * s->kh + ky) * s->kw + kx];
                            }
                    y[(((size_t)n * s->cout + co) * ho + oy) * wo + ox] = (float)acc;
                }
}
