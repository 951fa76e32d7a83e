/* bench/int8_layers.c - each layer's effect, under int8 compute, on what
   decides a classification: the differences of mean error between classes.

   usage: int8_layers MODEL.dcw TIMESTEPS IMAGE...

   Every image is classified with every class scored at the same TIMESTEPS
   (timestep, noise) pairs (seed 0, the paper's schedule with one stage), so
   two runs differ only in how they multiply. First all in f32 (the
   reference), then with one matrix at a time computed in int8 (the others
   f32), then with every matrix in int8 and with every matrix the rule in
   nn/int8.c packs. For each, per image, with r the f32 run's leading class
   and d_c = error(c) - error(r) for the other classes c:

       effect = sum_c |d_c(int8) - d_c(f32)| / sum_c |d_c(f32)|

   the relative change of the error differences (0: int8 changed nothing
   that decides), and whether the leading class changed. Prints one line per
   matrix as it is measured, then sorted (largest mean effect first), then
   the whole-model row. Run it with OMP_WAIT_POLICY=passive on a busy
   machine (as the dc driver sets it). */
#define _POSIX_C_SOURCE 200809L
#include "../nn/model.h"
#include "../nn/q8.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int n_img, n_cls;
    double *ref;   /* [n_img][n_cls] f32 mean errors */
    int *lead;     /* [n_img] f32 leading class */
} reference;

typedef struct {
    int index;      /* tensor index, -1 for a whole-model row */
    double mean, max;
    int flips;
} effect;

static int classify_all(dc_ctx *c, const dc_classes *cl, char **images, int n_img, const dc_classify_opts *o,
                        double *errors, int *lead)
{
    for (int i = 0; i < n_img; i++) {
        dc_result r;
        dc_error err;
        if (dc_classify_image(c, cl, images[i], o, &r, &err) != DC_OK) {
            fprintf(stderr, "int8_layers: %s: %s\n", images[i], err.msg);
            return 0;
        }
        for (int k = 0; k < r.n_classes; k++) errors[(size_t)i * r.n_classes + k] = r.mean_error[k];
        lead[i] = r.ranking[0];
        dc_result_free(&r);
    }
    return 1;
}

static effect measure(const reference *R, const double *errors, const int *lead, int index)
{
    effect e = {index, 0, 0, 0};
    for (int i = 0; i < R->n_img; i++) {
        const double *f = R->ref + (size_t)i * R->n_cls, *q = errors + (size_t)i * R->n_cls;
        int r = R->lead[i];
        double moved = 0, gap = 0;
        for (int c = 0; c < R->n_cls; c++) {
            if (c == r) continue;
            moved += fabs((q[c] - q[r]) - (f[c] - f[r]));
            gap += fabs(f[c] - f[r]);
        }
        double v = gap > 0 ? moved / gap : 0;
        e.mean += v / R->n_img;
        if (v > e.max) e.max = v;
        e.flips += lead[i] != r;
    }
    return e;
}

static int by_effect(const void *a, const void *b)
{
    double x = ((const effect *)a)->mean, y = ((const effect *)b)->mean;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void print_row(const dc__weights *w, const effect *e, const char *label)
{
    char name[96];
    if (e->index >= 0) {
        const dc__tensor *t = &w->tensors[e->index];
        snprintf(name, sizeof name, "%.*s", t->name_len, t->name);
        printf("%-64s %5lld x %-5lld", name, (long long)t->shape[0], (long long)(t->numel / t->shape[0]));
    } else {
        printf("%-64s %13s", label, "");
    }
    printf("  effect mean %.5f  max %.5f  leading class changed on %d\n", e->mean, e->max, e->flips);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: int8_layers MODEL.dcw TIMESTEPS IMAGE...\n");
        return 2;
    }
    int T = atoi(argv[2]), n_img = argc - 3;
    char **images = argv + 3;
    dc_error err;
    dc_model *m = NULL, *m8 = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    dc_load_opts f32o = {0, DC_COMPUTE_F32}, i8o = {0, DC_COMPUTE_INT8};
    if (T < 1 || T > 1000) {
        fprintf(stderr, "int8_layers: TIMESTEPS must be 1..1000\n");
        return 2;
    }
    if (dc_model_load(&m, argv[1], &f32o, &err) != DC_OK || dc_model_load(&m8, argv[1], &i8o, &err) != DC_OK ||
        dc_ctx_new(&c, m, &err) != DC_OK || dc_classes_new(&cl, c, NULL, 0, NULL, &err) != DC_OK) {
        fprintf(stderr, "int8_layers: %s\n", err.msg);
        return 1;
    }
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    o.n_stages = 1, o.samples[0] = T, o.keep[0] = 1;
    reference R = {n_img, dc_classes_count(cl), NULL, NULL};
    R.ref = malloc(sizeof(double) * (size_t)n_img * R.n_cls);
    R.lead = malloc(sizeof(int) * (size_t)n_img);
    double *errors = malloc(sizeof(double) * (size_t)n_img * R.n_cls);
    int *lead = malloc(sizeof(int) * (size_t)n_img);
    effect *rows = calloc((size_t)m->w.n_tensors, sizeof *rows);
    if (!R.ref || !R.lead || !errors || !lead || !rows) return 1;
    if (!classify_all(c, cl, images, n_img, &o, R.ref, R.lead)) return 1;

    /* the int8 model's packed matrices, lent one at a time to the f32 model
       (same file, same tensor indices); the context's scratch fits them all */
    dc__weights *w = &m->w;
    const dc__weights *w8 = &m8->w;
    dc__runner_use_int8(&c->runner, w8);
    int n_rows = 0, packed = 0, kept;
    size_t bytes;
    dc__int8_count(w8, &packed, &kept, &bytes);
    printf("int8_layers: %s, %d images, %d classes, %d timesteps each, int8 variant %s; %d matrices "
           "(%d the rule keeps f32)\n", argv[1], n_img, R.n_cls, T, dc__q8_name(dc__int8_variant(w8)),
           packed + kept, kept);
    fflush(stdout);
    for (int i = 0; i < w->n_tensors; i++) {
        if (!w8->tensors[i].q8) continue;
        w->tensors[i].q8 = w8->tensors[i].q8;
        /* the classes again: a text encoder's matrix changes their prompts' encoding */
        dc_classes *cli = NULL;
        int ok = dc_classes_new(&cli, c, NULL, 0, NULL, &err) == DC_OK &&
                 classify_all(c, cli, images, n_img, &o, errors, lead);
        if (!cli) fprintf(stderr, "int8_layers: %s\n", err.msg);
        dc_classes_free(cli);
        w->tensors[i].q8 = NULL;
        if (!ok) return 1;
        rows[n_rows] = measure(&R, errors, lead, i);
        printf("[%d] ", n_rows + 1); /* as it goes; sorted below */
        print_row(w, &rows[n_rows++], NULL);
        fflush(stdout);
    }
    printf("sorted, largest mean effect first:\n");
    qsort(rows, (size_t)n_rows, sizeof *rows, by_effect);
    for (int i = 0; i < n_rows; i++) print_row(w, &rows[i], NULL);

    /* every matrix the rule packs (the int8 model as dc runs it) */
    dc_ctx *c8 = NULL;
    dc_classes *cl8 = NULL;
    if (dc_ctx_new(&c8, m8, &err) != DC_OK || dc_classes_new(&cl8, c8, NULL, 0, NULL, &err) != DC_OK) {
        fprintf(stderr, "int8_layers: %s\n", err.msg);
        return 1;
    }
    if (!classify_all(c8, cl8, images, n_img, &o, errors, lead)) return 1;
    effect all = measure(&R, errors, lead, -1);
    print_row(w, &all, "int8 compute as dc runs it (every matrix the rule packs)");
    dc_classes_free(cl8);
    dc_ctx_free(c8);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m8);
    dc_model_free(m);
    free(R.ref), free(R.lead), free(errors), free(lead), free(rows);
    return 0;
}
