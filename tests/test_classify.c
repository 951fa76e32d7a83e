/* tests/test_classify.c - the classifier loop (dc.c) with a stand-in
   denoiser whose per-class error is known, so every property of the
   algorithm can be checked without a trained model: the official timestep
   grid and stage subsets, evaluation counts, pairing of the noise across
   classes, the planted best class winning, sequential pruning, seeds and
   thread counts; plus the noise generator, Student's t and the schedules;
   and the public latent entry point on a fixture DiT and the shipped
   models of both families. */
#include "test.h"
#include "../nn/model.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>

/* ---- a stand-in denoiser ----
   It knows z0, so it can recover the true noise from z_t and return it
   plus a class-specific error: class c's prediction is off by
   common(t) + offset[c] * pattern(j), so class c's loss grows with
   offset[c] and the class with the smallest offset is the right answer.
   common(t) is shared by all classes (it cancels in paired differences). */
#define SI_L 64
typedef struct {
    const float *z0;
    const double *offset;
    const dc__schedule *sch;
    float seen_zt[1000][4];   /* first z_t values seen per timestep: pairing check */
    int seen[1000];
    int unpaired;             /* z_t differed between classes at one timestep */
    long calls, items;
    int cut;                  /* > 0: from this timestep on, class offsets count 5%, and
                                 misses depend on the noise */
    int exact;                /* with cut: no noise-dependent misses (errors known exactly) */
} standin;

static dc_status standin_predict(void *self, float *out, const float *zt, const int *t, const int *cls,
                                 int n, dc_error *err)
{
    standin *s = self;
    (void)err;
    s->calls++;
    s->items += n;
    for (int i = 0; i < n; i++) {
        double a = s->sch->alphas_cumprod[t[i]];
        const float *z = zt + (size_t)i * SI_L;
        if (!s->seen[t[i]]) {
            memcpy(s->seen_zt[t[i]], z, sizeof s->seen_zt[0]);
            s->seen[t[i]] = 1;
        } else if (memcmp(s->seen_zt[t[i]], z, sizeof s->seen_zt[0])) {
            s->unpaired++;
        }
        double eps[SI_L];
        for (int j = 0; j < SI_L; j++) eps[j] = (z[j] - sqrt(a) * s->z0[j]) / sqrt(1 - a);
        for (int j = 0; j < SI_L; j++) {
            double target = s->sch->v_prediction ? sqrt(a) * eps[j] - sqrt(1 - a) * s->z0[j] : eps[j];
            double common = 0.3 * sin(0.013 * t[i] + j);
            double off = s->offset[cls[i]] * (s->cut && t[i] >= s->cut ? 0.05 : 1.0);
            /* with cut set, each class also misses by a class-specific share of this
               draw's noise, so paired differences scatter around their mean as a
               trained model's do */
            double scatter = s->cut && !s->exact ? 0.2 * eps[(j * 5 + cls[i] * 7 + 3) % SI_L] : 0.0;
            out[(size_t)i * SI_L + j] = (float)(target + common + off * cos(0.7 * j + 0.1 * t[i]) + scatter);
        }
    }
    return DC_OK;
}

static dc__schedule sd_schedule(void)
{
    dc__schedule s;
    dc__schedule_make(&s, "scaled_linear", 0.00085, 0.012, 1000, NULL);
    return s;
}

/* the library's default options, with the stopping rule a test is about */
static dc_classify_opts opts_with_rule(dc_stop rule)
{
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    o.stop = rule;
    return o;
}

static float z0[SI_L];

static void fill_z0(void)
{
    dc__normal_noise(z0, SI_L, 99, 7);
}

static dc_status classify(standin *si, dc__schedule *sch, const double *offset, int n_classes, int batch,
                          const dc_classify_opts *o, dc_result *res, dc_error *err)
{
    int cut = si->cut, exact = si->exact; /* the settings a caller may preset */
    memset(si, 0, sizeof *si);
    si->cut = cut, si->exact = exact;
    fill_z0();
    si->z0 = z0, si->offset = offset, si->sch = sch;
    dc__denoiser d = {standin_predict, si, SI_L, batch, sch};
    return dc__classify_core(&d, z0, n_classes, o, res, err);
}

/* 1 when classify refuses options o for n_classes (at most 3) with
   DC_ERR_INVALID and a message (left in err) that contains words */
static int refused(const dc_classify_opts *o, int n_classes, const char *words, dc_error *err)
{
    double off[3] = {1, 2, 3};
    dc__schedule sch = sd_schedule();
    standin si = {0};
    dc_result r;
    dc_status status = classify(&si, &sch, off, n_classes, 4, o, &r, err);
    if (status == DC_OK) dc_result_free(&r);
    return status == DC_ERR_INVALID && strstr(err->msg, words);
}

/* ---- the official schedule ---- */

static void timestep_grid_should_equal_the_official_one(void)
{
    int g[1000];
    /* start = T // max_n // 2, step T // max_n (values from the official formula) */
    CHECK(dc__timestep_grid(g, 1000, 1000, 500) == 500 && g[0] == 1 && g[1] == 3 && g[499] == 999, "n=500");
    CHECK(dc__timestep_grid(g, 1000, 1000, 250) == 250 && g[0] == 2 && g[1] == 6 && g[249] == 998, "n=250");
    CHECK(dc__timestep_grid(g, 1000, 1000, 1000) == 1000 && g[0] == 0 && g[999] == 999, "n=1000");
    int idx[1000], n;
    /* CIFAR-10 stage 1: 50 of 500 -> t = 11, 31, ..., 991 */
    dc__timestep_grid(g, 1000, 1000, 500);
    n = dc__stage_subset(idx, 1000, 500, 50);
    CHECK(n == 50 && g[idx[0]] == 11 && g[idx[1]] == 31 && g[idx[49]] == 991, "cifar stage 1");
    /* STL-10 stage 1: 100 of 500 -> 5, 15, ..., 995 */
    n = dc__stage_subset(idx, 1000, 500, 100);
    CHECK(n == 100 && g[idx[0]] == 5 && g[idx[99]] == 995, "stl stage 1");
    /* Food stage 1: 20 of 500 -> 25, 75, ..., 975 */
    n = dc__stage_subset(idx, 1000, 500, 20);
    CHECK(n == 20 && g[idx[0]] == 25 && g[idx[1]] == 75 && g[idx[19]] == 975, "food stage 1");
    /* Pets stage 1: 25 of 250 -> 22, 62, ..., 982 */
    dc__timestep_grid(g, 1000, 1000, 250);
    n = dc__stage_subset(idx, 1000, 250, 25);
    CHECK(n == 25 && g[idx[0]] == 22 && g[idx[24]] == 982, "pets stage 1");
    /* ImageNet stage 1: 50 of 1000 -> 10, 30, ..., 990 */
    dc__timestep_grid(g, 1000, 1000, 1000);
    n = dc__stage_subset(idx, 1000, 1000, 50);
    CHECK(n == 50 && g[idx[0]] == 10 && g[idx[49]] == 990, "imagenet stage 1");
}

static void evaluation_counts_should_equal_the_official_code(void)
{
    /* counts from running the official eval_prob_adaptive bookkeeping:
       CIFAR-10 2750, Pets 2050, STL-10 3000, Food-101 5570, ObjectNet 14400 */
    static const struct { const char *name; int classes, stages, samples[4], keep[4]; long evals; } p[] = {
        {"cifar10", 10, 2, {50, 500}, {5, 1}, 2750},
        {"pets", 37, 2, {25, 250}, {5, 1}, 2050},
        {"stl10", 10, 2, {100, 500}, {5, 1}, 3000},
        {"food", 101, 4, {20, 50, 100, 500}, {20, 10, 5, 1}, 5570},
        {"objectnet", 113, 4, {50, 100, 500, 1000}, {25, 10, 5, 1}, 14400},
    };
    dc__schedule sch = sd_schedule();
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        double *off = malloc(sizeof(double) * (size_t)p[i].classes);
        for (int c = 0; c < p[i].classes; c++) off[c] = 0.2 + 0.01 * ((c * 7) % p[i].classes);
        dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
        o.n_stages = p[i].stages;
        memcpy(o.samples, p[i].samples, sizeof o.samples[0] * 4);
        memcpy(o.keep, p[i].keep, sizeof o.keep[0] * 4);
        standin si = {0};
        dc_result r;
        dc_error err;
        if (classify(&si, &sch, off, p[i].classes, 64, &o, &r, &err) != DC_OK) {
            CHECK(0, "%s: %s", p[i].name, err.msg);
        } else {
            CHECK(r.n_evals == p[i].evals && si.items == p[i].evals, "%s: %ld evaluations, official %ld",
                  p[i].name, r.n_evals, p[i].evals);
            CHECK(si.unpaired == 0, "%s: %d items saw a different noised latent than another class at the "
                  "same timestep", p[i].name, si.unpaired);
            dc_result_free(&r);
        }
        free(off);
    }
}

static void planted_best_class_should_win_in_every_mode(void)
{
    double off[10] = {0.5, 0.45, 0.6, 0.3, 0.55, 0.7, 0.25, 0.4, 0.65, 0.35}; /* class 6 best */
    dc__schedule eps = sd_schedule(), v = sd_schedule();
    v.v_prediction = 1;
    for (int mode = 0; mode < 6; mode++) {
        dc_classify_opts o;
        dc_classify_opts_default(&o);
        o.loss = (dc_loss)(mode % 3);
        o.stop = mode < 3 ? DC_STOP_ADAPTIVE : DC_STOP_SEQUENTIAL;
        standin si = {0};
        dc_result r;
        dc_error err;
        if (classify(&si, mode & 1 ? &v : &eps, off, 10, 32, &o, &r, &err) != DC_OK) {
            CHECK(0, "mode %d: %s", mode, err.msg);
            continue;
        }
        CHECK(r.ranking[0] == 6, "mode %d: class %d won, not 6", mode, r.ranking[0]);
        /* the full ranking of the survivors follows the offsets */
        CHECK(r.mean_error[6] < r.mean_error[3], "mode %d: mean errors out of order", mode);
        printf("  %s loss, %s stop, %s target: winner %d, %ld evaluations\n",
               mode % 3 == 0 ? "l2" : mode % 3 == 1 ? "l1" : "huber", mode < 3 ? "adaptive" : "sequential",
               mode & 1 ? "v" : "eps", r.ranking[0], r.n_evals);
        dc_result_free(&r);
    }
}

static void zero_error_class_should_score_zero_for_eps_and_v_targets(void)
{
    /* a class whose prediction is exactly the target (offset 0, and no
       common term reaching it) checks the target formula itself */
    double off[2] = {0.0, 1.0};
    dc__schedule sch = sd_schedule();
    standin si = {0};
    dc_result r;
    dc_error err;
    for (int v = 0; v < 2; v++) {
        sch.v_prediction = v;
        dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
        o.n_stages = 1, o.samples[0] = 10, o.keep[0] = 1;
        if (classify(&si, &sch, off, 2, 8, &o, &r, &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        /* error of class 0 = mean(common^2) only: compute it independently */
        double want = 0;
        for (int k = 0; k < r.n_timesteps; k++)
            for (int j = 0; j < SI_L; j++) {
                double c = 0.3 * sin(0.013 * r.timesteps[k] + j);
                want += c * c;
            }
        want /= r.n_timesteps * SI_L;
        CHECK(fabs(r.mean_error[0] - want) < 1e-5, "%s target: class 0 error %g, expected %g",
              v ? "v" : "eps", r.mean_error[0], want);
        dc_result_free(&r);
    }
}

static void sequential_stop_should_keep_the_best_and_spend_less(void)
{
    double off[10];
    dc__schedule sch = sd_schedule();
    int kept_best = 0;
    long evals = 0;
    for (int trial = 0; trial < 20; trial++) {
        for (int c = 0; c < 10; c++) off[c] = 0.3 + 0.02 * ((c * 3 + trial) % 10); /* one best: 0.3 */
        int best = -1;
        for (int c = 0; c < 10; c++) if (off[c] == 0.3) best = c;
        dc_classify_opts o = opts_with_rule(DC_STOP_SEQUENTIAL);
        o.seed = (uint64_t)trial;
        standin si = {0};
        dc_result r;
        dc_error err;
        if (classify(&si, &sch, off, 10, 16, &o, &r, &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        kept_best += r.ranking[0] == best;
        evals += r.n_evals;
        CHECK(si.unpaired == 0, "unpaired noise");
        dc_result_free(&r);
    }
    printf("  sequential: planted best won %d of 20, %.0f evaluations per image (adaptive schedule: 2750)\n",
           kept_best, evals / 20.0);
    CHECK(kept_best == 20, "the planted best class was dropped in %d of 20 runs", 20 - kept_best);
    CHECK(evals / 20 < 2750, "sequential spent %ld evaluations, more than the fixed schedule", evals / 20);
}

/* Class differences that live below t = 300 (5% of them above), and a
   calibration that says so: calibrated stopping must draw most of its
   timesteps there, keep the planted best, and spend fewer evaluations than
   the plain coarse-to-fine t-test, which averages in the timesteps that say
   little. (Measured: t-test 1091, calibrated 752 evaluations per image,
   both 20 of 20; the first, biased version of the rule, which visited the
   band first without weights, spent 424 here but lost accuracy on a real
   model, bench/README.md.) */
static const int calib_band_t[4] = {0, 299, 300, 999};
static const float calib_band_spread[4] = {1.0f, 1.0f, 0.05f, 0.05f};

static void calibrated_stop_should_draw_where_the_calibration_points(void)
{
    dc__schedule sch = sd_schedule();
    long evals[2] = {0, 0};
    int kept[2] = {0, 0}, low = 0, seen = 0;
    for (int rule = 0; rule < 2; rule++)
        for (int trial = 0; trial < 20; trial++) {
            double off[10];
            for (int c = 0; c < 10; c++) off[c] = 0.3 + 0.02 * ((c * 3 + trial) % 10);
            int best = -1;
            for (int c = 0; c < 10; c++) if (off[c] == 0.3) best = c;
            dc_classify_opts o = opts_with_rule(rule ? DC_STOP_CALIBRATED : DC_STOP_SEQUENTIAL);
            o.calib_t = calib_band_t, o.calib_spread = calib_band_spread, o.n_calib = 4;
            o.seed = (uint64_t)trial;
            standin si = {.cut = 300};
            dc_result r;
            dc_error err;
            if (classify(&si, &sch, off, 10, 16, &o, &r, &err) != DC_OK) {
                CHECK(0, "%s", err.msg);
                return;
            }
            kept[rule] += r.ranking[0] == best;
            evals[rule] += r.n_evals;
            for (int k = 0; rule && k < r.n_timesteps && k < 50; k++) low += r.timesteps[k] < 300, seen++;
            dc_result_free(&r);
        }
    printf("  differences below t=300: t-test %.0f, calibrated %.0f evaluations per image; best kept %d, %d "
           "of 20; %d of the first %d timesteps drawn below 300\n", evals[0] / 20.0, evals[1] / 20.0, kept[0],
           kept[1], low, seen);
    /* p puts 0.9 x 150/167.5 + 0.1 x 0.3 = 0.84 of the mass below 300 */
    CHECK(seen && low >= 0.75 * seen, "only %d of %d early draws below t=300", low, seen);
    CHECK(kept[1] == 20, "calibrated stopping dropped the planted best in %d of 20", 20 - kept[1]);
    CHECK(evals[1] < evals[0], "calibrated %ld evaluations, t-test %ld", evals[1], evals[0]);
}

/* The importance weights must undo the skewed draws: with two identical
   classes nothing is pruned, every draw is taken, and the weighted mean of
   class 0 must match its plain mean over the whole grid (computed here
   independently from the stand-in's formula). Class 0's error is large
   below t = 300, where the draws crowd, and small above: without the
   weights the estimate would be the draw-weighted mean, far off. */
static void calibrated_weights_should_estimate_the_grid_mean(void)
{
    double off[2] = {0.4, 0.4};
    dc__schedule sch = sd_schedule();
    dc_classify_opts o = opts_with_rule(DC_STOP_CALIBRATED);
    o.n_stages = 1, o.samples[0] = 100, o.keep[0] = 1;
    o.calib_t = calib_band_t, o.calib_spread = calib_band_spread, o.n_calib = 4;
    standin si = {.cut = 300, .exact = 1};
    dc_result r;
    dc_error err;
    if (classify(&si, &sch, off, 2, 8, &o, &r, &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int grid[100];
    int n = dc__timestep_grid(grid, 100, 1000, 100);
    double want = 0, band = 0, band_w = 0;
    for (int k = 0; k < n; k++) {
        double e = 0;
        for (int j = 0; j < SI_L; j++) { /* prediction - target, as standin_predict makes it */
            double miss = 0.3 * sin(0.013 * grid[k] + j) +
                          off[0] * (grid[k] >= 300 ? 0.05 : 1.0) * cos(0.7 * j + 0.1 * grid[k]);
            e += miss * miss / SI_L;
        }
        want += e / n;
        double sp = grid[k] < 300 ? 1.0 : 0.05; /* what an unweighted draw would average */
        band += sp * e, band_w += sp;
    }
    band /= band_w;
    printf("  class 0: weighted estimate %.6f, grid mean %.6f (unweighted draws would give ~%.6f); %d of %d "
           "timesteps evaluated\n", r.mean_error[0], want, band, r.n_timesteps, n);
    CHECK(fabs(r.mean_error[0] - want) < 0.02 * want, "weighted estimate %g, grid mean %g", r.mean_error[0], want);
    CHECK(r.ranking[0] == 0 || r.ranking[0] == 1, "ranking");
    dc_result_free(&r);
}

static void calibration_should_be_checked(void)
{
    dc_error err;
    dc_classify_opts o = opts_with_rule(DC_STOP_CALIBRATED);
    CHECK(refused(&o, 3, "calibration", &err), "none: %s", err.msg);
    int t[2] = {10, 5};
    float v[2] = {1, 2};
    o.calib_t = t, o.calib_spread = v, o.n_calib = 2;
    CHECK(refused(&o, 3, "ascending", &err), "order: %s", err.msg);
    t[1] = 20, v[0] = -1;
    CHECK(refused(&o, 3, ">= 0", &err), "negative: %s", err.msg);
    v[0] = NAN;
    CHECK(refused(&o, 3, "finite", &err), "nan: %s", err.msg);
    o.stop = (dc_stop)7;
    CHECK(refused(&o, 3, "stopping rule", &err), "unknown rule: %s", err.msg);
}

/* DC_STOP_AUTO, the default: the t-test without a calibration (and a note
   saying how to make one), calibrated with one, screened with one above
   DC_SCREENED_FROM classes; dc_classify_rule names the same rule. */
static void default_rule_should_take_a_calibration_when_there_is_one(void)
{
    double off[DC_SCREENED_FROM];
    for (int c = 0; c < DC_SCREENED_FROM; c++) off[c] = 1 + c;
    dc__schedule sch = sd_schedule();
    standin si = {0};
    dc_result r;
    dc_error err;
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    CHECK(o.stop == DC_STOP_AUTO && o.batch == 0, "defaults: stop %d, batch %d", (int)o.stop, o.batch);
    const char *note = NULL;
    CHECK(dc_classify_rule(NULL, &o, 3, &note) == DC_STOP_SEQUENTIAL && strstr(note, "dc calibrate"), "rule: %s", note);
    CHECK(classify(&si, &sch, off, 3, 4, &o, &r, &err) == DC_OK, "%s", err.msg);
    CHECK(r.stop == DC_STOP_SEQUENTIAL && !strcmp(r.note, note) && !strcmp(dc_stop_name(r.stop), "sequential"),
          "without a calibration: %s, note '%s'", dc_stop_name(r.stop), r.note);
    dc_result_free(&r);
    o.calib_t = calib_band_t, o.calib_spread = calib_band_spread, o.n_calib = 4;
    for (int n = DC_SCREENED_FROM - 1; n <= DC_SCREENED_FROM; n++) {
        dc_stop want = n >= DC_SCREENED_FROM ? DC_STOP_SCREENED : DC_STOP_CALIBRATED;
        CHECK(dc_classify_rule(NULL, &o, n, &note) == want && !*note, "rule for %d classes: %s", n, note);
        CHECK(classify(&si, &sch, off, n, 4, &o, &r, &err) == DC_OK, "%s", err.msg);
        CHECK(r.stop == want && !*r.note, "%d classes: %s", n, dc_stop_name(r.stop));
        dc_result_free(&r);
    }
    o.stop = DC_STOP_ADAPTIVE; /* a named rule is the rule, calibration or not */
    CHECK(dc_classify_rule(NULL, &o, 3, &note) == DC_STOP_ADAPTIVE && !*note, "named: %s", note);
}

/* The ranking as a reader takes it: the classes in the running by mean
   error, then the dropped ones; vs_best compares each with the best on the
   timesteps both were scored on, from the errors the result keeps. */
static void result_should_compare_dropped_classes_on_shared_timesteps(void)
{
    double off[6] = {1, 1.4, 2, 3, 4, 5};
    dc__schedule sch = sd_schedule();
    standin si = {0};
    dc_result r;
    dc_error err;
    dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
    o.n_stages = 2, o.samples[0] = 4, o.samples[1] = 20, o.keep[0] = 2, o.keep[1] = 1;
    CHECK(classify(&si, &sch, off, 6, 4, &o, &r, &err) == DC_OK, "%s", err.msg);
    CHECK(r.n_left == 1 && r.ranking[0] == 0 && r.vs_best[0] == 0, "best %d, left %d", r.ranking[0], r.n_left);
    int nt = r.n_timesteps, worse = 0;
    for (int j = 1; j < 6; j++) {
        int c = r.ranking[j], k = 0;
        double sum = 0;
        for (int i = 0; i < nt; i++)
            if (!isnan(r.errors[(size_t)c * nt + i])) sum += r.errors[(size_t)c * nt + i] - r.errors[(size_t)r.ranking[0] * nt + i], k++;
        CHECK(k == r.n_scored[c] && fabs(r.vs_best[c] - sum / k) <= 1e-6 * fabs(sum / k), "class %d: %g vs %g over %d",
              c, r.vs_best[c], sum / k, k);
        worse += r.vs_best[c] > 0;
    }
    CHECK(worse == 5 && r.n_scored[r.ranking[1]] == 20 && r.n_scored[r.ranking[5]] == 4, "dropped: %d worse", worse);
    dc_result_free(&r);
    /* a budget: the classes still in the running, by mean error */
    o.max_evals = 6 * 3;
    CHECK(classify(&si, &sch, off, 6, 4, &o, &r, &err) == DC_OK && r.undecided && r.n_left == 6, "%s", err.msg);
    for (int j = 1; j < r.n_left; j++)
        CHECK(r.mean_error[r.ranking[j - 1]] <= r.mean_error[r.ranking[j]], "kept %d out of order", j);
    dc_result_free(&r);
}

/* Calibration files: every reader takes the rules of dc.h. The same files
   test tools/convert/convert.py's reader (test_tools.py). */
static void calibration_files_should_follow_the_documented_rules(void)
{
    const char *dir = t_path(T.data, "calibration");
    DIR *d = opendir(dir);
    CHECK(d, "cannot open %s", dir);
    struct dirent *e;
    int good = 0, bad = 0;
    while ((e = readdir(d))) {
        int is_good = !strncmp(e->d_name, "good_", 5), is_bad = !strncmp(e->d_name, "bad_", 4);
        if (!is_good && !is_bad) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        dc_calibration cal;
        dc_error err;
        dc_status st = dc_calibration_load(&cal, path, &err);
        if (is_good) {
            CHECK(st == DC_OK && cal.n >= 2, "%s: %s", e->d_name, err.msg);
            good++;
        } else {
            CHECK(st == DC_ERR_FORMAT && strstr(err.msg, e->d_name) && cal.n == 0 && !cal.t, "%s: %s (status %d)",
                  e->d_name, st == DC_OK ? "accepted" : err.msg, (int)st);
            bad++;
        }
        if (!strcmp(e->d_name, "good_dc_calibrate_1500.txt"))
            CHECK(cal.n == 1500 && cal.t[1499] == 1499 && fabsf(cal.spread[0] - 0.01f) < 1e-6f, "1500: %d", cal.n);
        if (!strcmp(e->d_name, "good_two_columns_blank_lines_tabs.txt"))
            CHECK(cal.n == 4 && cal.t[3] == 1000 && cal.spread[2] == 0.25f && cal.spread[3] == 3.0f, "%d points", cal.n);
        dc_calibration_free(&cal);
    }
    closedir(d);
    printf("  %d good and %d bad calibration files\n", good, bad);
    CHECK(good >= 6 && bad >= 15, "%d good, %d bad files in %s", good, bad, dir);
    dc_calibration cal;
    dc_error err;
    CHECK(dc_calibration_load(&cal, t_path(T.tmp, "no_such_calibration.txt"), &err) == DC_ERR_IO &&
          strstr(err.msg, "cannot open"), "missing: %s", err.msg);
}

static void same_seed_should_give_the_same_result_for_any_thread_count(void)
{
    double off[5] = {0.31, 0.3, 0.32, 0.305, 0.33}; /* close: the noise matters */
    dc__schedule sch = sd_schedule();
    dc_result r[3];
    int threads[3] = {1, 2, 1};
    uint64_t seeds[3] = {5, 5, 6};
    for (int i = 0; i < 3; i++) {
        dc_set_threads(threads[i]);
        dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
        o.seed = seeds[i];
        o.samples[0] = 10, o.samples[1] = 40, o.keep[0] = 3;
        standin si = {0};
        dc_error err;
        if (classify(&si, &sch, off, 5, 7, &o, &r[i], &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            return;
        }
    }
    dc_set_threads(dc__num_threads() > 2 ? dc__num_threads() : 2);
    CHECK(r[0].n_timesteps == r[1].n_timesteps && !memcmp(r[0].errors, r[1].errors,
          sizeof(float) * (size_t)r[0].n_timesteps * 5), "same seed, different errors across thread counts");
    CHECK(memcmp(r[0].errors, r[2].errors, sizeof(float) * (size_t)r[0].n_timesteps), "another seed, same errors");
    for (int i = 0; i < 3; i++) dc_result_free(&r[i]);
}

/* The shipped models are small: one image per thread, as many at once as
   threads; one thread (or no model) means one image at a time. */
static void small_models_should_run_one_image_per_thread(void)
{
    dc_model *m = NULL;
    dc_error err;
    NEED(dc_model_load(&m, t_path(T.data, "../../data/models/default.dcw"), NULL, &err) == DC_OK,
         "data/models/default.dcw: %s (part of the repository)", err.msg);
    int before = dc_get_threads();
    dc_set_threads(3);
    CHECK(dc_images_at_once(m) == 3, "3 threads: %d images at once", dc_images_at_once(m));
    dc_set_threads(1);
    CHECK(dc_images_at_once(m) == 1, "1 thread: %d images at once", dc_images_at_once(m));
    CHECK(dc_images_at_once(NULL) == 1, "no model: %d", dc_images_at_once(NULL));
    dc_set_threads(before);
    dc_model_free(m);
}

static void bad_options_should_be_refused_by_name(void)
{
    dc_error err;
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    CHECK(refused(&o, 0, "no classes", &err), "empty: %s", err.msg);
    o.keep[1] = 2, o.stop = DC_STOP_ADAPTIVE;
    CHECK(refused(&o, 3, "last stage must keep 1", &err), "keep: %s", err.msg);
    dc_classify_opts_default(&o);
    o.samples[1] = 20;
    CHECK(refused(&o, 3, "not decrease", &err), "samples: %s", err.msg);
    dc_classify_opts_default(&o);
    o.samples[1] = 2000;
    CHECK(refused(&o, 3, "the model has 1000", &err), "too many: %s", err.msg);
    dc_classify_opts_default(&o);
    o.trials = 0;
    CHECK(refused(&o, 3, "--trials", &err), "trials: %s", err.msg);
}

/* ---- budgets ---- */

static const dc_stop every_rule[4] = {DC_STOP_ADAPTIVE, DC_STOP_SEQUENTIAL, DC_STOP_CALIBRATED, DC_STOP_SCREENED};

/* Ten identical classes: no rule can decide, so only the budget ends the
   run, at the budget (never past it) and undecided. */
static void budget_should_end_a_classification_without_signal(void)
{
    double off[10];
    for (int c = 0; c < 10; c++) off[c] = 0.3;
    dc__schedule sch = sd_schedule();
    for (int k = 0; k < 4; k++) {
        for (int secs = 0; secs < 2; secs++) {
            dc_classify_opts o = opts_with_rule(every_rule[k]);
            o.calib_t = calib_band_t, o.calib_spread = calib_band_spread, o.n_calib = 4;
            if (secs) o.max_seconds = 1e-9; /* spent at once: one timestep, then stop */
            else o.max_evals = 200;
            standin si = {.cut = 300};
            dc_result r;
            dc_error err;
            if (classify(&si, &sch, off, 10, 16, &o, &r, &err) != DC_OK) {
                CHECK(0, "rule %d: %s", k, err.msg);
                continue;
            }
            if (secs)
                CHECK(r.n_timesteps == 1 && r.n_evals == 10, "rule %d, seconds budget: %d timesteps, %ld evals", k,
                      r.n_timesteps, r.n_evals);
            else
                CHECK(r.n_evals <= 200 && r.n_evals > 200 - 10, "rule %d: %ld evaluations for a budget of 200", k,
                      r.n_evals);
            CHECK(si.items == r.n_evals, "rule %d: the denoiser ran %ld items, the result says %ld", k, si.items,
                  r.n_evals);
            CHECK(r.undecided && r.n_left > 1, "rule %d: undecided %d with %d left", k, r.undecided, r.n_left);
            dc_result_free(&r);
        }
    }
}

/* A budget the rule does not reach changes nothing; bad budgets are refused. */
static void budget_should_leave_a_decided_result_alone(void)
{
    double off[10];
    for (int c = 0; c < 10; c++) off[c] = 0.3 + 0.02 * ((c * 3 + 1) % 10);
    dc__schedule sch = sd_schedule();
    for (int k = 0; k < 4; k++) {
        dc_classify_opts o = opts_with_rule(every_rule[k]);
        o.calib_t = calib_band_t, o.calib_spread = calib_band_spread, o.n_calib = 4;
        standin si = {.cut = 300};
        dc_result a, b;
        dc_error err;
        if (classify(&si, &sch, off, 10, 16, &o, &a, &err) != DC_OK) {
            CHECK(0, "rule %d: %s", k, err.msg);
            continue;
        }
        o.max_evals = a.n_evals, o.max_seconds = 1e6;
        if (classify(&si, &sch, off, 10, 16, &o, &b, &err) != DC_OK) {
            CHECK(0, "rule %d, budget: %s", k, err.msg);
            dc_result_free(&a);
            continue;
        }
        CHECK(!a.undecided && !b.undecided && a.n_left == 1 && b.n_left == 1, "rule %d: undecided", k);
        CHECK(a.n_evals == b.n_evals && !memcmp(a.ranking, b.ranking, sizeof(int) * 10) &&
              !memcmp(a.mean_error, b.mean_error, sizeof(double) * 10), "rule %d: a budget of exactly %ld changed "
              "the result", k, a.n_evals);
        dc_result_free(&a);
        dc_result_free(&b);
        o.max_evals = 9; /* less than one timestep over 10 classes */
        CHECK(classify(&si, &sch, off, 10, 16, &o, &a, &err) == DC_ERR_INVALID && strstr(err.msg, "--max-evals"),
              "rule %d, 9 evaluations: %s", k, err.msg);
        o.max_evals = 0, o.max_seconds = -1;
        CHECK(classify(&si, &sch, off, 10, 16, &o, &a, &err) == DC_ERR_INVALID && strstr(err.msg, "--max-seconds"),
              "rule %d, negative seconds: %s", k, err.msg);
    }
}

/* ---- many classes ----
   A stand-in with the error statistics of a shipped model: at timestep t,
   class c's error is 1 + g_c mu(t) + 0.4 sigma(t) eta, where mu(t) and
   sigma(t) are the mean and the spread of error(wrong class) - error(true
   class) measured on the DiT (data/calibration/fmnist-dit.txt), g_c scales
   the class's gap (0 for the best), and eta is a standard normal drawn
   from the noise of the (timestep, trial) and the class. The gaps and the
   0.4 come from the DiT's errors on 200 validation images, every class at
   50 timesteps (bench/error_bank.py): a wrong class's mean difference over
   the grid, in units of the mean of all, has quantiles 0.08 (5%), 0.19
   (10%), 0.43 (25%), 0.86 (50%), 1.48 (75%), 2.0 (90%), 3.7 (max); what
   is left of a difference after its class's g mu(t) spreads by 0.55
   sigma(t), 0.39 sigma(t) per class. The prediction is the target plus
   sqrt(error). */
typedef struct {
    const dc__schedule *sch;
    const float *z0;
    const double *gap;
    double mu[1000], sigma[1000];
    long items;
} stats_standin;

static dc_status stats_predict(void *self, float *out, const float *zt, const int *t, const int *cls, int n,
                               dc_error *err)
{
    stats_standin *s = self;
    (void)err;
    s->items += n;
    for (int i = 0; i < n; i++) {
        double a = s->sch->alphas_cumprod[t[i]], eps = (zt[i] - sqrt(a) * s->z0[0]) / sqrt(1 - a);
        float eta;
        uint64_t key;
        memcpy(&key, &eps, sizeof key);
        dc__normal_noise(&eta, 1, key, (uint64_t)cls[i]);
        double e = 1 + s->gap[cls[i]] * s->mu[t[i]] + 0.4 * s->sigma[t[i]] * eta;
        out[i] = (float)(eps + sqrt(e > 0 ? e : 0));
    }
    return DC_OK;
}

/* The calibration file's "t spread mean" lines, linear in between. */
static int read_calibration(const char *path, int *t, float *spread, double *mu, double *sigma)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    int n = 0;
    double m[1000];
    while (fgets(line, sizeof line, f) && n < 1000) {
        double sp, mean;
        if (line[0] != '#' && sscanf(line, "%d %lf %lf", &t[n], &sp, &mean) == 3) spread[n] = (float)sp, m[n++] = mean;
    }
    fclose(f);
    for (int tt = 0, k = 0; n && tt < 1000; tt++) {
        while (k + 1 < n && t[k + 1] <= tt) k++;
        double w = k + 1 < n && tt > t[k] ? (double)(tt - t[k]) / (t[k + 1] - t[k]) : 0;
        mu[tt] = (1 - w) * m[k] + w * m[k + 1 < n ? k + 1 : k];
        sigma[tt] = (1 - w) * spread[k] + w * spread[k + 1 < n ? k + 1 : k];
    }
    return n;
}

/* The measured gap quantiles above, linear in between: u in [0, 1) -> g. */
static double gap_quantile(double u)
{
    static const double q[8] = {0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 1.0}, g[8] = {0.08, 0.19, 0.43, 0.86, 1.48,
                                                                                  2.0, 3.7};
    u = 0.05 + 0.95 * u; /* the lowest 5% hold the images the model got wrong */
    int k = 0;
    while (k < 5 && u > q[k + 1]) k++;
    return g[k] + (g[k + 1] - g[k]) * (u - q[k]) / (q[k + 1] - q[k]);
}

/* 100 and 1000 classes of the DiT's statistics, one best among wrong ones
   whose gaps follow the measured distribution: the calibrated rule pays
   its 10 minimum draws for every class, the screen must cut that and keep
   the best as often. (Measured: calibrated 17.9 and 14.5 evaluations per
   class, screened 13.3 and 9.1; both kept the best in 20 and 19 of 20.) */
static void screened_stop_should_cut_a_large_field_and_keep_the_best(void)
{
    dc__schedule sch;
    dc__schedule_make(&sch, "linear", 0.0001, 0.02, 1000, NULL);
    static stats_standin si = {0};
    static int t[1000];
    static float spread[1000];
    int n_cal = read_calibration(t_path(T.data, "../../data/calibration/fmnist-dit.txt"), t, spread, si.mu, si.sigma);
    if (!n_cal) {
        CHECK(0, "%s", "cannot read data/calibration/fmnist-dit.txt");
        return;
    }
    static double gap[1000];
    float z[1];
    dc__normal_noise(z, 1, 5, 5);
    si.sch = &sch, si.z0 = z, si.gap = gap;
    for (int size = 100; size <= 1000; size *= 10) {
        long evals[2] = {0, 0};
        int kept[2] = {0, 0}, runs = 20;
        for (int rule = 0; rule < 2; rule++)
            for (int trial = 0; trial < runs; trial++) {
                int best = (trial * 37) % size;
                for (int c = 0; c < size; c++)
                    gap[c] = c == best ? 0 : gap_quantile((double)((c * 7919 + trial * 13) % size) / size);
                dc_classify_opts o = opts_with_rule(rule ? DC_STOP_SCREENED : DC_STOP_CALIBRATED);
                o.calib_t = t, o.calib_spread = spread, o.n_calib = n_cal;
                o.seed = (uint64_t)trial;
                dc__denoiser d = {stats_predict, &si, 1, 256, &sch};
                dc_result r;
                dc_error err;
                si.items = 0;
                if (dc__classify_core(&d, z, size, &o, &r, &err) != DC_OK) {
                    CHECK(0, "%s", err.msg);
                    return;
                }
                kept[rule] += r.ranking[0] == best;
                evals[rule] += r.n_evals;
                dc_result_free(&r);
            }
        printf("  %d classes: calibrated %.0f, screened %.0f evaluations per image (%.1f and %.1f per class); best "
               "kept %d and %d of %d\n", size, (double)evals[0] / runs, (double)evals[1] / runs,
               (double)evals[0] / runs / size, (double)evals[1] / runs / size, kept[0], kept[1], runs);
        CHECK(kept[1] >= kept[0], "%d classes: screened stopping kept the best in %d of %d, calibrated in %d", size,
              kept[1], runs, kept[0]);
        /* measured: 26% fewer at 100 classes, 37% at 1000 */
        CHECK(evals[1] < 0.8 * evals[0], "%d classes: screened %ld, calibrated %ld evaluations", size, evals[1],
              evals[0]);
    }
}

/* ---- the pieces ---- */

static void noise_should_be_standard_normal_and_reproducible(void)
{
    size_t n = 1 << 20;
    float *a = malloc(n * 4), *b = malloc(n * 4);
    dc__normal_noise(a, n, 42, 3);
    dc__normal_noise(b, n, 42, 3);
    CHECK(!memcmp(a, b, n * 4), "same seed and stream differ");
    double s = 0, s2 = 0, s4 = 0;
    size_t beyond3 = 0;
    for (size_t i = 0; i < n; i++) {
        s += a[i], s2 += (double)a[i] * a[i], s4 += (double)a[i] * a[i] * a[i] * a[i];
        beyond3 += fabsf(a[i]) > 3;
    }
    double mean = s / n, var = s2 / n - mean * mean, kurt = s4 / n / (var * var);
    printf("  2^20 draws: mean %.5f, variance %.5f, kurtosis %.4f, P(|x|>3) %.5f (normal: 0, 1, 3, 0.0027)\n",
           mean, var, kurt, (double)beyond3 / n);
    /* 5 standard errors: mean se 1e-3, variance se 1.4e-3, kurtosis se 4.8e-3 */
    CHECK(fabs(mean) < 5e-3 && fabs(var - 1) < 7e-3 && fabs(kurt - 3) < 0.025 &&
          fabs((double)beyond3 / n - 0.0027) < 0.00026, "not standard normal");
    dc__normal_noise(b, n, 42, 4);
    CHECK(memcmp(a, b, 4096), "another stream gave the same values");
    dc__normal_noise(b, 7, 42, 3);
    CHECK(!memcmp(a, b, 7 * 4), "a prefix of a stream is the stream's prefix");
    free(a), free(b);
}

static void student_t_should_match_closed_forms(void)
{
    /* df = 1 (Cauchy): 1/2 - atan(t)/pi; df = 2: 1/2 - t / (2 sqrt(t^2 + 2)); df -> inf: normal */
    double ts[4] = {0.5, 1.0, 2.5, 7.0};
    for (int i = 0; i < 4; i++) {
        double t = ts[i];
        double c1 = 0.5 - atan(t) / 3.14159265358979323846, c2 = 0.5 - t / (2 * sqrt(t * t + 2));
        CHECK(fabs(dc__student_t_sf(t, 1) - c1) < 1e-10, "df 1, t %g: %.12g vs %.12g", t, dc__student_t_sf(t, 1), c1);
        CHECK(fabs(dc__student_t_sf(t, 2) - c2) < 1e-10, "df 2, t %g", t);
        CHECK(fabs(dc__student_t_sf(-t, 2) - (1 - c2)) < 1e-10, "df 2, t %g", -t);
    }
    CHECK(fabs(dc__student_t_sf(1.959963984540054, 1e7) - 0.025) < 1e-6, "normal limit");
    CHECK(fabs(dc__student_t_sf(0, 19) - 0.5) < 1e-12, "t = 0");
}

static void schedules_should_match_the_reference_fixtures(void)
{
    FILE *f = fopen(t_path(T.fixtures, "schedules/case.json"), "rb");
    NEED(f, "tests/fixtures/schedules/case.json missing (part of the repository)");
    fclose(f);
    static const struct { const char *kind, *file; double b0, b1; } cases[] = {
        {"scaled_linear", "sd_scaled_linear_alphas_cumprod.npy", 0.00085, 0.012},
        {"linear", "dit_linear_alphas_cumprod.npy", 1e-4, 0.02}};
    for (int i = 0; i < 2; i++) {
        dc__schedule s;
        dc_error err;
        dc__npy want;
        if (dc__schedule_make(&s, cases[i].kind, cases[i].b0, cases[i].b1, 1000, &err) != DC_OK ||
            dc__npy_load(&want, t_path(T.fixtures, "schedules/%s", cases[i].file), &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        double worst = 0;
        for (int t = 0; t < 1000; t++) {
            double w = ((double *)want.data)[t], rel = fabs(s.alphas_cumprod[t] - w) / w;
            if (rel > worst) worst = rel;
        }
        printf("  %s: max rel err %.3g over 1000 steps (case.json: 1e-12)\n", cases[i].kind, worst);
        CHECK(worst <= 1e-12, "%s: %g", cases[i].kind, worst);
        dc__npy_free(&want);
    }
    dc__schedule s;
    dc_error err;
    CHECK(dc__schedule_make(&s, "cosine", 1e-4, 0.02, 1000, &err) == DC_ERR_UNSUPPORTED &&
          strstr(err.msg, "'cosine'"), "unknown schedule: %s", err.msg);
}

static void dit_model_should_classify_a_latent_end_to_end(void)
{
    FILE *f = fopen(t_path(T.tmp, "dit_st_f32.dcw"), "rb");
    NEED(f, "dit_st_f32.dcw missing (%s)", "prepared by tools/refs/prepare_tests.py from tests/fixtures");
    fclose(f);
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *all = NULL, *some = NULL, *bad = NULL;
    dc_error err;
    const char *names[4] = {"2", "5", "7", "9"};
    int loaded = dc_model_load(&m, t_path(T.tmp, "dit_st_f32.dcw"), NULL, &err) == DC_OK &&
                 dc_ctx_new(&c, m, &err) == DC_OK && dc_classes_new(&all, c, NULL, 0, NULL, &err) == DC_OK &&
                 dc_classes_new(&some, c, names, 4, NULL, &err) == DC_OK;
    CHECK(loaded, "%s", err.msg);
    if (loaded) {
        float z[4 * 8 * 8];
        dc__normal_noise(z, 256, 1, 1);
        dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
        o.samples[0] = 10, o.samples[1] = 50, o.keep[0] = 3;
        dc_result r1, r2, r3;
        CHECK(dc_classify_latent(c, all, z, 8, 8, &o, &r1, &err) == DC_OK, "%s", err.msg);
        CHECK(r1.n_classes == 10 && r1.n_evals == 10 * 10 + 3 * 40, "%d classes, %ld evaluations", r1.n_classes,
              r1.n_evals);
        CHECK(dc_classify_latent(c, some, z, 8, 8, &o, &r2, &err) == DC_OK, "%s", err.msg);
        CHECK(r2.n_classes == 4 && r2.n_evals == 4 * 10 + 3 * 40, "subset: %ld evaluations", r2.n_evals);
        CHECK(dc_classify_latent(c, all, z, 4, 4, &o, &r3, &err) == DC_ERR_INVALID && strstr(err.msg, "8 x 8"),
              "wrong latent size: %s", err.msg);
        names[1] = "10";
        CHECK(dc_classes_new(&bad, c, names, 4, NULL, &err) == DC_ERR_INVALID && strstr(err.msg, "'10'"),
              "bad id: %s", err.msg);
        dc_result_free(&r1);
        dc_result_free(&r2);
    }
    dc_classes_free(all);
    dc_classes_free(some);
    dc_classes_free(bad);
    dc_ctx_free(c);
    dc_model_free(m);
}

/* dc_classify_latent is the loop dc_classify_image runs after the VAE:
   given the latent that path makes (preprocessed and encoded here as it
   does), it returns the same result to the bit, for the class-conditional
   and the text-conditional shipped model alike; and it refuses a class
   list made by a model of the other family. */
typedef struct {
    dc_model *m;
    dc_ctx *c;
    dc_classes *cl;
} loaded;

static int load_shipped(loaded *l, const char *name)
{
    dc_error err;
    memset(l, 0, sizeof *l);
    if (dc_model_load(&l->m, t_path(T.data, "../../data/models/%s", name), NULL, &err) != DC_OK ||
        dc_ctx_new(&l->c, l->m, &err) != DC_OK || dc_classes_new(&l->cl, l->c, NULL, 0, NULL, &err) != DC_OK) {
        CHECK(0, "%s: %s", name, err.msg);
        return 0;
    }
    return 1;
}

static void unload(loaded *l)
{
    dc_classes_free(l->cl);
    dc_ctx_free(l->c);
    dc_model_free(l->m);
}

static void latent_path_should_equal_the_image_path_for_both_families(void)
{
    const char *image = t_path(T.data, "../../data/samples/bag_0018.png");
    FILE *f = fopen(t_path(T.data, "../../data/models/fmnist-sd.dcw"), "rb");
    NEED(f, "data/models/fmnist-sd.dcw missing (part of the repository)");
    fclose(f);
    loaded dit, sd;
    int ok_dit = load_shipped(&dit, "fmnist-dit.dcw"), ok_sd = load_shipped(&sd, "fmnist-sd.dcw");
    dc__image img = {0, 0, NULL, 0};
    dc_error err;
    CHECK(dc__image_load(&img, image, &err) == DC_OK, "%s", err.msg);
    for (int k = 0; k < 2 && img.rgb; k++) {
        loaded *l = k ? &sd : &dit;
        if (!(k ? ok_sd : ok_dit)) continue;
        const dc_model *m = l->m;
        int fct = 1 << (m->vae->blocks - 1);
        int size = m->dit ? m->dit->input_size * fct : (m->unet->sample_size > 0 ? m->unet->sample_size * fct : 512);
        int ls = size / fct;
        size_t L = (size_t)m->vae->latent_ch * ls * ls;
        float *pix = malloc(sizeof(float) * 3 * (size_t)size * size), *z = malloc(sizeof(float) * L);
        dc_status st = m->dit ? dc__preprocess_adm(pix, &img, size, &err) : dc__preprocess_sd(pix, &img, size, &err);
        if (st == DC_OK) st = dc__vae_encode(m->vae, &l->c->runner, z, NULL, pix, 1, size, size, &err);
        CHECK(st == DC_OK, "%s: %s", dc_model_family(m), err.msg);
        for (size_t i = 0; st == DC_OK && i < L; i++) z[i] *= m->vae->scaling_factor;
        dc_classify_opts o = opts_with_rule(DC_STOP_ADAPTIVE);
        o.samples[0] = 10, o.samples[1] = 30, o.keep[0] = 2;
        dc_result ri, rl;
        memset(&ri, 0, sizeof ri), memset(&rl, 0, sizeof rl);
        if (st == DC_OK) {
            CHECK(dc_classify_image(l->c, l->cl, image, &o, &ri, &err) == DC_OK, "%s", err.msg);
            CHECK(dc_classify_latent(l->c, l->cl, z, ls, ls, &o, &rl, &err) == DC_OK, "%s", err.msg);
        }
        int same = ri.n_classes == rl.n_classes && ri.n_classes > 0 && ri.n_evals == rl.n_evals &&
                   ri.n_timesteps == rl.n_timesteps;
        for (int i = 0; same && i < ri.n_classes; i++)
            same = ri.ranking[i] == rl.ranking[i] && ri.mean_error[i] == rl.mean_error[i] &&
                   ri.n_scored[i] == rl.n_scored[i];
        same = same && !memcmp(ri.timesteps, rl.timesteps, sizeof(int) * (size_t)ri.n_timesteps) &&
               !memcmp(ri.errors, rl.errors, sizeof(float) * (size_t)ri.n_classes * ri.n_timesteps);
        printf("  %s: %s via the image, %ld evaluations; via the latent: %s\n", dc_model_family(m),
               ri.n_classes ? dc_classes_name(l->cl, ri.ranking[0]) : "-", ri.n_evals, same ? "the same" : "different");
        CHECK(same, "%s: the latent path differs from the image path", dc_model_family(m));
        dc_result_free(&ri);
        dc_result_free(&rl);
        if (ok_dit && ok_sd && st == DC_OK) { /* the other family's class list */
            CHECK(dc_classify_latent(l->c, (k ? &dit : &sd)->cl, z, ls, ls, &o, &rl, &err) == DC_ERR_INVALID &&
                      strstr(err.msg, "another model"),
                  "%s with the other's classes: %s", dc_model_family(m), err.msg);
        }
        free(pix);
        free(z);
    }
    dc__image_free(&img);
    unload(&dit);
    unload(&sd);
}

void suite_classify(void)
{
    RUN(timestep_grid_should_equal_the_official_one);
    RUN(evaluation_counts_should_equal_the_official_code);
    RUN(planted_best_class_should_win_in_every_mode);
    RUN(zero_error_class_should_score_zero_for_eps_and_v_targets);
    RUN(sequential_stop_should_keep_the_best_and_spend_less);
    RUN(calibrated_stop_should_draw_where_the_calibration_points);
    RUN(calibrated_weights_should_estimate_the_grid_mean);
    RUN(calibration_should_be_checked);
    RUN(default_rule_should_take_a_calibration_when_there_is_one);
    RUN(result_should_compare_dropped_classes_on_shared_timesteps);
    RUN(calibration_files_should_follow_the_documented_rules);
    RUN(same_seed_should_give_the_same_result_for_any_thread_count);
    RUN(bad_options_should_be_refused_by_name);
    RUN(budget_should_end_a_classification_without_signal);
    RUN(budget_should_leave_a_decided_result_alone);
    RUN(screened_stop_should_cut_a_large_field_and_keep_the_best);
    RUN(noise_should_be_standard_normal_and_reproducible);
    RUN(student_t_should_match_closed_forms);
    RUN(schedules_should_match_the_reference_fixtures);
    RUN(dit_model_should_classify_a_latent_end_to_end);
    RUN(latent_path_should_equal_the_image_path_for_both_families);
    RUN(small_models_should_run_one_image_per_thread);
}
