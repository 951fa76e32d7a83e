/* nn/attn.c - scaled dot-product attention in query blocks.

   Self-attention at SD's 64x64 latent has 4096 queries and 4096 keys: a
   full score matrix is 64 MB per head. Here each thread takes one block of
   DC_ATTN_QBLOCK queries of one (batch, head) at a time:
       S = scale * Q_blk K^T         [qb, lk]   (sgemm)
       S = softmax(S) row by row     (with the causal mask when asked)
       O_blk = S V                   [qb, dh]   (sgemm)
   so a thread never holds more than qb x lk scores (1 MB at lk = 4096).
   Q, K, V and O are read in place with their row strides: heads are column
   slices, so no transposes or copies are needed around the projections. */
#include "nn.h"

#include <cblas.h>
#include <math.h>

size_t dc__attention_scratch_floats(int lk)
{
    return (size_t)dc__num_threads() * DC_ATTN_QBLOCK * (size_t)lk;
}

void dc__attention_forward(float *o, const float *q, const float *k, const float *v,
                           const dc__attn_shape *s, float *scratch)
{
    const dc__kernels *kern = dc__kern();
    int qblocks = (s->lq + DC_ATTN_QBLOCK - 1) / DC_ATTN_QBLOCK;
    int jobs = s->nb * s->heads * qblocks;
    /* one job per (batch, head, query block): plenty of parallelism, and
       each job's sgemms are small enough to run single-threaded */
#pragma omp parallel for schedule(dynamic, 1)
    for (int j = 0; j < jobs; j++) {
        int tid = dc__thread_index();
        int b = j / (s->heads * qblocks), h = (j / qblocks) % s->heads;
        int q0 = (j % qblocks) * DC_ATTN_QBLOCK;
        int qb = s->lq - q0 < DC_ATTN_QBLOCK ? s->lq - q0 : DC_ATTN_QBLOCK;
        float *S = scratch + (size_t)tid * DC_ATTN_QBLOCK * s->lk;
        const float *qh = q + b * s->bsq + (size_t)q0 * s->ldq + (size_t)h * s->dh;
        const float *kh = k + b * s->bsk + (size_t)h * s->dh;
        const float *vh = v + b * s->bsv + (size_t)h * s->dh;
        float *oh = o + b * s->bso + (size_t)q0 * s->ldo + (size_t)h * s->dh;
        /* causal: query i sees keys 0..i, so this block needs keys < q0 + qb */
        int lk = s->causal ? (q0 + qb < s->lk ? q0 + qb : s->lk) : s->lk;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, qb, lk, s->dh, s->scale, qh, s->ldq,
                    kh, s->ldk, 0.0f, S, lk);
        for (int i = 0; i < qb; i++) {
            float *row = S + (size_t)i * lk;
            int valid = s->causal ? q0 + i + 1 : lk;
            if (valid > lk) valid = lk;
            kern->softmax(row, (size_t)valid);
            for (int c = valid; c < lk; c++) row[c] = 0.0f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, qb, s->dh, lk, 1.0f, S, lk, vh,
                    s->ldv, 0.0f, oh, s->ldo);
    }
}

void dc__attention_ref(float *o, const float *q, const float *k, const float *v,
                       const dc__attn_shape *s)
{
    for (int b = 0; b < s->nb; b++)
        for (int h = 0; h < s->heads; h++)
            for (int i = 0; i < s->lq; i++) {
                const float *qi = q + b * s->bsq + (size_t)i * s->ldq + (size_t)h * s->dh;
                int valid = s->causal ? (i + 1 < s->lk ? i + 1 : s->lk) : s->lk;
                double mx = -INFINITY, sum = 0;
                /* two passes over the keys: max, then weights and output */
                for (int j = 0; j < valid; j++) {
                    const float *kj = k + b * s->bsk + (size_t)j * s->ldk + (size_t)h * s->dh;
                    double d = 0;
                    for (int c = 0; c < s->dh; c++) d += (double)qi[c] * kj[c];
                    d *= s->scale;
                    if (d > mx) mx = d;
                }
                float *oi = o + b * s->bso + (size_t)i * s->ldo + (size_t)h * s->dh;
                double acc[512];
                DC_ASSERT(s->dh <= 512);
                for (int c = 0; c < s->dh; c++) acc[c] = 0;
                for (int j = 0; j < valid; j++) {
                    const float *kj = k + b * s->bsk + (size_t)j * s->ldk + (size_t)h * s->dh;
                    const float *vj = v + b * s->bsv + (size_t)j * s->ldv + (size_t)h * s->dh;
                    double d = 0;
                    for (int c = 0; c < s->dh; c++) d += (double)qi[c] * kj[c];
                    double e = exp(d * s->scale - mx);
                    sum += e;
                    for (int c = 0; c < s->dh; c++) acc[c] += e * vj[c];
                }
                for (int c = 0; c < s->dh; c++) oi[c] = (float)(acc[c] / sum);
            }
}
