/* bench/many_classes.c - stopping rules at 10, 100 and 1,000 classes,
   simulated from real errors.

   A shipped model cannot show a many-class signal (it knows 10 classes),
   so the classes are made from a bank of its real errors (bench/error_bank.py:
   every class of a few hundred test images scored at the shared grid of 50
   timesteps). A simulated image is a bank image: its true class's errors
   and its 9 wrong classes' as they are, plus, for more classes, wrong
   classes borrowed from other bank images: the borrowed class's error at
   each timestep is this image's true-class error plus the borrowed class's
   difference from its own image's true class at that timestep. So every
   class keeps a real gap and real per-timestep noise, the true class is
   the real one, and a borrowed class is as hard as it was among its own
   image's classes. (Borrowed classes are independent of this image's noise
   draw, which real classes sharing one noise are not; and a 1,000-class
   field built from 10-class statistics has about 100 times as many close
   classes per image as Fashion-MNIST has: harder than a data set whose
   classes spread wider.)

   The denoiser behind the loop (dc__classify_core, the real one) returns
   target + sqrt(error) on a one-number latent, so every rule sees exactly
   the bank's errors. Rules run on the bank's grid (--samples 50); the
   reference is the exhaustive rule (every class at all 50 timesteps), whose
   pick is "the best class" a rule should keep.

   With --from-right, classes are borrowed only from bank images whose
   true class had the lowest mean error (the model got them right), so the
   true class stays the best on average, as in a data set the model
   classifies well; without it, from every image, misclassified ones
   included (whose wrong classes beat their true class).

   usage: many_classes BANK_PREFIX CALIBRATION.txt [IMAGES_PER_SIZE] [--from-right] */
#include "../dc.h"
#include "../dc_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRID 50
typedef struct {
    const float *own;      /* this image's errors [10, GRID] */
    int label;
    const float **diff_img; /* per class >= 10: the borrowed image's errors */
    int *diff_class, *diff_label;
    const dc__schedule *sch;
    float z0;
} sim_image;

static double error_of(const sim_image *s, int c, int j)
{
    if (c < 10) return s->own[c * GRID + j];
    const float *o = s->diff_img[c - 10];
    return s->own[s->label * GRID + j] + o[s->diff_class[c - 10] * GRID + j] - o[s->diff_label[c - 10] * GRID + j];
}

static dc_status sim_predict(void *self, float *out, const float *zt, const int *t, const int *cls, int n,
                             dc_error *err)
{
    sim_image *s = self;
    (void)err;
    for (int i = 0; i < n; i++) {
        double a = s->sch->alphas_cumprod[t[i]], eps = (zt[i] - sqrt(a) * s->z0) / sqrt(1 - a);
        int j = (t[i] - 10) / 20; /* the grid of 50: 10, 30, ..., 990 */
        double e = error_of(s, cls[i], j);
        out[i] = (float)(eps + sqrt(e > 0 ? e : 0));
    }
    return DC_OK;
}

static uint64_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(rng_state >> 33);
}

static int load(dc_tensor *t, const char *prefix, const char *what)
{
    char path[4096];
    dc_error err;
    snprintf(path, sizeof path, "%s-%s.npy", prefix, what);
    if (dc_tensor_load_npy(t, path, &err) != DC_OK) {
        fprintf(stderr, "many_classes: %s\n", err.msg);
        return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: many_classes BANK_PREFIX CALIBRATION.txt [IMAGES_PER_SIZE]\n");
        return 2;
    }
    dc_tensor E, L, T;
    if (!load(&E, argv[1], "errors") || !load(&L, argv[1], "labels") || !load(&T, argv[1], "timesteps")) return 1;
    int n_img = (int)E.shape[0], per = argc > 3 ? atoi(argv[3]) : n_img;
    int from_right = argc > 4 && !strcmp(argv[4], "--from-right");
    if (E.ndim != 3 || E.shape[1] != 10 || E.shape[2] != GRID || T.shape[0] != GRID) {
        fprintf(stderr, "many_classes: expected a bank of [images, 10, %d] errors\n", GRID);
        return 1;
    }
    for (int j = 0; j < GRID; j++)
        if (T.i64[j] != 10 + 20 * j) {
            fprintf(stderr, "many_classes: the bank's timesteps are not the grid of 50\n");
            return 1;
        }
    static int ct[1024];
    static float cs[1024];
    int nc = 0;
    FILE *f = fopen(argv[2], "r");
    char line[256];
    while (f && fgets(line, sizeof line, f) && nc < 1024) {
        double sp;
        if (line[0] != '#' && sscanf(line, "%d %lf", &ct[nc], &sp) == 2) cs[nc++] = (float)sp;
    }
    if (f) fclose(f);
    if (!nc) {
        fprintf(stderr, "many_classes: no calibration in '%s'\n", argv[2]);
        return 1;
    }
    /* the images to borrow from */
    int *pool = malloc(sizeof(int) * (size_t)n_img), n_pool = 0;
    for (int b = 0; b < n_img; b++) {
        const float *e = E.f32 + (size_t)b * 10 * GRID;
        int lab = (int)L.i64[b], right = 1;
        double mt = 0;
        for (int j = 0; j < GRID; j++) mt += e[lab * GRID + j];
        for (int c = 0; c < 10; c++) {
            double m = 0;
            for (int j = 0; j < GRID; j++) m += e[c * GRID + j];
            if (c != lab && m < mt) right = 0;
        }
        if (right || !from_right) pool[n_pool++] = b;
    }
    dc__schedule sch;
    dc__schedule_make(&sch, "linear", 0.0001, 0.02, 1000, NULL);
    static const struct { const char *name; dc_stop stop; int exhaustive; } rules[] = {
        {"exhaustive (all 50)", DC_STOP_ADAPTIVE, 1}, {"sequential", DC_STOP_SEQUENTIAL, 0},
        {"calibrated", DC_STOP_CALIBRATED, 0}, {"screened", DC_STOP_SCREENED, 0}};
    printf("bank %s: %d images; calibration %s; %d simulated images per size; classes borrowed from %d images (%s)\n",
           argv[1], n_img, argv[2], per, n_pool, from_right ? "those the model got right" : "all");
    printf("%-8s %-20s %14s %10s %14s %12s\n", "classes", "rule", "evals/image", "per class", "kept the best",
           "true class");
    int sizes[3] = {10, 100, 1000};
    for (int si = 0; si < 3; si++) {
        int n = sizes[si];
        sim_image s;
        s.sch = &sch;
        s.diff_img = malloc(sizeof(float *) * (size_t)n);
        s.diff_class = malloc(sizeof(int) * (size_t)n);
        s.diff_label = malloc(sizeof(int) * (size_t)n);
        int *best = malloc(sizeof(int) * (size_t)per);
        for (int r = 0; r < 4; r++) {
            long evals = 0;
            int kept = 0, right = 0;
            rng_state = 12345 + (uint64_t)n; /* the same images for every rule */
            for (int i = 0; i < per; i++) {
                int b = i % n_img;
                s.own = E.f32 + (size_t)b * 10 * GRID, s.label = (int)L.i64[b];
                for (int c = 10; c < n; c++) {
                    int o = pool[rnd() % (uint32_t)n_pool], lab = (int)L.i64[o], k = (int)(rnd() % 9);
                    s.diff_img[c - 10] = E.f32 + (size_t)o * 10 * GRID;
                    s.diff_class[c - 10] = k >= lab ? k + 1 : k, s.diff_label[c - 10] = lab;
                }
                dc__normal_noise(&s.z0, 1, 77, (uint64_t)i);
                dc_classify_opts o;
                dc_classify_opts_default(&o);
                o.n_stages = 1, o.samples[0] = GRID, o.keep[0] = 1;
                o.stop = rules[r].stop;
                o.calib_t = ct, o.calib_spread = cs, o.n_calib = nc;
                o.seed = (uint64_t)i;
                dc__denoiser d = {sim_predict, &s, 1, 1024, &sch};
                dc_result res;
                dc_error err;
                if (dc__classify_core(&d, &s.z0, n, &o, &res, &err) != DC_OK) {
                    fprintf(stderr, "many_classes: %s\n", err.msg);
                    return 1;
                }
                if (rules[r].exhaustive) best[i] = res.ranking[0];
                kept += res.ranking[0] == best[i];
                right += res.ranking[0] == s.label;
                evals += res.n_evals;
                dc_result_free(&res);
            }
            printf("%-8d %-20s %14.0f %10.2f %13.1f%% %11.1f%%\n", n, rules[r].name, (double)evals / per,
                   (double)evals / per / n, 100.0 * kept / per, 100.0 * right / per);
            fflush(stdout);
        }
        free(s.diff_img), free(s.diff_class), free(s.diff_label), free(best);
    }
    free(pool);
    dc_tensor_free(&E), dc_tensor_free(&L), dc_tensor_free(&T);
    return 0;
}
