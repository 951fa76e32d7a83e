#define _POSIX_C_SOURCE 200809L /* clock_gettime */
/* dc.c - the classifier: the method of "Your Diffusion Model is Secretly a
   Zero-Shot Classifier" (Li et al., ICCV 2023), its Algorithms 1 and 2.

   The data flow for one image:

     image --resize, crop, VAE encoder--> latent z, once per image
     class list --class ids, or prompts through the text encoder--> one
         conditioning per class, once per class list (dc_classes_new)
     for each timestep t of the grid, with noise eps drawn once per (t, trial):
         z_t = sqrt(a_t) z + sqrt(1 - a_t) eps     the same z_t for every class
         the denoiser predicts eps (or v) from z_t under each remaining class
         error(class, t) = the loss between prediction and target, averaged
                           over the latent (l2 by default)
     the stopping rule drops classes along the way:
         adaptive    the paper's stages: after stage k keep the keep[k] best
         sequential  a paired t-test against the best, one timestep at a time
         calibrated  the same test on an importance sample of timesteps
         screened    calibrated, with a z-test on the calibrated spread
                     that cuts a large field before the t-test can run
     budgets (max_evals, max_seconds) stop any rule early, undecided
     decision: the class with the lowest mean error; the ranking follows
         the order in which the others were dropped

   Below, each part comes before what uses it: the timestep grid and
   stages, the noise, scoring a batch, the four stopping rules, the loop
   that runs one of them (dc__classify_core), the class list and the
   denoiser (one path for DiT and the UNet), and the public entry points:
   dc_classify_image -> dc_classify_rgb (which encodes the image) ->
   classify_latent, and dc_classify_latent (a latent already encoded) ->
   classify_latent, which runs dc__classify_core on the model. The loop
   sees the model only through a dc__denoiser (dc_internal.h), so the tests
   drive it with a stand-in of known errors. The networks, the model file
   and everything numeric beneath them live in nn/. */
#include "dc.h"
#include "dc_internal.h"
#include "nn/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Most candidate classes in one classification (ImageNet has 1000). */
#define DC_MAX_CLASSES 100000

/* ---- the timestep grid and stages of the official code ---- */

/* The timesteps a classification may visit: max_n of the T training
   timesteps, evenly spaced. The adaptive schedule's stages take evenly
   strided subsets of this grid; the sequential rules visit it point by
   point. */
int dc__timestep_grid(int *grid, int cap, int T, int max_n)
{
    /* start = T // max_n // 2; t = start, start + T // max_n, ... (< T), first max_n */
    if (max_n < 1 || max_n > T) return 0;
    int step = T / max_n, n = 0;
    for (int t = step / 2; t < T && n < max_n && n < cap; t += step) grid[n++] = t;
    return n;
}

int dc__stage_subset(int *idx, int cap, int grid_len, int n)
{
    /* grid[len // n // 2 :: len // n][:n] */
    if (n < 1 || n > grid_len) return 0;
    int stride = grid_len / n, k = 0;
    for (int i = stride / 2; i < grid_len && k < n && k < cap; i += stride) idx[k++] = i;
    return k;
}

/* ---- the noise ----

   How much noise each timestep adds: the training schedule's
   alphas_cumprod, read from the model's metadata. */

dc_status dc__schedule_make(dc__schedule *s, const char *kind, double beta_start, double beta_end,
                            int T, dc_error *err)
{
    memset(s, 0, sizeof *s);
    if (T < 2 || T > DC_MAX_T)
        return dc__fail(err, DC_ERR_FORMAT, "noise schedule: %d training timesteps (2..%d)", T, DC_MAX_T);
    if (!(beta_start > 0 && beta_end < 1 && beta_start <= beta_end))
        return dc__fail(err, DC_ERR_FORMAT, "noise schedule: betas %g..%g are not in (0, 1)",
                        beta_start, beta_end);
    int scaled = !strcmp(kind, "scaled_linear");
    if (!scaled && strcmp(kind, "linear"))
        return dc__fail(err, DC_ERR_UNSUPPORTED, "noise schedule '%s' (dc knows linear, "
                        "scaled_linear)", kind);
    s->T = T;
    double a = 1.0;
    for (int t = 0; t < T; t++) {
        /* linspace in double, as CompVis (torch float64) and ADM (numpy) do */
        double beta;
        if (scaled) {
            double r = sqrt(beta_start) + (sqrt(beta_end) - sqrt(beta_start)) * t / (T - 1);
            beta = r * r;
        } else {
            beta = beta_start + (beta_end - beta_start) * t / (T - 1);
        }
        a *= 1.0 - beta;
        s->alphas_cumprod[t] = a;
    }
    return DC_OK;
}

/* The model's schedule (schedule.* metadata): its betas, and whether the
   denoiser predicts the noise or v. */
static dc_status model_schedule(const dc__weights *w, dc__schedule *s, dc_error *err)
{
    char kind[32], pred[32];
    double b0, b1;
    int64_t T;
    dc_status st;
    if ((st = dc__meta_str(w, "schedule.beta_schedule", kind, sizeof kind, err)) ||
        (st = dc__meta_float(w, "schedule.beta_start", &b0, err)) ||
        (st = dc__meta_float(w, "schedule.beta_end", &b1, err)) ||
        (st = dc__meta_int(w, "schedule.num_train_timesteps", &T, err)) ||
        (st = dc__meta_str(w, "schedule.prediction_type", pred, sizeof pred, err)))
        return st;
    if ((st = dc__schedule_make(s, kind, b0, b1, (int)(T > DC_MAX_T ? DC_MAX_T + 1 : T), err))) return st;
    if (!strcmp(pred, "v_prediction")) s->v_prediction = 1;
    else if (strcmp(pred, "epsilon"))
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: prediction type '%s' (dc knows epsilon, "
                        "v_prediction)", w->path, pred);
    return DC_OK;
}

/* The noise itself: the official code draws torch.randn without a seed,
   so its results do not reproduce; dc's noise is a pure function of (seed,
   stream, index): SplitMix64 finalisers over a counter give uniform bits,
   Box-Muller turns pairs into normals. Integer steps are exact everywhere;
   log/sqrt/cos are computed in double and rounded to float, so x86 and ARM
   agree except where a last-bit libm difference crosses a float rounding
   boundary (vanishingly rare). */
static uint64_t splitmix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dc__normal_noise(float *out, size_t n, uint64_t seed, uint64_t stream)
{
    const double two_pi = 6.283185307179586476925;
    uint64_t key = splitmix(seed ^ splitmix(stream + 0x632be59bd9b4e019ull));
    for (size_t i = 0; i < n; i += 2) {
        double u1 = (double)((splitmix(key + i) >> 11) + 1) * 0x1p-53; /* (0, 1] */
        double u2 = (double)(splitmix(key + i + 1) >> 11) * 0x1p-53;   /* [0, 1) */
        double r = sqrt(-2.0 * log(u1));
        out[i] = (float)(r * cos(two_pi * u2));
        if (i + 1 < n) out[i + 1] = (float)(r * sin(two_pi * u2));
    }
}

/* ---- scoring: noised latents, predictions, errors ---- */

/* Per-element loss between target and prediction, averaged over the latent
   (F.mse_loss / l1_loss / huber_loss(delta=1) then .mean(dim=(1,2,3))). */
static double latent_loss(const float *target, const float *pred, int L, dc_loss loss)
{
    double s = 0;
    for (int i = 0; i < L; i++) {
        double d = (double)pred[i] - target[i], a = fabs(d);
        s += loss == DC_LOSS_L2 ? d * d : loss == DC_LOSS_L1 ? a : (a < 1 ? 0.5 * d * d : a - 0.5);
    }
    return s / L;
}

/* The state of one classification. */
typedef struct {
    const dc__denoiser *d;
    const dc_classify_opts *o;
    const float *z0;
    int n_classes, L, grid_len;
    int *grid;            /* [grid_len] timesteps */
    int *col_of;          /* grid index -> result column, -1 until evaluated */
    int *alive, n_alive;  /* remaining classes */
    char *drop;           /* [n_classes] scratch: dropped this round */
    double *err_sum;      /* [n_classes] over scored (timestep, trial) items */
    float *spread;        /* [grid_len] calibrated stopping: per grid point; NULL otherwise */
    double *is_sum;       /* [n_classes] calibrated: sum of weight x error over the draws */
    int *is_n;            /* [n_classes] calibrated: draws the class took part in */
    float *buf;           /* batch: zt, prediction, noise per item */
    int *bt, *bc, *bg;    /* batch: timestep, class, grid index per item */
    int *br;              /* batch: trial per item */
    long evals_total;     /* for progress: an upper bound */
    double t0;            /* start, for the seconds budget */
    int stopped;          /* a budget stopped the rule */
    dc_result *res;
} classify_state;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The budgets: would `more` evaluations beyond the `pending` ones exceed
   max_evals, or has max_seconds passed (checked once a timestep has been
   scored, so a decision always rests on at least one)? */
static int over_budget(const classify_state *s, long pending, long more)
{
    const dc_classify_opts *o = s->o;
    if (o->max_evals > 0 && s->res->n_evals + pending + more > o->max_evals) return 1;
    return o->max_seconds > 0 && s->res->n_timesteps > 0 && now_seconds() - s->t0 >= o->max_seconds;
}

/* Runs one batch of (grid index, trial, class) items and adds their errors. */
static dc_status run_batch(classify_state *s, int n, dc_error *err)
{
    const dc__schedule *sch = s->d->schedule;
    int L = s->L;
    float *zt = s->buf, *pred = zt + (size_t)n * L, *eps = pred + (size_t)n * L;
    for (int i = 0; i < n; i++) {
        /* the same noise for every class at this (timestep, trial): paired */
        double a = sch->alphas_cumprod[s->bt[i]];
        float sa = (float)sqrt(a), sb = (float)sqrt(1 - a);
        float *e = eps + (size_t)i * L, *z = zt + (size_t)i * L;
        dc__normal_noise(e, (size_t)L, s->o->seed, (uint64_t)s->bg[i] * s->o->trials + s->br[i]);
        for (int j = 0; j < L; j++) z[j] = sa * s->z0[j] + sb * e[j];
        if (sch->v_prediction) /* v = sqrt(a) eps - sqrt(1-a) z0: the target replaces eps */
            for (int j = 0; j < L; j++) e[j] = sa * e[j] - sb * s->z0[j];
    }
    dc_status st = s->d->predict(s->d->self, pred, zt, s->bt, s->bc, n, err);
    if (st != DC_OK) return st;
    for (int i = 0; i < n; i++) {
        double e = latent_loss(eps + (size_t)i * L, pred + (size_t)i * L, L, s->o->loss);
        int c = s->bc[i], col = s->col_of[s->bg[i]];
        s->err_sum[c] += e;
        s->res->n_scored[c]++;
        float *cell = &s->res->errors[(size_t)c * s->grid_len + col];
        *cell = isnan(*cell) ? (float)(e / s->o->trials) : *cell + (float)(e / s->o->trials);
    }
    s->res->n_evals += n;
    if (s->o->progress) s->o->progress(s->o->progress_user, s->res->n_evals, s->evals_total);
    return DC_OK;
}

/* Scores every alive class at grid indices gi[0..n) (each with all trials),
   in batches of at most max_batch items. A timestep the budgets do not
   allow is not begun: s->stopped is set and the caller sees col_of[gi[k]]
   still -1 from there on. */
static dc_status evaluate(classify_state *s, const int *gi, int n, dc_error *err)
{
    int fill = 0, maxb = s->d->max_batch > 0 ? s->d->max_batch : 1;
    if (s->o->batch > 0 && s->o->batch < maxb) maxb = s->o->batch;
    for (int k = 0; k < n; k++) {
        if (over_budget(s, fill, (long)s->o->trials * s->n_alive)) {
            s->stopped = 1;
            break;
        }
        s->col_of[gi[k]] = s->res->n_timesteps;
        s->res->timesteps[s->res->n_timesteps++] = s->grid[gi[k]];
        for (int r = 0; r < s->o->trials; r++)
            for (int a = 0; a < s->n_alive; a++) {
                s->bg[fill] = gi[k], s->bt[fill] = s->grid[gi[k]], s->br[fill] = r;
                s->bc[fill] = s->alive[a];
                if (++fill == maxb) {
                    dc_status st = run_batch(s, fill, err);
                    if (st != DC_OK) return st;
                    fill = 0;
                }
            }
    }
    return fill ? run_batch(s, fill, err) : DC_OK;
}

/* A class's mean error over the grid: plain for the fixed schedule and the
   t-test; the importance-weighted estimate for calibrated stopping. */
static double mean_of(const classify_state *s, int c)
{
    if (s->is_sum) return s->is_n[c] ? s->is_sum[c] / s->is_n[c] : INFINITY;
    return s->res->n_scored[c] ? s->err_sum[c] / s->res->n_scored[c] : INFINITY;
}

/* Sorts alive classes by mean error (ties: lower class index first). */
static void sort_alive(classify_state *s)
{
    for (int i = 1; i < s->n_alive; i++) { /* insertion sort: n is small, order is stable */
        int c = s->alive[i], j = i;
        double m = mean_of(s, c);
        while (j > 0 && (mean_of(s, s->alive[j - 1]) > m ||
                         (mean_of(s, s->alive[j - 1]) == m && s->alive[j - 1] > c))) {
            s->alive[j] = s->alive[j - 1];
            j--;
        }
        s->alive[j] = c;
    }
}

/* Classes leave `alive` from the back; ranking is filled from the end, so
   a class dropped earlier ranks below every class dropped later. */
static void drop_to(classify_state *s, int keep, int *rank_end)
{
    for (int i = s->n_alive - 1; i >= keep; i--) s->res->ranking[--*rank_end] = s->alive[i];
    if (keep < s->n_alive) s->n_alive = keep;
}

/* ---- stopping rule 1: the paper's adaptive schedule ---- */

/* The paper's fixed adaptive schedule (official eval_prob_adaptive). */
static dc_status classify_adaptive(classify_state *s, int *rank_end, dc_error *err)
{
    int *sub = malloc(sizeof(int) * (size_t)s->grid_len), *fresh = malloc(sizeof(int) * (size_t)s->grid_len);
    dc_status st = DC_OK;
    if (!sub || !fresh) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (int k = 0; st == DC_OK && k < s->o->n_stages; k++) {
        int n = dc__stage_subset(sub, s->grid_len, s->grid_len, s->o->samples[k]), nf = 0;
        for (int i = 0; i < n; i++) /* skip timesteps an earlier stage evaluated */
            if (s->col_of[sub[i]] < 0) fresh[nf++] = sub[i];
        st = evaluate(s, fresh, nf, err);
        sort_alive(s);
        if (s->stopped) break; /* a budget: the ranking so far, no stage's cut */
        drop_to(s, s->o->keep[k] < s->n_alive ? s->o->keep[k] : s->n_alive, rank_end);
    }
    free(sub);
    free(fresh);
    return st;
}

/* ---- stopping rule 2: sequential, a paired t-test (Clark & Jaini 2023) ---- */

/* The order sequential stopping visits the grid in: coarse to fine (bit
   reversal of the grid index, so the first few already span the whole
   range, like a sample drawn evenly from it). */
static void visit_order(const classify_state *s, int *order)
{
    int n = s->grid_len, bits = 0, no = 0;
    while ((1 << bits) < n) bits++;
    for (int i = 0; i < (1 << bits); i++) {
        int r = 0;
        for (int b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
        if (r < n) order[no++] = r;
    }
}

/* Each rule's own settings (used when the options leave them 0). The
   t-test: Clark & Jaini's, 20 scores before the first test, level 2e-3.
   Calibrated stopping: 10 scores and level 5e-3, chosen on 200 validation
   images (test images outside the reported subset,
   data/fmnist_val_200.txt) of both shipped models: there 10 scores cost
   no accuracy against 20 and 6 saved little; level 5e-3 cost none against
   2e-3 and 1e-2 lost an image (bench/README.md has the table). */
#define DC_SEQUENTIAL_MIN_SCORES 20
#define DC_SEQUENTIAL_ALPHA 2e-3
#define DC_CALIBRATED_MIN_SCORES 10
#define DC_CALIBRATED_ALPHA 5e-3
static int min_scores(const dc_classify_opts *o)
{
    if (o->ttest_min_scores > 0) return o->ttest_min_scores;
    return o->stop == DC_STOP_SEQUENTIAL ? DC_SEQUENTIAL_MIN_SCORES : DC_CALIBRATED_MIN_SCORES;
}

static double test_level(const dc_classify_opts *o)
{
    if (o->ttest_alpha > 0) return o->ttest_alpha;
    return o->stop == DC_STOP_SEQUENTIAL ? DC_SEQUENTIAL_ALPHA : DC_CALIBRATED_ALPHA;
}

/* Classes marked in s->drop (by their place in alive) leave, walking from
   the worst up, so that classes dropped in the same round keep their order
   in the ranking. */
static void drop_marked(classify_state *s, int *rank_end)
{
    char *drop = s->drop;
    for (int a = s->n_alive - 1; a >= 1; a--)
        if (drop[a]) s->res->ranking[--*rank_end] = s->alive[a];
    int kept = 1;
    for (int a = 1; a < s->n_alive; a++)
        if (!drop[a]) s->alive[kept++] = s->alive[a];
    s->n_alive = kept;
}

/* One round of the paired test: each alive class against the current best,
   on the draws so far (draw k: result column col[k], weight w[k], NULL for
   all 1). A one-sided paired t-test on the weighted differences; a class
   significantly worse at level alpha leaves (Clark & Jaini 2023). */
static void prune_by_test(classify_state *s, const int *col, const double *w, int draws, int *rank_end)
{
    sort_alive(s);
    int best = s->alive[0];
    char *drop = s->drop;
    const float *eb = s->res->errors + (size_t)best * s->grid_len;
    for (int a = 1; a < s->n_alive; a++) {
        const float *ec = s->res->errors + (size_t)s->alive[a] * s->grid_len;
        double sum = 0, sq = 0;
        for (int k = 0; k < draws; k++) {
            double dlt = ((double)ec[col[k]] - eb[col[k]]) * (w ? w[k] : 1.0);
            sum += dlt;
            sq += dlt * dlt;
        }
        double mean = sum / draws, var = (sq - draws * mean * mean) / (draws - 1);
        double p = var > 0 ? dc__student_t_sf(mean / sqrt(var / draws), draws - 1) : (mean > 0 ? 0.0 : 1.0);
        drop[a] = p < test_level(s->o); /* significantly worse than the best */
    }
    drop_marked(s, rank_end);
}

/* Sequential pruning: timesteps in coarse-to-fine order; after each, the
   paired test on the per-timestep error differences (Clark & Jaini 2023:
   min 20 scores, p = 2e-3). Column j of the errors holds the j-th
   timestep visited. */
static dc_status classify_sequential(classify_state *s, int *rank_end, dc_error *err)
{
    int *order = malloc(sizeof(int) * (size_t)s->grid_len * 2), *col = order + s->grid_len;
    if (!order) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    visit_order(s, order);
    dc_status st = DC_OK;
    for (int done = 0; st == DC_OK && done < s->grid_len && s->n_alive > 1; done++) {
        st = evaluate(s, &order[done], 1, err);
        if (s->stopped) break;
        col[done] = done;
        if (st == DC_OK && done + 1 >= min_scores(s->o)) prune_by_test(s, col, NULL, done + 1, rank_end);
    }
    sort_alive(s);
    free(order);
    return st;
}

/* ---- stopping rule 3: calibrated, the t-test on an importance sample ---- */

/* The rules every timestep calibration meets, from a file, the model's
   metadata or the options (dc.h: dc_calibration_load). */
static dc_status check_calibration(const int *t, const float *spread, int n, const char *where, dc_status bad,
                                   dc_error *err)
{
    if (n < 1 || n > DC_CALIB_MAX_T)
        return dc__fail(err, bad, "%s: %d timesteps (1 to %d)", where, n, DC_CALIB_MAX_T);
    for (int i = 0; i < n; i++)
        if (t[i] < 0 || t[i] >= DC_CALIB_MAX_T || (i && t[i] <= t[i - 1]) || !(spread[i] >= 0 && spread[i] < 1e30f))
            return dc__fail(err, bad, "%s: point %d (t %d, spread %g): timesteps must be whole numbers "
                            "0 <= t < %d, strictly ascending, spreads finite and >= 0", where, i + 1, t[i],
                            (double)spread[i], DC_CALIB_MAX_T);
    return DC_OK;
}

/* Calibrated stopping: the spread at each grid timestep, linear between
   the calibration points and constant beyond the ends. */
static dc_status grid_spread(classify_state *s, dc_error *err)
{
    const dc_classify_opts *o = s->o;
    if (!o->calib_t || !o->calib_spread || o->n_calib < 1)
        return dc__fail(err, DC_ERR_INVALID, "calibrated stopping needs the model's timestep calibration "
                        "(dc calibrate or dc eval --calibrate on held-out images, then --calibration FILE)");
    dc_status st = check_calibration(o->calib_t, o->calib_spread, o->n_calib, "timestep calibration",
                                     DC_ERR_INVALID, err);
    if (st != DC_OK) return st;
    for (int g = 0; g < s->grid_len; g++) {
        int t = s->grid[g], k = 0;
        const float *v = o->calib_spread;
        while (k < o->n_calib && o->calib_t[k] < t) k++;
        if (k == 0) s->spread[g] = v[0];
        else if (k == o->n_calib) s->spread[g] = v[o->n_calib - 1];
        else {
            double f = (double)(t - o->calib_t[k - 1]) / (o->calib_t[k] - o->calib_t[k - 1]);
            s->spread[g] = (float)((1 - f) * v[k - 1] + f * v[k]);
        }
    }
    return DC_OK;
}

/* 2^-1, 2^-2 + ..: the van der Corput sequence, i = 1, 2, ...: 1/2, 1/4,
   3/4, 1/8, 5/8, ... fills (0, 1) evenly at every length. */
static double van_der_corput(unsigned i)
{
    double u = 0, f = 0.5;
    for (; i; i >>= 1, f *= 0.5) u += (i & 1) * f;
    return u;
}

/* The rules that draw by the timestep calibration: calibrated and screened. */
static int uses_calibration(dc_stop stop)
{
    return stop == DC_STOP_CALIBRATED || stop == DC_STOP_SCREENED;
}

/* ---- stopping rule 4: screened, calibrated with a screen for many classes ----
   The t-test needs min_scores draws before it can test anything, since it
   estimates each difference's variance from the draws themselves: with
   1,000 classes that is 10,000 evaluations before the first class leaves.
   The calibration already knows the variance: the spread of the error
   difference at each timestep, over images and classes. So after every
   draw k below min_scores the screen runs a one-sided z-test on the
   weighted mean difference from the best, with standard error
   sqrt(sum_j w_j^2 spread(t_j)^2) / k (the weighted mean's, were each
   draw's difference to scatter by the calibrated spread). The spread
   includes how much classes' mean differences vary, so it overstates the
   noise of a close pair, and the screen errs towards keeping. The level
   is the rule's, per class and round, without dividing it among the
   classes: dropping a wrong class is no error, and the one test that can
   err, the best class's, is one test per round, as in the t-test. (A
   Bonferroni level spent 33-41% more evaluations at 1,000 classes and
   kept the best exactly as often, in bench/many_classes.c's simulation
   from the DiT's errors on validation images.) From min_scores draws on,
   the t-test of the calibrated rule takes over. */

/* The screen after `draws` draws, var_sum = sum_j w_j^2 spread(t_j)^2. */
static void prune_by_screen(classify_state *s, double var_sum, int draws, int *rank_end)
{
    sort_alive(s);
    if (!(var_sum > 0) || s->n_alive < 2) return;
    double se = sqrt(var_sum) / draws, level = test_level(s->o), best = mean_of(s, s->alive[0]);
    for (int a = 1; a < s->n_alive; a++) {
        double z = (mean_of(s, s->alive[a]) - best) / se;
        s->drop[a] = 0.5 * erfc(z / sqrt(2.0)) < level; /* P(Z > z) */
    }
    drop_marked(s, rank_end);
}

/* Calibrated stopping: the same test on an importance sample of timesteps.
   The decision is the mean error over the grid. A t-test on timesteps
   visited in plain order estimates it from an even sample; visiting the
   timesteps where classes differ most first would test a biased one (on
   the SD model's validation images, whose mean differences are not where
   their spread is, that costs 3.5 points). Here timestep g is drawn with
   probability p(g) mixing the calibrated spread (the share the spread says
   g carries of the decision's noise) with 10% uniform (so no weight
   exceeds 10), and each draw's error counts with weight
   1 / (grid_len p(g)): the weighted mean is an unbiased estimate of the
   grid mean, with the least variance when p follows the spread (importance
   sampling), so the test stops sooner without aiming at another quantity.
   Draws come from a van der Corput sequence through p's cumulative
   distribution (even coverage, no randomness beyond the noise); a timestep
   drawn again costs no evaluation. At most 4 x grid_len draws, and none
   once every grid timestep has been evaluated for the survivors. With
   screen set (rule 4), the screen runs after each draw before the t-test
   can. */
#define DC_CALIB_UNIFORM_SHARE 0.1
static dc_status classify_calibrated(classify_state *s, int *rank_end, dc_error *err)
{
    int n = s->grid_len, max_draws = 4 * n;
    double *cdf = malloc(sizeof(double) * (size_t)n * 2), *wg = cdf + n;
    double *w = malloc(sizeof(double) * (size_t)max_draws);
    int *col = malloc(sizeof(int) * (size_t)max_draws);
    if (!cdf || !w || !col) {
        free(cdf), free(w), free(col);
        return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    double total = 0, acc = 0;
    for (int g = 0; g < n; g++) total += s->spread[g];
    for (int g = 0; g < n; g++) {
        double p = (total > 0 ? (1 - DC_CALIB_UNIFORM_SHARE) * s->spread[g] / total : 0) +
                   (total > 0 ? DC_CALIB_UNIFORM_SHARE : 1.0) / n;
        wg[g] = 1.0 / (n * p);
        cdf[g] = acc += p;
    }
    dc_status st = DC_OK;
    int evaluated = 0, screen = s->o->stop == DC_STOP_SCREENED;
    double var_sum = 0;
    for (int k = 0; st == DC_OK && k < max_draws && evaluated < n && s->n_alive > 1; k++) {
        double u = van_der_corput((unsigned)k + 1) * acc;
        int lo = 0, hi = n - 1; /* the first g with cdf[g] > u */
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (cdf[mid] > u) hi = mid;
            else lo = mid + 1;
        }
        if (s->col_of[lo] < 0) {
            st = evaluate(s, &lo, 1, err);
            evaluated++;
        }
        if (st != DC_OK || s->stopped) break;
        col[k] = s->col_of[lo], w[k] = wg[lo];
        for (int a = 0; a < s->n_alive; a++) {
            int c = s->alive[a];
            s->is_sum[c] += w[k] * s->res->errors[(size_t)c * s->grid_len + col[k]];
            s->is_n[c]++;
        }
        var_sum += w[k] * w[k] * (double)s->spread[lo] * s->spread[lo];
        if (k + 1 >= min_scores(s->o)) prune_by_test(s, col, w, k + 1, rank_end);
        else if (screen) prune_by_screen(s, var_sum, k + 1, rank_end);
    }
    sort_alive(s);
    free(cdf), free(w), free(col);
    return st;
}

/* ---- the loop: checks, state, one stopping rule, the result ---- */

/* The rule DC_STOP_AUTO stands for. The calibrated rule reaches the t-test's
   accuracy with fewer evaluations, but only a calibration says where to
   draw; without one the t-test still decides in a few hundred evaluations
   where the paper's schedule spends n x 50 + 5 x 450. From
   DC_SCREENED_FROM classes the screen pays for itself. */
static dc_stop auto_rule(int calibrated, int n_classes)
{
    if (!calibrated) return DC_STOP_SEQUENTIAL;
    return n_classes >= DC_SCREENED_FROM ? DC_STOP_SCREENED : DC_STOP_CALIBRATED;
}

/* dc_result.note: what a user whose default ran the slower rule can do. */
static const char *ran_for_lack_of_calibration(dc_stop asked, dc_stop ran)
{
    if (asked != DC_STOP_AUTO || ran != DC_STOP_SEQUENTIAL) return "";
    return "no timestep calibration in the model or the options, so the t-test ran; a calibration "
           "(dc calibrate -m MODEL IMAGES... -o FILE on a few hundred unlabelled images, then the "
           "calibration option: --calibration FILE) lets the calibrated rule decide with fewer evaluations";
}

dc_stop dc_classify_rule(const dc_model *m, const dc_classify_opts *o, int n_classes, const char **note)
{
    dc_stop rule = !o ? DC_STOP_AUTO : o->stop;
    if (o && o->stop == DC_STOP_AUTO) {
        int calibrated = (o->calib_t && o->calib_spread && o->n_calib > 0) || (m && dc_model_has_calibration(m));
        rule = auto_rule(calibrated, n_classes);
    }
    if (note) *note = ran_for_lack_of_calibration(o ? o->stop : DC_STOP_AUTO, rule);
    return rule;
}

const char *dc_stop_name(dc_stop stop)
{
    switch (stop) {
    case DC_STOP_ADAPTIVE: return "adaptive";
    case DC_STOP_SEQUENTIAL: return "sequential";
    case DC_STOP_CALIBRATED: return "calibrated";
    case DC_STOP_SCREENED: return "screened";
    case DC_STOP_AUTO: return "auto";
    }
    return "unknown";
}

/* dc_result.vs_best: each class against the best on the timesteps both
   were scored on. A dropped class's own mean covers fewer (and, for the
   adaptive schedule's first stage, other) timesteps than the best's, so
   the two means do not compare; the paired difference does, and it is
   what the rules test. */
static void gaps_to_best(dc_result *res)
{
    int nt = res->n_timesteps, best = res->ranking[0];
    const float *eb = res->errors + (size_t)best * nt;
    for (int c = 0; c < res->n_classes; c++) {
        const float *ec = res->errors + (size_t)c * nt;
        double sum = 0;
        int k = 0;
        for (int j = 0; j < nt; j++)
            if (!isnan(ec[j]) && !isnan(eb[j])) sum += (double)ec[j] - eb[j], k++;
        res->vs_best[c] = c == best ? 0.0 : k ? sum / k : NAN;
    }
}

/* One latent among n_classes conditions of the denoiser: the options are
   checked, the state allocated, the stopping rule run; the result keeps
   the ranking, each class's mean error and its error per timestep. */
dc_status dc__classify_core(const dc__denoiser *d, const float *z0, int n_classes,
                            const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    double t0 = now_seconds();
    const char *res_note = "";
    memset(res, 0, sizeof *res);
    if (n_classes < 1) return dc__fail(err, DC_ERR_INVALID, "no classes to choose from");
    if (o->n_stages < 1 || o->n_stages > DC_MAX_STAGES)
        return dc__fail(err, DC_ERR_INVALID, "--samples/--keep: %d stages (1..%d)", o->n_stages, DC_MAX_STAGES);
    for (int k = 0; k < o->n_stages; k++) {
        if (o->samples[k] < 1 || (k && o->samples[k] < o->samples[k - 1]))
            return dc__fail(err, DC_ERR_INVALID, "--samples: stage %d has %d timesteps; counts must be "
                            ">= 1 and not decrease", k + 1, o->samples[k]);
        if (o->keep[k] < 1 || (k && o->keep[k] > o->keep[k - 1]))
            return dc__fail(err, DC_ERR_INVALID, "--keep: stage %d keeps %d classes; counts must be >= 1 "
                            "and not increase", k + 1, o->keep[k]);
    }
    if (o->stop == DC_STOP_ADAPTIVE && o->keep[o->n_stages - 1] != 1)
        return dc__fail(err, DC_ERR_INVALID, "--keep: the last stage must keep 1 class, not %d",
                        o->keep[o->n_stages - 1]);
    int T = d->schedule->T, max_n = o->samples[o->n_stages - 1];
    if (max_n > T)
        return dc__fail(err, DC_ERR_INVALID, "--samples: %d timesteps, the model has %d", max_n, T);
    if (o->trials < 1 || o->trials > 1000)
        return dc__fail(err, DC_ERR_INVALID, "--trials: %d (1..1000)", o->trials);
    if (o->stop != DC_STOP_ADAPTIVE && o->stop != DC_STOP_SEQUENTIAL && o->stop != DC_STOP_CALIBRATED &&
        o->stop != DC_STOP_SCREENED && o->stop != DC_STOP_AUTO)
        return dc__fail(err, DC_ERR_INVALID, "stopping rule %d: adaptive, sequential, calibrated, screened or auto",
                        (int)o->stop);
    /* from here on the rule that runs, DC_STOP_AUTO resolved on the options */
    dc_classify_opts ro = *o;
    ro.stop = dc_classify_rule(NULL, o, n_classes, &res_note);
    o = &ro;
    if (o->max_evals < 0 || !(o->max_seconds >= 0))
        return dc__fail(err, DC_ERR_INVALID, "budgets: --max-evals %ld and --max-seconds %g must be >= 0 (0: none)",
                        o->max_evals, o->max_seconds);
    if (o->max_evals > 0 && o->max_evals < (long)n_classes * o->trials)
        return dc__fail(err, DC_ERR_INVALID, "--max-evals %ld cannot score one timestep: %d classes x %d trials "
                        "need %ld", o->max_evals, n_classes, o->trials, (long)n_classes * o->trials);
    if (o->stop != DC_STOP_ADAPTIVE && (!(o->ttest_alpha >= 0 && o->ttest_alpha < 1) || o->ttest_min_scores < 0 ||
                                        o->ttest_min_scores == 1))
        return dc__fail(err, DC_ERR_INVALID, "the t-test: alpha %g must be in (0, 1) and the "
                        "minimum scores (%d) at least 2 (0 for either: the rule's default)", o->ttest_alpha,
                        o->ttest_min_scores);

    classify_state s;
    memset(&s, 0, sizeof s);
    s.d = d, s.o = o, s.z0 = z0, s.n_classes = n_classes, s.L = d->latent, s.res = res, s.t0 = t0;
    int maxb = d->max_batch > 0 ? d->max_batch : 1;
    size_t cells = 0;
    s.grid = malloc(sizeof(int) * (size_t)max_n);
    s.col_of = malloc(sizeof(int) * (size_t)max_n);
    s.alive = malloc(sizeof(int) * (size_t)n_classes);
    s.drop = calloc((size_t)n_classes, 1);
    s.err_sum = calloc((size_t)n_classes, sizeof(double));
    int calibrated = uses_calibration(o->stop);
    if (calibrated) {
        s.spread = malloc(sizeof(float) * (size_t)max_n);
        s.is_sum = calloc((size_t)n_classes, sizeof(double));
        s.is_n = calloc((size_t)n_classes, sizeof(int));
    }
    s.bt = malloc(sizeof(int) * (size_t)maxb * 4);
    res->ranking = malloc(sizeof(int) * (size_t)n_classes);
    res->mean_error = malloc(sizeof(double) * (size_t)n_classes);
    res->n_scored = calloc((size_t)n_classes, sizeof(int));
    res->timesteps = malloc(sizeof(int) * (size_t)max_n);
    res->vs_best = malloc(sizeof(double) * (size_t)n_classes);
    if (dc__mul_size(&cells, (size_t)n_classes, (size_t)max_n)) res->errors = malloc(sizeof(float) * cells);
    size_t bufn;
    if (dc__mul_size(&bufn, (size_t)maxb * 3, (size_t)s.L)) s.buf = dc__aligned_alloc(bufn * sizeof(float));
    dc_status st = DC_OK;
    if (!s.grid || !s.col_of || !s.alive || !s.drop || !s.err_sum ||
        (calibrated && (!s.spread || !s.is_sum || !s.is_n)) || !s.bt || !res->ranking ||
        !res->mean_error || !res->n_scored || !res->timesteps || !res->vs_best || !res->errors || !s.buf) {
        st = dc__fail(err, DC_ERR_NOMEM, "out of memory for %d classes x %d timesteps", n_classes, max_n);
        goto done;
    }
    s.bc = s.bt + maxb, s.bg = s.bc + maxb, s.br = s.bg + maxb;
    s.grid_len = dc__timestep_grid(s.grid, max_n, T, max_n);
    if (s.spread && (st = grid_spread(&s, err)) != DC_OK) goto done;
    res->n_classes = n_classes;
    for (int i = 0; i < s.grid_len; i++) s.col_of[i] = -1;
    for (size_t i = 0; i < cells; i++) res->errors[i] = NAN;
    for (int c = 0; c < n_classes; c++) s.alive[c] = c;
    s.n_alive = n_classes;
    /* the progress total: every class at every timestep of the grid, the
       most a sequential rule can cost; the paper's schedule costs less
       (its later stages score only the classes kept), and exactly: */
    s.evals_total = (long)n_classes * max_n * o->trials;
    if (o->stop == DC_STOP_ADAPTIVE) {
        long total = 0, alive = n_classes;
        int *sub = malloc(sizeof(int) * (size_t)s.grid_len);
        char *seen = calloc((size_t)s.grid_len, 1);
        for (int k = 0; sub && seen && k < o->n_stages; k++) {
            int n = dc__stage_subset(sub, s.grid_len, s.grid_len, o->samples[k]), fresh = 0;
            for (int i = 0; i < n; i++) fresh += !seen[sub[i]], seen[sub[i]] = 1;
            total += alive * (long)fresh * o->trials;
            if (o->keep[k] < alive) alive = o->keep[k];
        }
        free(sub);
        free(seen);
        s.evals_total = total;
    }
    if (o->max_evals > 0 && o->max_evals < s.evals_total) s.evals_total = o->max_evals;

    int rank_end = n_classes;
    st = o->stop == DC_STOP_ADAPTIVE     ? classify_adaptive(&s, &rank_end, err)
         : o->stop == DC_STOP_SEQUENTIAL ? classify_sequential(&s, &rank_end, err)
                                         : classify_calibrated(&s, &rank_end, err);
    if (st == DC_OK) {
        sort_alive(&s); /* the classes in the running by mean error, whatever stopped the rule */
        res->n_left = s.n_alive;
        res->undecided = s.stopped && s.n_alive > 1;
        res->stop = o->stop;
        res->note = res_note;
        for (int i = 0; i < s.n_alive; i++) res->ranking[i] = s.alive[i];
        DC_ASSERT(s.n_alive == rank_end);
        for (int c = 0; c < n_classes; c++) res->mean_error[c] = mean_of(&s, c);
        /* compact the per-class error rows to the timesteps evaluated */
        for (int c = 1; c < n_classes; c++)
            memmove(res->errors + (size_t)c * res->n_timesteps, res->errors + (size_t)c * s.grid_len,
                    sizeof(float) * (size_t)res->n_timesteps);
        gaps_to_best(res);
    }
done:
    free(s.grid);
    free(s.col_of);
    free(s.alive);
    free(s.drop);
    free(s.err_sum);
    free(s.spread);
    free(s.is_sum);
    free(s.is_n);
    free(s.bt);
    dc__aligned_free(s.buf);
    if (st != DC_OK) dc_result_free(res);
    else res->seconds = now_seconds() - t0;
    return st;
}

/* ---- candidate classes: the conditioning, prepared once per class list ---- */

struct dc_classes {
    int n;
    char **names;       /* [n] display names */
    /* the conditioning, one entry per class, in the model family's form */
    int *ids;           /* class-conditional (DiT): the model's class id */
    float *context;     /* text-conditional (UNet): [n, ctx_len, ctx_dim] prompt embeddings */
    int ctx_len, ctx_dim;
    int truncated;      /* prompts cut to the tokenizer's length */
};

int dc_classes_truncated(const dc_classes *cl) { return cl ? cl->truncated : 0; }

int dc_classes_count(const dc_classes *cl) { return cl ? cl->n : 0; }
const char *dc_classes_name(const dc_classes *cl, int i)
{
    return cl && i >= 0 && i < cl->n ? cl->names[i] : "";
}

void dc_classes_free(dc_classes *cl)
{
    if (!cl) return;
    for (int i = 0; i < cl->n && cl->names; i++) free(cl->names[i]);
    free(cl->names);
    free(cl->ids);
    free(cl->context);
    free(cl);
}

static char *dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = 0;
    }
    return p;
}

static int same_name(const char *a, size_t na, const char *b, size_t nb)
{
    if (na != nb) return 0;
    for (size_t i = 0; i < na; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 0;
    }
    return 1;
}

/* Class-conditional: names -> class ids (by the model's classes.names, or numbers). */
static dc_status classes_for_ids(dc_classes *cl, const dc_model *m, const char *const *names, int n,
                                 dc_error *err)
{
    int have_names = dc__meta_find(&m->w, "classes.names") != NULL, total = m->dit->num_classes;
    cl->n = names ? n : total;
    cl->names = calloc((size_t)cl->n, sizeof *cl->names);
    cl->ids = malloc(sizeof(int) * (size_t)cl->n);
    if (!cl->names || !cl->ids) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (int i = 0; i < cl->n; i++) {
        int id = -1;
        if (!names) {
            id = i;
        } else {
            const char *want = names[i];
            size_t wl = strlen(want);
            for (int k = 0; have_names && k < total && id < 0; k++) {
                const char *s;
                uint32_t len;
                if (dc__meta_strs_at(&m->w, "classes.names", (uint32_t)k, &s, &len, NULL) == DC_OK &&
                    same_name(s, len, want, wl))
                    id = k;
            }
            if (id < 0) { /* a number? */
                char *end;
                long v = strtol(want, &end, 10);
                if (wl && !*end && v >= 0 && v < total) id = (int)v;
            }
            if (id < 0)
                return dc__fail(err, DC_ERR_INVALID, "class '%s' is not one of the model's %d classes "
                                "(give a name from `dc info -v`, or a number 0..%d)", want, total, total - 1);
            for (int j = 0; j < i; j++)
                if (cl->ids[j] == id)
                    return dc__fail(err, DC_ERR_INVALID, "class '%s' is listed twice", want);
        }
        cl->ids[i] = id;
        const char *s;
        uint32_t len;
        char num[32];
        if (have_names && dc__meta_strs_at(&m->w, "classes.names", (uint32_t)id, &s, &len, NULL) == DC_OK) {
            cl->names[i] = dup_str(s, len);
        } else {
            snprintf(num, sizeof num, "%d", id);
            cl->names[i] = dup_str(num, strlen(num));
        }
        if (!cl->names[i]) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    return DC_OK;
}

/* Text-conditional: each name -> template -> tokens -> the text encoder's
   last hidden state, all prompts in one batch (the official code uses
   text_encoder(ids)[0], the last hidden state, for SD 1.x and 2.x alike). */
static dc_status classes_for_text(dc_classes *cl, dc_ctx *c, const char *const *names, int n, const char *tmpl,
                                  dc_error *err);

/* No class list given: the model's own (classes.names, as the shipped
   models carry), each a separate string for the path below. */
static dc_status classes_from_model(dc_classes *cl, dc_ctx *c, const char *tmpl, dc_error *err)
{
    const dc__meta *list = dc__meta_find(&c->model->w, "classes.names");
    if (!list || list->kind != DC_META_STRS || !list->count)
        return dc__fail(err, DC_ERR_INVALID, "a text-conditional model without class names in its file "
                        "needs a class list (--class, --classes or --preset)");
    if (list->count > DC_MAX_CLASSES)
        return dc__fail(err, DC_ERR_INVALID, "the model lists %u classes: dc takes at most %d", list->count,
                        DC_MAX_CLASSES);
    uint32_t n = list->count, len;
    const char *s;
    char **names = calloc(n ? n : 1, sizeof *names);
    dc_status st = names ? DC_OK : dc__fail(err, DC_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; st == DC_OK && i < n; i++) {
        st = dc__meta_strs_at(&c->model->w, "classes.names", i, &s, &len, err);
        if (st == DC_OK && !(names[i] = dup_str(s, len))) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    }
    if (st == DC_OK) st = classes_for_text(cl, c, (const char *const *)names, (int)n, tmpl, err);
    for (uint32_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
    return st;
}

static dc_status classes_for_text(dc_classes *cl, dc_ctx *c, const char *const *names, int n, const char *tmpl,
                                  dc_error *err)
{
    const dc_model *m = c->model;
    char model_tmpl[1024];
    if (!tmpl) { /* the model's own template (classes.template), else the official code's default */
        tmpl = "a photo of a {}.";
        if (dc__meta_find(&m->w, "classes.template") &&
            dc__meta_str(&m->w, "classes.template", model_tmpl, sizeof model_tmpl, NULL) == DC_OK)
            tmpl = model_tmpl;
    }
    if (!names) return classes_from_model(cl, c, tmpl, err);
    if (!strstr(tmpl, "{}"))
        return dc__fail(err, DC_ERR_INVALID, "prompt template '%s' has no {} for the class name", tmpl);
    const char *slot = strstr(tmpl, "{}");
    int L = m->tok->max_length, D = m->clip->hidden;
    cl->n = n, cl->ctx_len = L, cl->ctx_dim = D;
    cl->names = calloc((size_t)n, sizeof *cl->names);
    int64_t *ids = malloc(sizeof(int64_t) * (size_t)n * L);
    size_t cells;
    if (dc__mul_size(&cells, (size_t)n * L, (size_t)D)) cl->context = malloc(sizeof(float) * cells);
    dc_status st = DC_OK;
    if (!cl->names || !ids || !cl->context) st = dc__fail(err, DC_ERR_NOMEM, "out of memory for %d prompts", n);
    for (int i = 0; st == DC_OK && i < n; i++) {
        if (!names[i][strspn(names[i], " \t\r\n")]) { /* the prompt would name no class */
            st = dc__fail(err, DC_ERR_INVALID, "class %d has an empty name", i + 1);
            break;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) {
                st = dc__fail(err, DC_ERR_INVALID, "class '%s' is listed twice", names[i]);
                break;
            }
        if (st != DC_OK) break;
        size_t pre = (size_t)(slot - tmpl), nl = strlen(names[i]), post = strlen(slot + 2);
        char *prompt = malloc(pre + nl + post + 1);
        if (!(cl->names[i] = dup_str(names[i], nl)) || !prompt) {
            free(prompt);
            st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
            break;
        }
        memcpy(prompt, tmpl, pre);
        memcpy(prompt + pre, names[i], nl);
        memcpy(prompt + pre + nl, slot + 2, post + 1);
        int n_tok, cut;
        st = dc__tokenize(m->tok, prompt, ids + (size_t)i * L, &n_tok, &cut, err);
        cl->truncated += cut;
        free(prompt);
    }
    /* the encoder in batches, so a thousand prompts do not need a thousand-prompt arena */
    for (int i = 0; st == DC_OK && i < n; i += 64) {
        int b = n - i < 64 ? n - i : 64;
        st = dc__clip_forward(m->clip, &c->runner, cl->context + (size_t)i * L * D, ids + (size_t)i * L, b, L,
                              DC_CLIP_LAST, err);
    }
    free(ids);
    return st;
}

dc_status dc_classes_new(dc_classes **out, dc_ctx *c, const char *const *names, int n,
                         const char *prompt_template, dc_error *err)
{
    dc__ok(err);
    if (!out || !c) return dc__fail(err, DC_ERR_INVALID, "dc_classes_new: NULL argument");
    *out = NULL;
    if (names && n < 1) return dc__fail(err, DC_ERR_INVALID, "the class list is empty");
    if (n > DC_MAX_CLASSES)
        return dc__fail(err, DC_ERR_INVALID, "%d classes: dc takes at most %d", n, DC_MAX_CLASSES);
    dc_classes *cl = calloc(1, sizeof *cl);
    if (!cl) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    dc_status st;
    if (c->model->dit) st = classes_for_ids(cl, c->model, names, n, err);
    else if (c->model->unet && c->model->clip && c->model->tok)
        st = classes_for_text(cl, c, names, n, prompt_template, err);
    else st = dc__fail(err, DC_ERR_UNSUPPORTED, "model family '%s' cannot classify", c->model->family);
    if (st != DC_OK) {
        dc_classes_free(cl);
        return st;
    }
    *out = cl;
    return DC_OK;
}

/* ---- the denoiser: the model's network under one class list ----

   One path for both families: each item's timestep and conditioning (a
   class id for DiT, a prompt embedding for the UNet) are gathered into
   batch buffers, the network predicts, and the target's channels are kept
   (a learned-variance model outputs twice the latent's channels; the
   second half is its variance, not part of the target). */

typedef struct {
    const dc_model *m;
    dc__runner *r;
    const dc_classes *cl;
    int ch, h, w;         /* the latent [ch, h, w] */
    int out_ch;           /* the network's output channels */
    float *tf;            /* [max_batch] timesteps, as the networks take them */
    int64_t *y;           /* DiT: [max_batch] class ids */
    float *ctx;           /* UNet: [max_batch, ctx_len, ctx_dim] prompt embeddings */
    float *out;           /* [max_batch, out_ch, h, w] the network's output */
} model_denoiser;

static dc_status model_predict(void *self, float *out, const float *zt, const int *t, const int *cls, int n,
                               dc_error *err)
{
    model_denoiser *d = self;
    const dc_classes *cl = d->cl;
    dc_status st;
    for (int i = 0; i < n; i++) d->tf[i] = (float)t[i];
    if (d->m->dit) {
        for (int i = 0; i < n; i++) d->y[i] = cl->ids[cls[i]];
        st = dc__dit_forward(d->m->dit, d->r, d->out, zt, d->tf, d->y, n, err);
    } else {
        size_t per = (size_t)cl->ctx_len * cl->ctx_dim;
        for (int i = 0; i < n; i++)
            memcpy(d->ctx + i * per, cl->context + (size_t)cls[i] * per, per * sizeof(float));
        st = dc__unet_forward(d->m->unet, d->r, d->out, zt, d->tf, d->ctx, n, d->h, d->w, cl->ctx_len, err);
    }
    if (st != DC_OK) return st;
    size_t L = (size_t)d->ch * d->h * d->w, full = (size_t)d->out_ch * d->h * d->w;
    for (int i = 0; i < n; i++) memcpy(out + i * L, d->out + i * full, L * sizeof(float));
    return DC_OK;
}

/* The batch buffers for max_batch items of a latent [ch, h, w]. */
static dc_status model_denoiser_init(model_denoiser *d, dc_ctx *c, const dc_classes *cl, int h, int w,
                                     int max_batch, dc_error *err)
{
    const dc_model *m = c->model;
    memset(d, 0, sizeof *d);
    d->m = m, d->r = &c->runner, d->cl = cl, d->h = h, d->w = w;
    d->ch = m->dit ? m->dit->in_ch : m->unet->in_ch;
    d->out_ch = m->dit ? m->dit->out_ch : m->unet->out_ch;
    size_t items = (size_t)max_batch;
    d->tf = malloc(sizeof(float) * items);
    d->out = malloc(sizeof(float) * items * d->out_ch * h * w);
    if (m->dit) d->y = malloc(sizeof(int64_t) * items);
    else d->ctx = malloc(sizeof(float) * items * cl->ctx_len * cl->ctx_dim);
    if (!d->tf || !d->out || (m->dit ? !d->y : !d->ctx)) return dc__fail(err, DC_ERR_NOMEM, "out of memory");
    return DC_OK;
}

static void model_denoiser_free(model_denoiser *d)
{
    free(d->tf);
    free(d->y);
    free(d->ctx);
    free(d->out);
}

/* The model has a denoiser, and cl holds its kind of conditioning. */
static dc_status check_classes(const dc_model *m, const dc_classes *cl, dc_error *err)
{
    if (!m->dit && !m->unet)
        return dc__fail(err, DC_ERR_UNSUPPORTED, "model family '%s' cannot classify", m->family);
    int fits = m->dit ? cl->ids != NULL : cl->context && cl->ctx_dim == m->unet->cross_dim;
    for (int i = 0; m->dit && fits && i < cl->n; i++) fits = cl->ids[i] >= 0 && cl->ids[i] < m->dit->num_classes;
    if (!fits)
        return dc__fail(err, DC_ERR_INVALID, "the class list was made for another model (dc_classes_new with "
                        "this model's context)");
    return DC_OK;
}

/* ---- the public classify entry points ---- */

/* The batch when the options leave it to dc, for both families: on the
   shipped SD-architecture model 16 and 8 items per call take the same CPU
   time within the noise of a shared machine (5.1-5.3 s and 5.3-5.6 s user
   for 9 images, interleaved) and reach the same decisions, and 16 is what
   every figure in docs/ and bench/ was measured with (the driver ran 16
   on both families). --batch lowers it where a large UNet's activations
   do not fit. */
#define DC_DEFAULT_BATCH 16

void dc_classify_opts_default(dc_classify_opts *o)
{
    memset(o, 0, sizeof *o);
    o->n_stages = 2;
    o->samples[0] = 50, o->samples[1] = 500;
    o->keep[0] = 5, o->keep[1] = 1;
    o->loss = DC_LOSS_L2;
    o->stop = DC_STOP_AUTO;
    o->trials = 1;
    o->seed = 0;
    o->batch = 0;              /* the library's: see classify_latent() */
    o->ttest_alpha = 0;        /* the rule's own: see test_level() */
    o->ttest_min_scores = 0;   /* the rule's own: see min_scores() */
}

void dc_result_free(dc_result *r)
{
    if (!r) return;
    free(r->ranking);
    free(r->mean_error);
    free(r->n_scored);
    free(r->timesteps);
    free(r->errors);
    free(r->vs_best);
    memset(r, 0, sizeof *r);
}

/* ---- timestep calibrations: one set of rules for files, model metadata
   and the options (dc.h: dc_calibration_load) ---- */

void dc_calibration_free(dc_calibration *cal)
{
    if (!cal) return;
    free(cal->t);
    free(cal->spread);
    memset(cal, 0, sizeof *cal);
}

/* The length of a decimal number at p ([+-]digits[.digits][e[+-]digits],
   digits on at least one side of the point), 0 when there is none. */
static size_t number_len(const char *p)
{
    static const char digits[] = "0123456789";
    const char *q = p + (*p == '+' || *p == '-');
    size_t d = strspn(q, digits);
    q += d;
    if (*q == '.') d += strspn(q + 1, digits), q += 1 + strspn(q + 1, digits);
    if (!d) return 0;
    if (*q == 'e' || *q == 'E') {
        const char *e = q + 1 + (q[1] == '+' || q[1] == '-');
        if (strspn(e, digits)) q = e + strspn(e, digits);
    }
    return (size_t)(q - p);
}

/* One point line at p (blank and comment lines already skipped, the line
   ending removed): a timestep of digits, blanks, a decimal spread, then a
   blank or the end. 1 with the values; 0 otherwise. */
static int parse_calibration_line(const char *p, int *t, float *spread)
{
    size_t nt = strspn(p, "0123456789");
    if (!nt || (p[nt] != ' ' && p[nt] != '\t')) return 0;
    size_t zeros = 0;
    while (zeros + 1 < nt && p[zeros] == '0') zeros++;
    /* more than 6 significant digits is too large either way: check_calibration says so */
    *t = nt - zeros > 6 ? DC_CALIB_MAX_T : (int)strtol(p + zeros, NULL, 10);
    p += nt + strspn(p + nt, " \t");
    size_t ns = number_len(p);
    if (!ns || (p[ns] && p[ns] != ' ' && p[ns] != '\t')) return 0;
    double v = strtod(p, NULL);
    *spread = v > 1e30 ? 1e30f : v < -1e30 ? -1e30f : (float)v; /* out of range: check_calibration */
    return 1;
}

dc_status dc_calibration_load(dc_calibration *cal, const char *path, dc_error *err)
{
    dc__ok(err);
    if (!cal || !path) return dc__fail(err, DC_ERR_INVALID, "dc_calibration_load: NULL argument");
    memset(cal, 0, sizeof *cal);
    FILE *f = fopen(path, "rb");
    if (!f) return dc__fail(err, DC_ERR_IO, "calibration '%s': cannot open it", path);
    char line[DC_CALIB_LINE_MAX + 3]; /* the longest line, \r\n and the terminator */
    int n = 0, cap = 0, lineno = 0;
    dc_status st = DC_OK;
    while (st == DC_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        int whole = (len && line[len - 1] == '\n') || feof(f);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!whole || len > DC_CALIB_LINE_MAX) {
            st = dc__fail(err, DC_ERR_FORMAT, "calibration '%s': line %d is longer than %d bytes", path, lineno,
                          DC_CALIB_LINE_MAX);
            break;
        }
        const char *p = line + strspn(line, " \t");
        if (*p == '#' || !*p) continue;
        if (n == cap) {
            if (cap >= DC_CALIB_MAX_T) { /* more points than ascending timesteps below the limit allow */
                st = dc__fail(err, DC_ERR_FORMAT, "calibration '%s': more than %d timesteps", path, DC_CALIB_MAX_T);
                break;
            }
            int nc = cap ? (2 * cap < DC_CALIB_MAX_T ? 2 * cap : DC_CALIB_MAX_T) : 64;
            int *t = realloc(cal->t, sizeof(int) * (size_t)nc);
            if (t) cal->t = t;
            float *sp = t ? realloc(cal->spread, sizeof(float) * (size_t)nc) : NULL;
            if (sp) cal->spread = sp;
            if (!t || !sp) {
                st = dc__fail(err, DC_ERR_NOMEM, "calibration '%s': out of memory", path);
                break;
            }
            cap = nc;
        }
        if (!parse_calibration_line(p, &cal->t[n], &cal->spread[n])) {
            st = dc__fail(err, DC_ERR_FORMAT, "calibration '%s': line %d: expected \"timestep spread\" (a whole "
                          "number, a decimal number, then anything), got \"%.60s\"", path, lineno, p);
            break;
        }
        n++;
    }
    if (st == DC_OK && ferror(f)) st = dc__fail(err, DC_ERR_IO, "calibration '%s': read error", path);
    fclose(f);
    cal->n = n;
    if (st == DC_OK && !n) st = dc__fail(err, DC_ERR_FORMAT, "calibration '%s' has no timestep", path);
    if (st == DC_OK) {
        char where[600];
        snprintf(where, sizeof where, "calibration '%s'", path);
        st = check_calibration(cal->t, cal->spread, n, where, DC_ERR_FORMAT, err);
    }
    if (st != DC_OK) dc_calibration_free(cal);
    return st;
}

/* The model's own calibration (metadata classify.calib_t and
   classify.calib_spread, written by tools/convert/convert.py
   --calibration), checked as a file is. */
static dc_status model_calibration(const dc_model *m, dc_calibration *cal, dc_error *err)
{
    memset(cal, 0, sizeof *cal);
    uint32_t nt = 0, ns = 0;
    dc_status st = dc__meta_ints(&m->w, "classify.calib_t", NULL, 0, &nt, err);
    if (st == DC_OK) st = dc__meta_floats(&m->w, "classify.calib_spread", NULL, 0, &ns, err);
    if (st != DC_OK) return st;
    if (nt != ns || nt < 1 || nt > DC_CALIB_MAX_T)
        return dc__fail(err, DC_ERR_FORMAT, "%s: classify.calib_t has %u timesteps, classify.calib_spread %u "
                        "values (1 to %d, as many of each)", m->w.path, nt, ns, DC_CALIB_MAX_T);
    int64_t *tv = malloc(sizeof(int64_t) * nt);
    double *sv = malloc(sizeof(double) * nt);
    cal->t = malloc(sizeof(int) * nt), cal->spread = malloc(sizeof(float) * nt);
    if (!tv || !sv || !cal->t || !cal->spread) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK) st = dc__meta_ints(&m->w, "classify.calib_t", tv, nt, &nt, err);
    if (st == DC_OK) st = dc__meta_floats(&m->w, "classify.calib_spread", sv, ns, &ns, err);
    if (st == DC_OK) {
        cal->n = (int)nt;
        for (uint32_t i = 0; i < nt; i++) { /* clamped values out of range still fail the check */
            cal->t[i] = tv[i] < -1 ? -1 : tv[i] > DC_CALIB_MAX_T ? DC_CALIB_MAX_T : (int)tv[i];
            cal->spread[i] = sv[i] > 1e30 ? 1e30f : (float)sv[i];
        }
        char where[600];
        snprintf(where, sizeof where, "%s: metadata classify.calib_t/calib_spread", m->w.path);
        st = check_calibration(cal->t, cal->spread, cal->n, where, DC_ERR_FORMAT, err);
    }
    free(tv), free(sv);
    if (st != DC_OK) dc_calibration_free(cal);
    return st;
}

/* The one classify path for both families: the latent z [ch, h, w] (the
   VAE's mean times the scaling factor) among the classes of cl, both
   checked by the caller. */
static dc_status classify_latent(dc_ctx *c, const dc_classes *cl, const float *z, int h, int w,
                                 const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    const dc_model *m = c->model;
    int maxb = o->batch > 0 ? o->batch : DC_DEFAULT_BATCH;
    model_denoiser md;
    memset(&md, 0, sizeof md);
    dc__schedule *sch = malloc(sizeof *sch);
    dc_status st = sch ? model_schedule(&m->w, sch, err) : dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK) st = model_denoiser_init(&md, c, cl, h, w, maxb, err);
    if (st == DC_OK) {
        dc__denoiser d = {model_predict, &md, md.ch * h * w, maxb, sch};
        /* a rule that draws by the calibration, and none in the options:
           the model's own */
        dc_classify_opts use = *o;
        dc_calibration cal = {0};
        dc_stop rule = dc_classify_rule(m, o, cl->n, NULL);
        if ((rule == DC_STOP_CALIBRATED || rule == DC_STOP_SCREENED) && !o->calib_t) {
            if (!dc_model_has_calibration(m))
                st = dc__fail(err, DC_ERR_INVALID, "--stop %s: %s has no timestep calibration (make one with dc "
                              "calibrate on unlabelled images or dc eval --calibrate on labelled ones, and pass "
                              "--calibration FILE)", dc_stop_name(rule), m->w.path);
            else st = model_calibration(m, &cal, err);
            use.calib_t = cal.t, use.calib_spread = cal.spread, use.n_calib = cal.n;
        }
        if (st == DC_OK) st = dc__classify_core(&d, z, cl->n, &use, res, err);
        dc_calibration_free(&cal);
    }
    model_denoiser_free(&md);
    free(sch);
    return st;
}

dc_status dc_classify_latent(dc_ctx *c, const dc_classes *cl, const float *z, int h, int w,
                             const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!c || !cl || !z || !o || !res) return dc__fail(err, DC_ERR_INVALID, "dc_classify_latent: NULL argument");
    memset(res, 0, sizeof *res);
    const dc_model *m = c->model;
    dc_status st = check_classes(m, cl, err);
    if (st != DC_OK) return st;
    if (m->dit && (h != m->dit->input_size || w != m->dit->input_size))
        return dc__fail(err, DC_ERR_INVALID, "latent of %d x %d: this DiT takes %d x %d", h, w, m->dit->input_size,
                        m->dit->input_size);
    int down = m->unet ? 1 << (m->unet->blocks - 1) : 1;
    if (h < 1 || w < 1 || h > 4096 || w > 4096 || h % down || w % down)
        return dc__fail(err, DC_ERR_INVALID, "latent of %d x %d: the UNet takes sides of 1..4096 that %d divides",
                        h, w, down);
    return classify_latent(c, cl, z, h, w, o, res, err);
}

dc_status dc_classify_rgb(dc_ctx *c, const dc_classes *cl, const unsigned char *rgb, int w, int h,
                          const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!c || !cl || !rgb || !o || !res) return dc__fail(err, DC_ERR_INVALID, "dc_classify_rgb: NULL argument");
    memset(res, 0, sizeof *res);
    if (w < 1 || h < 1 || w > DC_IMAGE_MAX_SIDE || h > DC_IMAGE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "image of %d x %d pixels", w, h);
    const dc_model *m = c->model;
    if (!m->vae)
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: the model has no VAE, so it cannot encode images "
                        "(convert it together with its VAE)", m->w.path);
    dc_status st = check_classes(m, cl, err);
    if (st != DC_OK) return st;
    int ch = m->dit ? m->dit->in_ch : m->unet->in_ch;
    if (m->vae->latent_ch != ch)
        return dc__fail(err, DC_ERR_FORMAT, "%s: the VAE makes latents of %d channels, the denoiser takes %d",
                        m->w.path, m->vae->latent_ch, ch);
    int f = 1 << (m->vae->blocks - 1);
    int native = m->dit ? m->dit->input_size * f : (m->unet->sample_size > 0 ? m->unet->sample_size * f : 512);
    int size = o->size > 0 ? o->size : native;
    if (m->dit && size != native)
        return dc__fail(err, DC_ERR_INVALID, "--size %d: this DiT works on %d px images (%dx%d latents)",
                        size, native, m->dit->input_size, m->dit->input_size);
    int down = m->unet ? 1 << (m->unet->blocks - 1) : 1;
    if (size % (f * down))
        return dc__fail(err, DC_ERR_INVALID, "--size %d: must be a multiple of %d for this model", size, f * down);

    /* image -> [3, size, size] in [-1, 1] -> latent mean * scaling factor, once per image.
       DiT: ADM's center_crop_arr; SD: Resize + CenterCrop, as the official code */
    dc__image img = {w, h, (unsigned char *)rgb, 2};
    int ls = size / f;
    size_t L = (size_t)m->vae->latent_ch * ls * ls;
    float *pix = malloc(sizeof(float) * 3 * (size_t)size * size), *z = malloc(sizeof(float) * L);
    if (!pix || !z) st = dc__fail(err, DC_ERR_NOMEM, "out of memory");
    if (st == DC_OK)
        st = m->dit ? dc__preprocess_adm(pix, &img, size, err) : dc__preprocess_sd(pix, &img, size, err);
    if (st == DC_OK) st = dc__vae_encode(m->vae, &c->runner, z, NULL, pix, 1, size, size, err);
    if (st == DC_OK) {
        for (size_t i = 0; i < L; i++) z[i] *= m->vae->scaling_factor;
        st = classify_latent(c, cl, z, ls, ls, o, res, err);
    }
    free(pix);
    free(z);
    return st;
}

dc_status dc_classify_image(dc_ctx *c, const dc_classes *cl, const char *image_path,
                            const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    dc__ok(err);
    if (!image_path) return dc__fail(err, DC_ERR_INVALID, "dc_classify_image: NULL path");
    dc__image img;
    dc_status st = dc__image_load(&img, image_path, err);
    if (st != DC_OK) return st;
    st = dc_classify_rgb(c, cl, img.rgb, img.w, img.h, o, res, err);
    if (st != DC_OK && err) { /* name the file in the message */
        char msg[sizeof err->msg];
        memcpy(msg, err->msg, sizeof msg);
        if ((size_t)snprintf(err->msg, sizeof err->msg, "%s: %s", image_path, msg) >= sizeof err->msg)
            err->msg[sizeof err->msg - 1] = 0; /* truncated, still terminated */
    }
    dc__image_free(&img);
    return st;
}
