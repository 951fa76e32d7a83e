/* dc.h - the public API of dc, a diffusion-model-as-classifier engine in C99.

   dc turns a diffusion model into an image classifier (Li et al., "Your
   Diffusion Model is Secretly a Zero-Shot Classifier", ICCV 2023): noise the
   image's latent at shared (timestep, noise) pairs, ask the denoiser to
   predict that noise under each class's conditioning, and rank classes by
   the error.

   USING IT
     Build libdc.a with `make`, or embed the single-file build: `make
     single` writes build/single/dc.h, this header with the whole library
     behind DC_IMPLEMENTATION. One .c file of yours holds
     `#define DC_IMPLEMENTATION` then `#include "dc.h"`; compile with
     -fopenmp (optional) and link -lopenblas -lm.

       dc_error err;
       dc_model *m = NULL;
       if (dc_model_load(&m, "model.dcw", NULL, &err) != DC_OK) {
           fprintf(stderr, "%s\n", err.msg);
           return 1;
       }
       ...
       dc_model_free(m);

   ERRORS
     Every call that can fail returns a dc_status and, when given a non-NULL
     dc_error, fills it with the status and a message that says what was
     wrong and where (file, tensor name, byte offset, option). The library
     never calls exit() and never prints unless asked to.

   OWNERSHIP AND THREADS
     A dc_model owns its memory-mapped weight file and is read-only after
     dc_model_load, so several threads may use one model at once. There is
     no global mutable state. Every _load/_new has a NULL-safe _free.
*/
#ifndef DC_H
#define DC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DC_VERSION_MAJOR 0
#define DC_VERSION_MINOR 1
#define DC_VERSION_PATCH 0
#define DC_VERSION_STRING "0.1.0"

/* The weight-file version this build reads (docs/dcw-format.md). */
#define DC_WEIGHTS_VERSION 1

typedef enum {
    DC_OK = 0,
    DC_ERR_IO,       /* a file could not be opened, read or written */
    DC_ERR_FORMAT,   /* a file is not what it claims to be, or is corrupt */
    DC_ERR_NOMEM,    /* an allocation failed or a size would overflow */
    DC_ERR_INVALID,  /* a bad argument or option */
    DC_ERR_MISSING,  /* a tensor or metadata key the model needs is absent */
    DC_ERR_UNSUPPORTED
} dc_status;

typedef struct {
    dc_status status;
    char msg[512];
} dc_error;

/* Version of the library actually linked; compare with DC_VERSION_STRING
   to catch a header/library mismatch. */
const char *dc_version(void);

/* Human-readable name of a status code. */
const char *dc_status_name(dc_status s);

/* ---- models ---- */

typedef struct dc_model dc_model;

/* How a model multiplies by its weights (dc_load_opts.compute). */
typedef enum {
    DC_COMPUTE_F32 = 0, /* OpenBLAS sgemm on f32 weights (f16 and q8 files decoded
                           a layer at a time): the reference */
    DC_COMPUTE_INT8,    /* weights quantised per output row to int8 and packed at
                           load, activations quantised per token / per pixel as
                           they are multiplied, exact int32 sums */
    DC_COMPUTE_AUTO     /* int8 where the CPU has an int8 dot-product unit (x86
                           VNNI, Arm SDOT) whose kernel passed its self-check,
                           f32 otherwise */
} dc_compute;

typedef struct {
    int skip_checksum; /* 1: trust the file and skip the checksum pass
                          (faster start on large files already verified) */
    dc_compute compute; /* DC_COMPUTE_F32 (0) unless set */
} dc_load_opts;

/* Memory-maps and validates a .dcw file. opts may be NULL (defaults). */
dc_status dc_model_load(dc_model **out, const char *path,
                        const dc_load_opts *opts, dc_error *err);
void dc_model_free(dc_model *m);

/* The compute type a loaded model runs with, `auto` resolved: "f32" or
   "int8"; and for int8 the kernel variant ("avx512vnni", "neondot", ...,
   "" for f32). */
const char *dc_model_compute(const dc_model *m);
const char *dc_model_int8_variant(const dc_model *m);
/* "f32", "int8", "auto" -> *c; 0 for anything else. */
int dc_compute_parse(const char *s, dc_compute *c);

/* The model's family ("sd", "dit", ...), from its metadata. */
const char *dc_model_family(const dc_model *m);

/* 1 if the model carries a timestep calibration (metadata classify.calib_t
   and classify.calib_spread), so that DC_STOP_CALIBRATED needs no calib_*
   of its own; the shipped models do. */
int dc_model_has_calibration(const dc_model *m);

/* Writes a human-readable summary (metadata, tensors, sizes) to f (a FILE*,
   passed as void* so this header needs no <stdio.h>). */
void dc_model_print_info(const dc_model *m, void *f, int verbose);

/* ---- the prompt tokenizer (models with a text encoder) ---- */

/* CLIP's BPE: ids = start token, up to 75 tokens, end token, then padding
   (the model's pad convention), dc_tokenizer_length(m) ids in all (77).
   n_tokens: BPE tokens before truncation; truncated: 1 if some were cut. */
dc_status dc_tokenize(const dc_model *m, const char *text, int64_t *ids, int *n_tokens, int *truncated,
                      dc_error *err);
int dc_tokenizer_length(const dc_model *m); /* 0 when the model has no tokenizer */
/* The text of one token ("photo</w>"), for display. */
dc_status dc_token_text(const dc_model *m, int64_t id, char *buf, size_t cap, dc_error *err);

/* ---- contexts: the working memory of one thread's calls ---- */

typedef struct dc_ctx dc_ctx;

/* A context owns scratch memory sized for the model, grown on demand and
   reused across calls. One context per thread; many contexts may share a
   model. */
dc_status dc_ctx_new(dc_ctx **out, const dc_model *m, dc_error *err);
void dc_ctx_free(dc_ctx *c);

/* ---- running one component (tests, debugging, teaching) ---- */

/* A dense C-order tensor: exactly one of f32 / i64 is non-NULL. */
typedef struct {
    int ndim;
    int64_t shape[8];
    float *f32;
    int64_t *i64;   /* token ids, class ids */
} dc_tensor;

/* Runs one component of the model on the given inputs and allocates the
   output (free it with dc_tensor_free). Components and their inputs:
     "dit"  x [n, C, S, S] f32, t [n] f32, y [n] i64 -> [n, out_channels, S, S]
     "text" ids [n, L] i64 -> last hidden state [n, L, D] (after the final norm)
     "text-penultimate"  the same ids -> the penultimate layer's output [n, L, D]
     "vae"  image [n, 3, h, w] f32 in [-1, 1] -> latent mean [n, C, h/8, w/8] (unscaled)
     "vae-std"  the same, with out pointing at two tensors: mean, then std
     "unet" sample [n, C, h, w] f32, timesteps [n] f32, context [n, L, D] f32
            -> prediction [n, out_channels, h, w]
   Shapes and dtypes are checked; a mismatch is an error naming the input. */
dc_status dc_forward(dc_ctx *c, const char *component, const dc_tensor *inputs, int n_inputs,
                     dc_tensor *out, dc_error *err);
void dc_tensor_free(dc_tensor *t);

/* .npy files: float32 loads into f32, int32/int64 into i64; float64 and
   anything else is refused with a message saying how to convert. */
dc_status dc_tensor_load_npy(dc_tensor *t, const char *path, dc_error *err);
dc_status dc_tensor_save_npy(const dc_tensor *t, const char *path, dc_error *err);

/* ---- classification: the paper's Algorithm 1 / 2 ----

   For an image latent z and candidate classes, noise z at shared
   (timestep, noise) pairs, predict the noise under each class's
   conditioning and rank the classes by the mean prediction error. */

typedef enum { DC_LOSS_L2 = 0, DC_LOSS_L1, DC_LOSS_HUBER } dc_loss;
typedef enum {
    DC_STOP_ADAPTIVE = 0, /* the paper's fixed schedule: stages of samples/keep */
    DC_STOP_SEQUENTIAL,   /* paired t-test pruning (Clark & Jaini 2023) */
    DC_STOP_CALIBRATED,   /* the same test on an importance sample of timesteps:
                             drawn where the error differences spread most
                             (calib_*), weighted back to the grid mean */
    DC_STOP_SCREENED,     /* calibrated, with a screen for many classes: until
                             the t-test has its minimum draws, a z-test that
                             takes the calibrated spread as the noise drops
                             classes after each draw, so hopeless ones cost
                             one or a few evaluations instead of the minimum */
    DC_STOP_AUTO          /* the default: calibrated (screened from
                             DC_SCREENED_FROM classes) when the options or
                             the model carry a timestep calibration, else
                             sequential; dc_classify_rule says which */
} dc_stop;

/* DC_STOP_AUTO screens from this many classes: at the shipped models' 10
   the screen made the calibrated rule's decisions with 17-19% fewer
   evaluations (docs/results.md); fewer classes are unmeasured. */
#define DC_SCREENED_FROM 10

/* A timestep calibration holds timesteps 0 <= t < DC_CALIB_MAX_T, strictly
   ascending, so at most DC_CALIB_MAX_T points: what dc calibrate writes and
   every reader accepts. */
#define DC_CALIB_MAX_T 100000

#define DC_MAX_STAGES 8
typedef struct {
    /* adaptive schedule: after stage k (samples[k] timesteps in all, so far)
       keep the keep[k] classes with the lowest mean error; keep[last] = 1 */
    int n_stages;
    int samples[DC_MAX_STAGES];
    int keep[DC_MAX_STAGES];
    dc_loss loss;
    dc_stop stop;
    int trials;          /* noise draws per timestep (the official n_trials), >= 1 */
    uint64_t seed;       /* the noise: same seed, same result */
    int batch;           /* most items per denoiser call; 0 = automatic (the default) */
    /* the paired t-test of the sequential, calibrated and screened rules:
       drop a class once a one-sided paired t-test says it is worse than the
       current best at level ttest_alpha, after at least ttest_min_scores
       timesteps (draws, for calibrated and screened); 0 for either: the
       rule's own (sequential: 2e-3 and 20, as Clark & Jaini; calibrated and
       screened: 5e-3 and 10); give up after samples[n_stages-1] timesteps */
    double ttest_alpha;
    int ttest_min_scores;
    /* calibrated stopping: calib_spread[i] >= 0 is the standard deviation of
       the error difference (wrong class - true class) at timestep calib_t[i]
       (ascending), linear in between and constant beyond the ends. The
       decision is the mean error over timesteps, and timesteps of large
       spread move it most, so they are drawn more often (and weighted
       less, so the estimate stays that of the plain mean); where the
       spread is tiny a timestep can hardly change the ranking. NULL: the model's own
       (metadata classify.calib_t, classify.calib_spread); `dc eval
       --calibrate` measures them on held-out labelled images, `dc calibrate`
       on unlabelled ones; dc_calibration_load reads their files. */
    const int *calib_t;
    const float *calib_spread;
    int n_calib;
    /* progress: called after each denoiser batch with evaluations done so
       far and an upper bound on the total; may be NULL */
    void (*progress)(void *user, long done, long total);
    void *progress_user;
    int size;            /* image side in pixels before the VAE; 0 = the model's
                            own (DiT: its latent size x 8; SD: 512) */
    /* budgets, for any rule (0: none): stop before an evaluation would make
       the count exceed max_evals (which must cover one timestep over all
       classes, n_classes x trials), or before the next timestep once
       max_seconds have passed (after the first timestep), and return the
       ranking so far with dc_result.undecided set */
    long max_evals;
    double max_seconds;
} dc_classify_opts;

/* Defaults: DC_STOP_AUTO (the calibrated rule when a calibration is at
   hand, else the t-test) within the paper's CIFAR-10 budget of 500
   timesteps (samples 50,500, keep 5,1: the schedule DC_STOP_ADAPTIVE
   runs), l2 loss (the official default), 1 trial, seed 0, automatic batch,
   and each stopping rule's own test level and minimum scores. This is
   what `dc classify` runs when given no option. */
void dc_classify_opts_default(dc_classify_opts *o);

/* The rule o->stop names, with DC_STOP_AUTO resolved for this model (NULL:
   the options' calibration alone decides) and class count. note (may be
   NULL) gets dc_result.note's text: "" or, when DC_STOP_AUTO means the
   t-test for lack of a calibration, how to make one. */
dc_stop dc_classify_rule(const dc_model *m, const dc_classify_opts *o, int n_classes, const char **note);
/* "adaptive", "sequential", "calibrated", "screened" or "auto" */
const char *dc_stop_name(dc_stop stop);

typedef struct {
    int n_classes;
    int *ranking;        /* class indices, best first [n_classes]: the n_left
                            classes still in the running by mean error, then
                            the dropped ones, those dropped later first */
    double *mean_error;  /* per class, over the timesteps it was scored on */
    int *n_scored;       /* timesteps (x trials) each class was scored on */
    long n_evals;        /* denoiser evaluations (one class at one noised latent) */
    int n_timesteps;     /* distinct timesteps evaluated */
    int *timesteps;      /* [n_timesteps], in evaluation order */
    float *errors;       /* [n_classes, n_timesteps] error per class and timestep
                            (mean over trials), NaN where not scored */
    double seconds;
    int undecided;       /* 1: a budget (max_evals, max_seconds) stopped the rule
                            with n_left classes in the running; ranking[0] is
                            the best so far, not a decision */
    int n_left;          /* classes still in the running when the rule stopped
                            (1 when decided): ranking[0..n_left) */
    double *vs_best;     /* [n_classes] mean of error(c) - error(ranking[0]) over
                            the timesteps both were scored on: how far behind the
                            best a class was when dropped, on equal terms (0 for
                            ranking[0]; NaN where none is shared) */
    dc_stop stop;        /* the rule that ran (DC_STOP_AUTO resolved) */
    const char *note;    /* "" or, when DC_STOP_AUTO ran the t-test for lack of a
                            calibration, how to make one (static text) */
} dc_result;
void dc_result_free(dc_result *r);

/* Candidate classes, encoded once per model and reused for every image:
   class ids for a class-conditional model (names matched against the
   model's class names, case-insensitively, or given as numbers), text
   embeddings of template-filled prompts for a text-conditional one.
   names NULL: all of the model's classes (its classes.names metadata; a
   text-conditional model without them needs names). prompt_template NULL:
   the model's classes.template, else "a photo of a {}.". */
typedef struct dc_classes dc_classes;
dc_status dc_classes_new(dc_classes **out, dc_ctx *c, const char *const *names, int n,
                         const char *prompt_template, dc_error *err);
void dc_classes_free(dc_classes *cl);
int dc_classes_count(const dc_classes *cl);
/* How many prompts were longer than the tokenizer's 77 tokens and cut. */
int dc_classes_truncated(const dc_classes *cl);
const char *dc_classes_name(const dc_classes *cl, int i);

/* Classifies one image file (any format stb_image reads): preprocess as the
   reference pipeline does, encode with the VAE once, then the loop above.
   Result class indices are positions in cl. */
dc_status dc_classify_image(dc_ctx *c, const dc_classes *cl, const char *image_path,
                            const dc_classify_opts *o, dc_result *res, dc_error *err);
/* The same for pixels in memory: rgb [h, w, 3], 8 bits per channel. */
dc_status dc_classify_rgb(dc_ctx *c, const dc_classes *cl, const unsigned char *rgb, int w, int h,
                          const dc_classify_opts *o, dc_result *res, dc_error *err);
/* The loop alone, for a latent already made: z [C, h, w] is the VAE's
   mean times the model's scaling factor, as dc_classify_rgb makes it
   (C: the denoiser's input channels). A DiT takes its own latent size;
   a UNet any side of 1..4096 that its downsampling divides. Works for
   both families; result class indices are positions in cl. */
dc_status dc_classify_latent(dc_ctx *c, const dc_classes *cl, const float *z, int h, int w,
                             const dc_classify_opts *o, dc_result *res, dc_error *err);

/* ---- timestep calibrations ----

   A calibration file (dc calibrate and dc eval --calibrate write them) is
   text, one point per line: a timestep, then its spread, then any further
   fields (dc calibrate adds the mean and the count), separated by spaces
   or tabs. Blank lines and lines starting with '#' are skipped; lines are
   at most DC_CALIB_LINE_MAX bytes. Timesteps are whole numbers 0 <= t <
   DC_CALIB_MAX_T, strictly ascending; spreads finite and >= 0; at least
   one point. tools/convert/convert.py --calibration checks the same rules
   (tests/calibration/ holds the files both are tested on). */
#define DC_CALIB_LINE_MAX 1024
typedef struct {
    int n;
    int *t;          /* [n] timesteps, ascending */
    float *spread;   /* [n] */
} dc_calibration;
/* Reads and checks a calibration file; the message names the line. Point
   dc_classify_opts at it with calib_t = t, calib_spread = spread,
   n_calib = n. */
dc_status dc_calibration_load(dc_calibration *cal, const char *path, dc_error *err);
void dc_calibration_free(dc_calibration *cal);

/* ---- runtime ---- */

/* Sets the number of threads used by dc and OpenBLAS (one pool).
   n <= 0 keeps the default (OMP_NUM_THREADS, else all cores). The count is
   OpenMP's, which belongs to the calling thread: a thread you start begins
   with the default. Outputs are bit-identical for a given count; between
   counts they may differ in the last bits (OpenBLAS splits a matrix
   product by thread count), never in the classifier's seeded noise. */
void dc_set_threads(int n);
int dc_get_threads(void);

/* How many images to classify at once, each on one thread with a context
   of its own, for this model on dc_get_threads() threads; 1: one image at
   a time with every thread on it. A small network's layers are too small
   to share among threads (the shipped 5 M-parameter UNet on 2 threads kept
   0.85-1.4 of the 2 cores busy, system time 15% of user time, from handing
   each layer over), while one image per thread keeps each busy and its
   arithmetic that of one thread: an image's result is the same as alone
   with dc_set_threads(1). Each worker thread must run at one thread itself
   (omp_set_num_threads(1) inside it, as the dc driver does). */
int dc_images_at_once(const dc_model *m);

/* OpenBLAS kernel check. Debian's OpenBLAS may pick kernels older than the
   CPU supports (e.g. "Prescott" on a new Xeon: sgemm 4x slower).
   Fills info with the core OpenBLAS uses, what the CPU supports and, when
   a better core exists and OPENBLAS_CORETYPE is not already set, the value
   to set it to (suggest[0] == 0 otherwise). Setting the variable only
   takes effect before OpenBLAS initialises, i.e. in a new process: the dc
   driver re-executes itself once; an embedding program should set it
   itself before start-up. */
typedef struct {
    char core[32];      /* openblas_get_corename() */
    char cpu_level[16]; /* "avx512", "avx2", "avx", "sse", "neon", "other" */
    char suggest[32];   /* value for OPENBLAS_CORETYPE, or "" */
    char better[32];    /* a better core than the one in use, even when the
                           user's OPENBLAS_CORETYPE rules it out, or "" */
    int user_set;       /* OPENBLAS_CORETYPE was set by the user */
    /* the int8 product (--compute int8): the variant that runs, and what
       its check against the scalar twin (and any variant skipped) said */
    char int8[32];      /* "avx512vnni", "avx2", "neondot", "scalar", ... */
    char int8_check[256];
    int int8_dot;       /* 1: the variant uses a dot-product unit, so
                           DC_COMPUTE_AUTO means int8 on this CPU */
} dc_blas_info;
void dc_blas_check(dc_blas_info *info);

/* A quick measurement (a fraction of a second): multiply-adds per second
   of OpenBLAS sgemm and of the int8 product on one fixed problem (a
   1024 x 1024 weight by 1024 columns), with the threads in use. */
void dc_compute_rates(double *f32_macs, double *int8_macs);

#ifdef __cplusplus
}
#endif
#endif /* DC_H */
