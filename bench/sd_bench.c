/* bench/sd_bench.c - Stable Diffusion UNet speed and memory, and the
   classification pipeline's peak RSS.

   usage: sd_bench MODEL.dcw LATENT BATCH REPS [f32|int8]
            seconds per dc__unet_forward at a LATENT x LATENT latent and BATCH
            samples (77-token contexts), computed in f32 (the default) or int8
            (the model name gets ":int8"): one line with the best seconds per
            eval, per sample, GFLOP/s, the process's peak RSS, and the rate of
            a raw 2048^3 sgemm measured in the same process (the reference)
          sd_bench --flops MODEL.dcw [LATENT...]
            the UNet's work per sample (default at 32 and 64), by kind, and
            the activation memory dc__unet_forward plans for
          sd_bench --pipeline MODEL.dcw [CLASSES [SIZE [f32|int8]]]
            peak RSS of the whole classification path through the public API:
            load, CLASSES prompts through the tokenizer and text encoder, a
            SIZE px image (default 512) through the VAE encoder, one timestep
            of the UNet for every class (dc's automatic batch)

   FLOPs are counted from the model's config, 2 per multiply-add: 3x3 convs
   (conv_in/out, resnets, down/upsamplers), 1x1 convs (resnet shortcuts, and
   proj_in/out where they are convs: SD 1.x), linear layers (time embedding,
   time_emb_proj, q/k/v/out, GEGLU feed-forward, proj_in/out in SD 2.x) and
   the attention matmuls (QK^T and AV, self and cross). Norms, activations and
   softmax are left out. For SD 1.5 this gives 803 GFLOP per sample at 64x64
   latents (512 px) and 180 at 32x32 (256 px). bench/sd_bench.sh runs this
   next to the same forward in PyTorch (bench/sd_torch.py). */
#define _POSIX_C_SOURCE 200809L
#include "../nn/nn.h"
#include "../nn/q8.h"

#include <cblas.h>

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double sd_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double sd_peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0; /* Linux: kilobytes */
}

static const char *sd_base(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---------------------------------------------------------------- FLOPs */

typedef struct {
    double conv3, conv1, linear, attn; /* multiply-adds of one sample */
} sd_macs;

static void sd_resnet_macs(const dc__unet *m, const dc__unet_resnet *r, double hw, sd_macs *f)
{
    f->conv3 += hw * 9.0 * r->cout * ((double)r->cin + r->cout); /* conv1 + conv2 */
    if (r->cin != r->cout) f->conv1 += hw * r->cin * r->cout;     /* conv_shortcut */
    f->linear += (double)m->temb_dim * r->cout;                   /* time_emb_proj */
}

/* T tokens (h*w), L context tokens */
static void sd_transformer_macs(const dc__unet *m, const dc__unet_transformer *t, double T, double L, sd_macs *f)
{
    double c = t->c, D = t->inner, X = m->cross_dim;
    double proj = 2.0 * T * c * D; /* proj_in + proj_out */
    if (m->linear_proj) f->linear += proj;
    else f->conv1 += proj;
    for (int k = 0; k < t->layers; k++) {
        f->linear += 4.0 * T * D * D    /* self: q, k, v, out */
                     + 2.0 * T * D * D  /* cross: q, out */
                     + 2.0 * L * X * D  /* cross: k, v from the context */
                     + 12.0 * T * D * D; /* GEGLU: D -> 8D, then 4D -> D */
        f->attn += 2.0 * T * T * D + 2.0 * T * L * D; /* QK^T and AV, self and cross */
    }
}

/* the UNet's multiply-adds per sample at an h x w latent, walking the
   blocks as dc__unet_forward does */
static sd_macs sd_unet_macs(const dc__unet *m, int h, int w, int ctx_len)
{
    sd_macs f = {0, 0, 0, 0};
    double hw = (double)h * w;
    f.conv3 += hw * 9.0 * m->in_ch * m->ch[0];
    f.linear += (double)m->temb_dim * m->ch[0] + (double)m->temb_dim * m->temb_dim;
    for (int i = 0; i < m->blocks; i++) {
        const dc__unet_block *b = &m->down[i];
        double s = hw / (double)(1 << (2 * i)); /* tokens at this level */
        for (int j = 0; j < b->layers; j++) {
            sd_resnet_macs(m, &m->resnets[b->resnet0 + j], s, &f);
            if (b->cross) sd_transformer_macs(m, &m->transformers[b->attn0 + j], s, ctx_len, &f);
        }
        if (b->resample_w) f.conv3 += s / 4 * 9.0 * b->cout * b->cout; /* stride 2 */
    }
    double s = hw / (double)(1 << (2 * (m->blocks - 1)));
    sd_resnet_macs(m, &m->resnets[m->mid_resnet0], s, &f);
    sd_transformer_macs(m, &m->transformers[m->mid_attn], s, ctx_len, &f);
    sd_resnet_macs(m, &m->resnets[m->mid_resnet0 + 1], s, &f);
    for (int i = 0; i < m->blocks; i++) {
        const dc__unet_block *b = &m->up[i];
        double t = hw / (double)(1 << (2 * (m->blocks - 1 - i)));
        for (int j = 0; j < b->layers; j++) {
            sd_resnet_macs(m, &m->resnets[b->resnet0 + j], t, &f);
            if (b->cross) sd_transformer_macs(m, &m->transformers[b->attn0 + j], t, ctx_len, &f);
        }
        if (b->resample_w) f.conv3 += t * 4 * 9.0 * b->cout * b->cout; /* after nearest 2x */
    }
    f.conv3 += hw * 9.0 * m->ch[0] * m->out_ch;
    return f;
}

static double sd_total(sd_macs f)
{
    return f.conv3 + f.conv1 + f.linear + f.attn;
}

/* ---------------------------------------------------------------- modes */

/* int8: the matrices packed for int8 compute with the variant
   dc_model_load would take here */
static int sd_open(const char *path, dc__weights *w, dc__unet *m, int int8)
{
    dc_error err;
    char why[256];
    if (dc__weights_open(w, path, 0, &err) != DC_OK) {
        fprintf(stderr, "sd_bench: %s\n", err.msg);
        return 0;
    }
    const dc__q8variant *v = int8 ? dc__q8_best(why, sizeof why) : NULL;
    if (int8 && !v) {
        fprintf(stderr, "sd_bench: no int8 product here: %s\n", why);
        dc__weights_close(w);
        return 0;
    }
    if ((v && dc__int8_begin(w, v, DC_INT8_MIN_SIDE, &err) != DC_OK) || dc__unet_build(m, w, "unet.", &err) != DC_OK) {
        fprintf(stderr, "sd_bench: %s\n", err.msg);
        dc__weights_close(w);
        return 0;
    }
    return 1;
}

static int sd_flops_mode(const char *path, int n_sizes, char **sizes)
{
    dc__weights w;
    static dc__unet m; /* large (pools of layers): not on the stack */
    if (!sd_open(path, &w, &m, 0)) return 1;
    const char *dflt[] = {"32", "64"};
    if (!n_sizes) n_sizes = 2, sizes = (char **)dflt;
    for (int i = 0; i < n_sizes; i++) {
        int s = atoi(sizes[i]);
        sd_macs f = sd_unet_macs(&m, s, s, 77);
        printf("%s %dx%d latent, 77-token context, per sample: %.1f GFLOP = 3x3 convs %.1f + 1x1 convs %.1f + "
               "linear %.1f + attention matmuls %.1f\n", sd_base(path), s, s, 2 * sd_total(f) / 1e9,
               2 * f.conv3 / 1e9, 2 * f.conv1 / 1e9, 2 * f.linear / 1e9, 2 * f.attn / 1e9);
        /* activations dc__unet_forward plans for (its runner's arena; weights not included) */
        printf("  activation arena at %dx%d: batch 1 %.0f MB, batch 2 %.0f MB, batch 8 %.0f MB\n", s, s,
               dc__unet_arena_bytes(&m, 1, s, s, 77) / 1048576.0, dc__unet_arena_bytes(&m, 2, s, s, 77) / 1048576.0,
               dc__unet_arena_bytes(&m, 8, s, s, 77) / 1048576.0);
    }
    dc__weights_close(&w);
    return 0;
}

/* The reference for "how close to sgemm": a large square sgemm (2048^3,
   where OpenBLAS is at its best) in the same process, same threads, right
   after the UNet runs; best of 5 after a warm-up. */
static double sd_sgemm_gflops(void)
{
    const int N = 2048;
    float *A = malloc((size_t)N * N * sizeof *A), *B = malloc((size_t)N * N * sizeof *B),
          *C = malloc((size_t)N * N * sizeof *C);
    if (!A || !B || !C) {
        free(A), free(B), free(C);
        return 0;
    }
    for (size_t i = 0; i < (size_t)N * N; i++) A[i] = (float)(i % 7) * 0.1f, B[i] = (float)(i % 5) * 0.1f;
    double best = 1e30;
    for (int k = 0; k < 6; k++) {
        double t0 = sd_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, A, N, B, N, 0.0f, C, N);
        double dt = sd_now() - t0;
        if (k > 0 && dt < best) best = dt;
    }
    free(A), free(B), free(C);
    return 2.0 * N * N * N / best / 1e9;
}

static int sd_unet_mode(const char *path, int S, int n, int reps, int int8)
{
    dc__weights w;
    static dc__unet m;
    dc__runner r;
    dc_error err;
    memset(&r, 0, sizeof r);
    if (S <= 0 || n <= 0 || reps <= 0) {
        fprintf(stderr, "sd_bench: LATENT, BATCH and REPS must be positive\n");
        return 2;
    }
    double tl = sd_now();
    if (!sd_open(path, &w, &m, int8)) return 1;
    tl = sd_now() - tl;
    dc__runner_use_int8(&r, &w);
    const int L = 77;
    size_t xn = (size_t)n * m.in_ch * S * S, cn = (size_t)n * L * m.cross_dim;
    float *x = malloc(xn * sizeof *x), *ctx = malloc(cn * sizeof *ctx), *t = malloc((size_t)n * sizeof *t);
    float *out = malloc((size_t)n * m.out_ch * S * S * sizeof *out);
    if (!x || !ctx || !t || !out) {
        fprintf(stderr, "sd_bench: out of memory\n");
        return 1;
    }
    /* deterministic inputs of the right scale: latents ~[-1, 1], contexts ~[-1, 1] */
    for (size_t i = 0; i < xn; i++) x[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (size_t i = 0; i < cn; i++) ctx[i] = (float)((i * 40503u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < n; i++) t[i] = (float)(37 * i % 1000);
    double best = 1e30;
    for (int k = 0; k < reps + 1; k++) { /* the first run warms up (page faults, arena) */
        double t0 = sd_now();
        if (dc__unet_forward(&m, &r, out, x, t, ctx, n, S, S, L, &err) != DC_OK) {
            fprintf(stderr, "sd_bench: %s\n", err.msg);
            return 1;
        }
        double dt = sd_now() - t0;
        if (k > 0 && dt < best) best = dt;
    }
    double flops = 2 * sd_total(sd_unet_macs(&m, S, S, L)) * n, rss = sd_peak_rss_mb();
    double gf = flops / best / 1e9, sgemm = sd_sgemm_gflops();
    char name[64];
    snprintf(name, sizeof name, "%s%s", sd_base(path), int8 ? ":int8" : "");
    printf("dc     %-28s %3dx%-3d batch %2d  %8.3f s/eval  %7.3f s/sample  %6.1f GFLOP/s  peak RSS %6.0f MB"
           "  (sgemm %5.1f GFLOP/s: %3.0f%%)  load %.1f s\n",
           name, S, S, n, best, best / n, gf, rss, sgemm, 100 * gf / sgemm, tl);
    dc__runner_free(&r);
    dc__weights_close(&w);
    free(x), free(ctx), free(t), free(out);
    return 0;
}

static void sd_progress_none(void *user, long done, long total)
{
    (void)user, (void)done, (void)total;
}

static int sd_pipeline_mode(const char *path, int n_classes, int size, int int8)
{
    dc_error err;
    dc_model *model = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    dc_result res;
    memset(&res, 0, sizeof res);
    int rc = 1;
    if (n_classes < 1 || n_classes > 1000 || size < 64) {
        fprintf(stderr, "sd_bench: CLASSES must be 1..1000 and SIZE at least 64\n");
        return 2;
    }
    char (*names)[32] = malloc((size_t)n_classes * sizeof *names);
    const char **ptrs = malloc((size_t)n_classes * sizeof *ptrs);
    unsigned char *rgb = malloc((size_t)size * size * 3);
    if (!names || !ptrs || !rgb) {
        fprintf(stderr, "sd_bench: out of memory\n");
        goto done;
    }
    for (int i = 0; i < n_classes; i++) snprintf(names[i], sizeof names[i], "object %d", i), ptrs[i] = names[i];
    for (size_t i = 0; i < (size_t)size * size * 3; i++) rgb[i] = (unsigned char)((i * 2654435761u) >> 24);
    double t0 = sd_now();
    dc_load_opts lo = {0, int8 ? DC_COMPUTE_INT8 : DC_COMPUTE_F32};
    if (dc_model_load(&model, path, &lo, &err) != DC_OK || dc_ctx_new(&c, model, &err) != DC_OK) goto fail;
    double rss_load = sd_peak_rss_mb(), t1 = sd_now();
    if (dc_classes_new(&cl, c, ptrs, n_classes, "a photo of a {}.", &err) != DC_OK) goto fail;
    double rss_text = sd_peak_rss_mb(), t2 = sd_now();
    dc_classify_opts o;
    dc_classify_opts_default(&o);
    o.stop = DC_STOP_ADAPTIVE, o.n_stages = 1, o.samples[0] = 1, o.keep[0] = 1; /* every class once through the UNet */
    o.size = size;
    o.progress = sd_progress_none;
    if (dc_classify_rgb(c, cl, rgb, size, size, &o, &res, &err) != DC_OK) goto fail;
    double t3 = sd_now(), rss = sd_peak_rss_mb();
    printf("dc     %-28s pipeline: %d classes, %d px image, %ld UNet evals  load %.1f s, text %.1f s, "
           "VAE+UNet %.1f s  peak RSS: after load %.0f MB, after text encoder %.0f MB, in all %.0f MB\n",
           int8 ? "int8 compute" : sd_base(path), n_classes, size, res.n_evals, t1 - t0, t2 - t1, t3 - t2, rss_load, rss_text, rss);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "sd_bench: %s\n", err.msg);
done:
    dc_result_free(&res);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(model);
    free(names), free(ptrs), free(rgb);
    return rc;
}

/* "f32" (or absent) 0, "int8" 1, anything else -1 */
static int sd_compute_arg(int argc, char **argv, int i)
{
    if (i >= argc || !strcmp(argv[i], "f32")) return 0;
    return !strcmp(argv[i], "int8") ? 1 : -1;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "--flops")) return sd_flops_mode(argv[2], argc - 3, argv + 3);
    if (argc >= 3 && argc <= 6 && !strcmp(argv[1], "--pipeline") && sd_compute_arg(argc, argv, 5) >= 0)
        return sd_pipeline_mode(argv[2], argc > 3 ? atoi(argv[3]) : 2, argc > 4 ? atoi(argv[4]) : 512,
                                sd_compute_arg(argc, argv, 5));
    if ((argc == 5 || argc == 6) && argv[1][0] != '-' && sd_compute_arg(argc, argv, 5) >= 0)
        return sd_unet_mode(argv[1], atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), sd_compute_arg(argc, argv, 5));
    fprintf(stderr, "usage: sd_bench MODEL.dcw LATENT BATCH REPS [f32|int8]\n"
                    "       sd_bench --flops MODEL.dcw [LATENT...]\n"
                    "       sd_bench --pipeline MODEL.dcw [CLASSES [SIZE [f32|int8]]]\n");
    return 2;
}
