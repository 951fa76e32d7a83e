/* nn/norm.c - group norm (UNet, VAE) and layer norm (CLIP, transformers).

   Statistics are two-pass (mean, then the mean squared deviation) with
   double accumulation of f32 partial sums: one-pass E[x^2]-E[x]^2 loses
   digits on the 40,960-element groups of a 64x64 latent. Variance is the
   biased one, as PyTorch's norms use. */
#include "nn.h"

#include <math.h>

void dc__group_norm_forward(float *y, const float *x, const float *gamma, const float *beta,
                            int n, int c, int hw, int groups, float eps, int silu)
{
    const dc__kernels *k = dc__kern();
    int cg = c / groups;
    size_t gsize = (size_t)cg * hw;
    DC_ASSERT(c % groups == 0);
#pragma omp parallel for if ((size_t)n * c * hw > 65536)
    for (int i = 0; i < n * groups; i++) {
        const float *xg = x + (size_t)i * gsize;
        float *yg = y + (size_t)i * gsize;
        float mean = (float)(k->sum(xg, gsize) / (double)gsize);
        float rstd = (float)(1.0 / sqrt(k->sumsq_dev(xg, gsize, mean) / (double)gsize + eps));
        for (int j = 0; j < cg; j++) {
            int ch = (i % groups) * cg + j;
            float a = rstd * (gamma ? gamma[ch] : 1.0f);
            float b = (beta ? beta[ch] : 0.0f) - mean * a;
            k->scale_shift(yg + (size_t)j * hw, xg + (size_t)j * hw, (size_t)hw, a, b);
            if (silu) k->silu(yg + (size_t)j * hw, yg + (size_t)j * hw, (size_t)hw);
        }
    }
}

void dc__layer_norm_forward(float *y, const float *x, const float *gamma, const float *beta,
                            int rows, int c, float eps)
{
    const dc__kernels *k = dc__kern();
#pragma omp parallel for if ((size_t)rows * c > 65536) /* small: not worth a thread hand-off */
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * c;
        float mean = (float)(k->sum(xr, (size_t)c) / c);
        float rstd = (float)(1.0 / sqrt(k->sumsq_dev(xr, (size_t)c, mean) / c + eps));
        if ((gamma == NULL) != (beta == NULL)) { /* one of the two: do it in the scalar twin */
            dc__norm_affine_ref(y + (size_t)r * c, xr, (size_t)c, mean, rstd, gamma, beta);
        } else {
            k->norm_affine(y + (size_t)r * c, xr, (size_t)c, mean, rstd, gamma, beta);
        }
    }
}
