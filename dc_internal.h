/* dc_internal.h - the classifier's inner parts (dc.c), declared for the
   tests: the noise schedule, the denoiser seam, the loop itself, the
   timestep grid and the noise generator. Not public API (that is dc.h).

   The seam: the loop in dc__classify_core knows nothing about networks; it
   asks a dc__denoiser for predictions. dc.c wraps a model and a class list
   in one; tests/test_classify.c wraps a stand-in whose errors are known. */
#ifndef DC_INTERNAL_H
#define DC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "dc.h"

/* The noise schedule: alphas_cumprod[t] for t < T, in double. */
#define DC_MAX_T 4096
typedef struct {
    int T;
    int v_prediction;               /* target v = sqrt(a) eps - sqrt(1-a) z0 */
    double alphas_cumprod[DC_MAX_T];
} dc__schedule;
/* kind "linear" (ADM/DiT) or "scaled_linear" (SD), betas from beta_start to beta_end */
dc_status dc__schedule_make(dc__schedule *s, const char *kind, double beta_start, double beta_end,
                            int T, dc_error *err);

/* What the classifier needs from a model: predict the target for n noised
   latents zt [n, L] at integer timesteps t [n] under conditions cls [n]
   (indices into the caller's class list). */
typedef struct {
    dc_status (*predict)(void *self, float *out, const float *zt, const int *t, const int *cls,
                         int n, dc_error *err);
    void *self;
    int latent;                     /* L = C*H*W */
    int max_batch;                  /* most items per predict call */
    const dc__schedule *schedule;
} dc__denoiser;

/* The paper's Algorithm 1/2 (or a sequential rule, as o->stop says) for
   the latent z0 [L] among n_classes conditions of d. */
dc_status dc__classify_core(const dc__denoiser *d, const float *z0, int n_classes,
                            const dc_classify_opts *o, dc_result *res, dc_error *err);

/* The grid of the official code: start = T / max_n / 2, step T / max_n,
   max_n points. Returns the count written to grid (<= cap). */
int dc__timestep_grid(int *grid, int cap, int T, int max_n);
/* Stage subset: grid[len/n/2 :: len/n][:n] as grid indices. Returns count. */
int dc__stage_subset(int *idx, int cap, int grid_len, int n);

/* Seeded portable standard normal noise for (seed, stream): n floats.
   A counter-based generator, so any stream is reachable without the others. */
void dc__normal_noise(float *out, size_t n, uint64_t seed, uint64_t stream);

#endif /* DC_INTERNAL_H */
