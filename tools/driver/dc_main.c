/* tools/driver/dc_main.c - the `dc` command-line driver.

   Parses options, calls the library, prints. The library never exits; the
   driver's errors end the process through driver_exit() (driver.c), the
   one call of exit() in dc. Commands grow with the model families; each
   has --help. */
#define _POSIX_C_SOURCE 200809L
#include "dc.h"
#include "driver.h"
#include "par.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *usage_text =
    "usage: dc COMMAND [OPTIONS] ...\n"
    "\n"
    "dc turns diffusion models into image classifiers, on a CPU.\n"
    "\n"
    "commands:\n"
    "  classify [-m MODEL] [CLASS OPTIONS] IMAGE...\n"
    "                    rank candidate classes for each image (dc classify --help)\n"
    "  info MODEL        describe a .dcw model file (-v: list every tensor)\n"
    "  forward -m MODEL COMPONENT IN.npy... -o OUT.npy\n"
    "                    run one network on .npy inputs (dit, text, vae, unet)\n"
    "  tokenize -m MODEL \"prompt\" ...\n"
    "                    print each prompt's 77 token ids (-v: and the tokens)\n"
    "  match [-m MODEL] IMAGE \"caption\" ...\n"
    "                    score captions for an image; --images/--captions: Winoground\n"
    "  eval [-m MODEL] DATASET [LABELS]\n"
    "                    accuracy on a labelled data set (dc eval --help)\n"
    "  calibrate [-m MODEL] IMAGES... -o FILE\n"
    "                    a timestep calibration for --stop calibrated from unlabelled\n"
    "                    images (dc calibrate --help)\n"
    "  blas              show the OpenBLAS kernel in use and what the CPU supports\n"
    "  version           print the version\n"
    "\n"
    "global options (before or after the command):\n"
    "  -t, --threads N   threads for dc and OpenBLAS (default: OMP_NUM_THREADS or all cores)\n"
    "  --compute f32|int8|auto\n"
    "                    how networks multiply: f32 (OpenBLAS sgemm, the reference), int8\n"
    "                    (weights and activations quantised, exact integer sums) or auto\n"
    "                    (int8 where the CPU has an int8 dot-product unit; default: f32)\n"
    "  -h, --help        this text\n"
    "\n"
    "environment:\n"
    "  OPENBLAS_CORETYPE  when unset and OpenBLAS picked kernels older than the CPU\n"
    "                     supports, dc re-runs itself once with it set (DC_NO_REEXEC=1\n"
    "                     turns that off)\n"
    "  OMP_WAIT_POLICY    dc sets it to passive when unset (threads that spin lose\n"
    "                     badly on a busy machine)\n"
    "  DC_KERNELS         scalar|avx2|avx512|neon: force dc's elementwise kernels\n";

/* Re-executes this program with OPENBLAS_CORETYPE set when OpenBLAS chose
   kernels older than the CPU supports. Once only (DC_REEXEC marks the second
   run), never overriding the user's own setting. */
static void maybe_reexec(char **argv)
{
    dc_blas_info bi;
    if (getenv("DC_NO_REEXEC")) return;
    dc_blas_check(&bi);
    if (getenv("DC_REEXEC")) {
        if (bi.suggest[0])
            fprintf(stderr, "dc: warning: OpenBLAS still uses the %s kernels on this %s CPU; "
                    "sgemm will be slow\n", bi.core, bi.cpu_level);
        return;
    }
    /* OpenMP threads that spin while waiting lose badly when the machine is
       busy (measured: 25 s instead of 2.8 s for the same run with two busy
       cores): wait passively unless the user chose otherwise. Both variables
       are read once at start-up, hence the re-execution. */
    int omp = !getenv("OMP_WAIT_POLICY");
    if (!bi.suggest[0] && !omp) return;
    if (bi.suggest[0]) setenv("OPENBLAS_CORETYPE", bi.suggest, 1);
    if (omp) setenv("OMP_WAIT_POLICY", "passive", 1);
    setenv("DC_REEXEC", "1", 1);
    execv("/proc/self/exe", argv);
    /* no /proc (or exec failed): carry on, and say so if it matters */
    if (bi.suggest[0]) {
        unsetenv("OPENBLAS_CORETYPE");
        fprintf(stderr, "dc: warning: OpenBLAS picked the %s kernels on a CPU that supports %s; "
                "set OPENBLAS_CORETYPE=%s for a faster sgemm\n", bi.core, bi.cpu_level, bi.suggest);
    }
}

/* The int8 product dc would use here, its check, and both products'
   speed on one fixed problem (dc_compute_rates: a fraction of a second). */
static void print_int8(const dc_blas_info *bi)
{
    double f32, i8;
    dc_compute_rates(&f32, &i8);
    printf("int8 product:  %s (%s); --compute auto means %s here\n", bi->int8, bi->int8_check,
           bi->int8_dot ? "int8" : "f32");
    printf("rates:         f32 sgemm %.1f GMAC/s, int8 product %.1f GMAC/s (1024^3, %d threads)\n",
           f32 / 1e9, i8 / 1e9, dc_get_threads());
}

static int cmd_blas(void)
{
    dc_blas_info bi;
    dc_blas_check(&bi);
    printf("openblas core: %s\n", bi.core);
    printf("cpu supports:  %s\n", bi.cpu_level);
    printf("OPENBLAS_CORETYPE: %s\n", getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
    if (bi.suggest[0]) printf("advice: set OPENBLAS_CORETYPE=%s\n", bi.suggest);
    if (bi.user_set && bi.better[0])
        printf("note: OPENBLAS_CORETYPE is set in the environment, so dc leaves it; this CPU "
               "could use %s\n", bi.better);
    printf("threads:       %d\n", dc_get_threads());
    print_int8(&bi);
    return 0;
}

static int cmd_info(int argc, char **argv)
{
    int verbose = 0;
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dc info [-v] MODEL.dcw\n");
            return 0;
        } else if (argv[i][0] == '-') die("info: unknown option '%s' (see dc info --help)", argv[i]);
        else if (!path) path = argv[i];
        else die("info: one model at a time ('%s' is extra)", argv[i]);
    }
    if (!path) die("%s", "info: which model? usage: dc info [-v] MODEL.dcw");
    dc_model *m;
    dc_error err;
    if (dc_model_load(&m, path, driver_load_opts(), &err) != DC_OK) {
        fprintf(stderr, "dc: %s\n", err.msg);
        return 1;
    }
    dc_model_print_info(m, stdout, verbose);
    dc_blas_info bi;
    dc_blas_check(&bi);
    printf("runtime:   openblas core %s, cpu %s, %d threads\n", bi.core, bi.cpu_level, dc_get_threads());
    print_int8(&bi);
    dc_model_free(m);
    return 0;
}

static int cmd_forward(int argc, char **argv)
{
    const char *model = NULL, *outp = NULL, *component = NULL, *inputs[8], *std_path = NULL;
    int n_in = 0, penultimate = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc) outp = argv[++i];
        else if (!strcmp(argv[i], "--penultimate")) penultimate = 1;
        else if (!strcmp(argv[i], "--std") && i + 1 < argc) std_path = argv[++i];
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dc forward -m MODEL COMPONENT IN.npy ... -o OUT.npy\n"
                   "  dit X.npy T.npy Y.npy   x [n,C,S,S] f32, t [n] f32, y [n] int -> [n,out_ch,S,S]\n"
                   "  text IDS.npy [--penultimate]\n"
                   "                          token ids [n,77] int -> hidden states [n,77,D]\n"
                   "  vae IMAGE.npy [--std STD.npy]\n"
                   "                          image [n,3,h,w] in [-1,1] -> latent mean [n,4,h/8,w/8]\n"
                   "  unet SAMPLE.npy TIMESTEPS.npy CONTEXT.npy\n"
                   "                          -> noise (or v) prediction [n,4,h,w]\n");
            return 0;
        } else if (argv[i][0] == '-') die("forward: unknown or incomplete option '%s' (see dc forward --help)", argv[i]);
        else if (!component) component = argv[i];
        else if (n_in < 8) inputs[n_in++] = argv[i];
        else die("forward: too many inputs ('%s')", argv[i]);
    }
    if (!model || !component || !outp) die("%s", "forward: usage: dc forward -m MODEL COMPONENT IN.npy ... -o OUT.npy");
    if (penultimate && strcmp(component, "text")) die("%s", "forward: --penultimate is for the text component");
    if (penultimate) component = "text-penultimate";
    if (std_path && strcmp(component, "vae")) die("%s", "forward: --std is for the vae component");
    if (std_path) component = "vae-std";
    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_tensor in[8], outs[2] = {{0}, {0}};
    int loaded = 0, rc = 1;
    memset(in, 0, sizeof in);
    if (dc_model_load(&m, model, driver_load_opts(), &err) != DC_OK || dc_ctx_new(&c, m, &err) != DC_OK) goto done;
    for (; loaded < n_in; loaded++)
        if (dc_tensor_load_npy(&in[loaded], inputs[loaded], &err) != DC_OK) goto done;
    if (dc_forward(c, component, in, n_in, outs, &err) != DC_OK) goto done;
    if (dc_tensor_save_npy(&outs[0], outp, &err) != DC_OK) goto done;
    if (std_path && dc_tensor_save_npy(&outs[1], std_path, &err) != DC_OK) goto done;
    rc = 0;
done:
    if (rc) fprintf(stderr, "dc: %s\n", err.msg);
    for (int i = 0; i < loaded; i++) dc_tensor_free(&in[i]);
    dc_tensor_free(&outs[0]);
    dc_tensor_free(&outs[1]);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}

/* ---- classify ---- */

static int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL;
    int verbose = 0, n_prompts = 0;
    for (int i = 0; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) verbose = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: dc tokenize -m MODEL [-v] \"prompt\" ...\n"
                   "  prints one line of token ids per prompt (77 for CLIP); -v adds the tokens\n");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) die("tokenize: unknown option '%s'", argv[i]);
        else n_prompts++;
    }
    if (!model) die("%s", "tokenize: usage: dc tokenize -m MODEL \"prompt\" ...");
    dc_error err;
    dc_model *m;
    if (dc_model_load(&m, model, NULL, &err) != DC_OK) {
        fprintf(stderr, "dc: %s\n", err.msg);
        return 1;
    }
    int rc = 0, L = dc_tokenizer_length(m);
    if (!L) {
        fprintf(stderr, "dc: %s: the model has no tokenizer\n", model);
        dc_model_free(m);
        return 1;
    }
    for (int i = 0; i < argc && n_prompts; i++) {
        if (argv[i][0] == '-' && argv[i][1]) {
            if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) i++;
            continue;
        }
        int64_t ids[128];
        int n, cut;
        if (dc_tokenize(m, argv[i], ids, &n, &cut, &err) != DC_OK) {
            fprintf(stderr, "dc: %s\n", err.msg);
            rc = 1;
            continue;
        }
        for (int k = 0; k < L; k++) printf("%s%lld", k ? " " : "", (long long)ids[k]);
        printf("\n");
        if (cut)
            fprintf(stderr, "dc: warning: prompt %d has %d tokens; the text encoder sees the first %d\n",
                    i + 1, n, L - 2);
        if (verbose) {
            char piece[256];
            printf("  %d tokens:", n);
            for (int k = 1; k <= n && k < L - 1; k++)
                if (dc_token_text(m, ids[k], piece, sizeof piece, &err) == DC_OK) printf(" %s", piece);
            printf("\n");
        }
    }
    dc_model_free(m);
    return rc;
}

static const char *classify_help =
    "usage: dc classify [-m MODEL] [OPTIONS] IMAGE...\n"
    "\n"
    "Ranks the candidate classes of each image by how well the model predicts\n"
    "the noise added to its latent under each class (Li et al., ICCV 2023).\n"
    "\n"
    "classes (default: the class names stored in the model, as the shipped models have):\n"
    "  --class NAME        a candidate class (repeat for more)\n"
    "  --classes FILE      candidate classes, one per line\n"
    "  --preset NAME       a data set's classes, template and schedule from data/presets/\n"
    "                      (cifar10 stl10 pets fashion_mnist imagenet food flowers aircraft\n"
    "                      objectnet), or a preset file's path; options after it override it\n"
    "  --template T        prompt template with {} for the class name (text models;\n"
    "                      default: the model's own, else \"a photo of a {}.\")\n"
    "schedule:\n"
    "  --samples A,B,..    timesteps scored by the end of each stage (default 50,500);\n"
    "                      the last is every rule's budget of timesteps\n"
    "  --keep A,B,..       classes kept after each stage, the last 1 (default 5,1;\n"
    "                      --stop adaptive alone reads it)\n"
    "  --stop auto|adaptive|sequential|calibrated|screened\n"
    "                      auto (the default): calibrated, or screened from 10\n"
    "                      classes, when the model (the shipped ones do) or\n"
    "                      --calibration carries a timestep calibration, else\n"
    "                      sequential, and the output says how to make one;\n"
    "                      adaptive: the paper's fixed stages (--samples, --keep);\n"
    "                      sequential: pruning by a paired t-test (Clark & Jaini\n"
    "                      2023) within the last stage's budget; calibrated: that\n"
    "                      test on timesteps drawn where classes differ most and\n"
    "                      weighted back; screened: calibrated, with a screen that\n"
    "                      drops hopeless classes after one or a few timesteps\n"
    "  --calibration FILE  a timestep calibration from dc calibrate or dc eval\n"
    "                      --calibrate, for the rules that read one (auto,\n"
    "                      calibrated, screened) in place of the model's\n"
    "  --alpha P           the test's level, --min-scores N scores before testing\n"
    "                      (defaults: sequential 0.002 and 20, calibrated and\n"
    "                      screened 0.005 and 10)\n"
    "  --max-evals N       stop any rule before it exceeds N evaluations (at least\n"
    "                      one timestep over all classes) and report the ranking so\n"
    "                      far as undecided\n"
    "  --max-seconds S     the same after S seconds per image (checked between\n"
    "                      timesteps, so it may run over by one)\n"
    "  --loss l2|l1|huber  error between the true and the predicted noise (default l2)\n"
    "  --trials N          noise draws per timestep (default 1)\n"
    "  --seed N            the noise; same seed, same result (default 0)\n"
    "  --size PX           image side before the VAE (default: the model's)\n"
    "  --batch N           most evaluations per network call (default 16, the\n"
    "                      library's)\n"
    "output:\n"
    "  --top K             classes shown per image (default 5)\n"
    "  --temperature T     also print probabilities softmax(-error / T); fit T with\n"
    "                      dc eval --fit-temperature on labelled data\n"
    "  --json              one JSON object per image (JSON Lines)\n"
    "  --csv               image,rank,class,error rows\n"
    "  --plot OUT.png      draw each top class's error against the timestep\n"
    "                      (several images: OUT-1.png, OUT-2.png, ...)\n"
    "  --quiet             no progress on stderr\n";

/* One image's result as a reader should take it: the classes still in the
   running by mean error (one when decided), then the dropped ones, each
   with the timesteps it was scored on and its error against the best on
   those same timesteps (dc_result.vs_best). A dropped class's own mean
   covers fewer timesteps than the best's and is not shown: beside the
   best's it would read as a score. prob: NULL, or per class. */
static void print_text(const char *image, const dc_result *r, const dc_classes *cl, int k, int trials,
                       const double *prob)
{
    const char *best = dc_classes_name(cl, r->ranking[0]);
    printf("%s: %s%s\n", image, best, r->undecided ? " (undecided)" : "");
    for (int j = 0; j < k; j++) {
        int c = r->ranking[j], steps = r->n_scored[c] / (trials > 0 ? trials : 1);
        if (j < r->n_left)
            printf("  %d. %-30s error %.5f over %d timesteps", j + 1, dc_classes_name(cl, c), r->mean_error[c], steps);
        else if (isnan(r->vs_best[c]))
            printf("     %-30s dropped after %d timesteps", dc_classes_name(cl, c), steps);
        else
            printf("     %-30s dropped after %d timesteps, error %+.5f vs %s on those", dc_classes_name(cl, c), steps,
                   r->vs_best[c], best);
        if (prob) printf("  p %.3f", prob[c]);
        printf("\n");
    }
    int more_kept = r->n_left > k ? r->n_left - k : 0, more = r->n_classes - k;
    if (more && !more_kept) printf("  (%d more classes dropped; --top %d shows all)\n", more, r->n_classes);
    else if (more)
        printf("  (%d more classes: %d still in the running, %d dropped; --top %d shows all)\n", more, more_kept,
               more - more_kept, r->n_classes);
    printf("  %ld evaluations (%s), %d timesteps, %.2f s\n", r->n_evals, dc_stop_name(r->stop), r->n_timesteps,
           r->seconds);
    if (r->undecided)
        printf("  undecided: the budget ran out with %d classes in the running, shown by mean error; the first "
               "is the best so far\n", r->n_left);
    if (r->note && *r->note) printf("  note: %s\n", r->note);
}

/* The same as one JSON object (JSON Lines): every number of the text and
   the result's own (error, scored), "kept" for the classes in the
   running. */
static void print_json(const char *image, const dc_result *r, const dc_classes *cl, int k, int trials,
                       const double *prob, const char *compute)
{
    printf("{\"image\": ");
    json_string(stdout, image);
    printf(", \"prediction\": ");
    json_string(stdout, dc_classes_name(cl, r->ranking[0]));
    printf(", \"top\": [");
    for (int j = 0; j < k; j++) {
        int c = r->ranking[j];
        printf("%s{\"class\": ", j ? ", " : "");
        json_string(stdout, dc_classes_name(cl, c));
        printf(", \"kept\": %s, \"error\": %.6g, \"scored\": %d, \"timesteps\": %d", j < r->n_left ? "true" : "false",
               r->mean_error[c], r->n_scored[c], r->n_scored[c] / (trials > 0 ? trials : 1));
        if (isnan(r->vs_best[c])) printf(", \"vs_best\": null");
        else printf(", \"vs_best\": %.6g", r->vs_best[c]);
        if (prob) printf(", \"probability\": %.6g", prob[c]);
        printf("}");
    }
    printf("], \"compute\": \"%s\", \"stop\": \"%s\", \"note\": ", compute, dc_stop_name(r->stop));
    json_string(stdout, r->note ? r->note : "");
    printf(", \"decided\": %s, \"left\": %d, \"evals\": %ld, \"timesteps\": %d, \"seconds\": %.3f}\n",
           r->undecided ? "false" : "true", r->n_left, r->n_evals, r->n_timesteps, r->seconds);
}

/* Images classified at once (par_for) and printed in their order as soon
   as each and all before it are done. */
typedef struct {
    dc_result r;
    dc_status st;
    dc_error err;
    int ready;
} classified;
typedef struct {
    const par_workers *pw;
    const dc_classes *cl;
    const char *compute;  /* the model's: dc_model_compute */
    const dc_classify_opts *o;
    progress_state *prog; /* worker 0's images show progress */
    const name_list *images;
    classified *out;      /* [images->n] */
    const common_opts *co;
    const char *plot;
    int printed;          /* images printed so far, in order */
    int rc;
} classify_run;

/* Prints image i's ranking in the chosen form (and its plot); 0 if the plot failed. */
static int print_classified(const common_opts *co, const dc_classes *cl, const char *compute, const char *image,
                            int i, int n_images, const char *plot, const dc_result *r)
{
    int ok = 1;
    int k = co->top < r->n_classes ? co->top : r->n_classes;
    /* calibrated probabilities: softmax(-error / T) over every class */
    double *prob = calloc((size_t)r->n_classes, sizeof(double));
    if (co->temperature > 0 && prob) {
        double mn = r->mean_error[r->ranking[0]], z = 0;
        for (int j = 0; j < r->n_classes; j++) mn = r->mean_error[j] < mn ? r->mean_error[j] : mn;
        for (int j = 0; j < r->n_classes; j++) z += prob[j] = exp(-(r->mean_error[j] - mn) / co->temperature);
        for (int j = 0; j < r->n_classes; j++) prob[j] /= z;
    }
    if (co->json) {
        print_json(image, r, cl, k, co->o.trials, co->temperature > 0 ? prob : NULL, compute);
    } else if (co->csv) {
        for (int j = 0; j < k; j++) {
            csv_string(stdout, image);
            printf(",%d,", j + 1);
            csv_string(stdout, dc_classes_name(cl, r->ranking[j]));
            printf(",%.6g\n", r->mean_error[r->ranking[j]]);
        }
    } else {
        print_text(image, r, cl, k, co->o.trials, co->temperature > 0 ? prob : NULL);
    }
    if (plot) { /* OUT.png, or OUT-<i>.png for several images */
        char path[4096];
        const char *dot = strrchr(plot, '.');
        if (n_images == 1 || !dot) snprintf(path, sizeof path, "%s", plot);
        else snprintf(path, sizeof path, "%.*s-%d%s", (int)(dot - plot), plot, i + 1, dot);
        if (!plot_result(path, image, r, cl, co->top)) ok = 0; /* it says why */
    }
    fflush(stdout);
    free(prob);
    return ok;
}

static void classify_one(void *user, int worker, int i)
{
    classify_run *run = user;
    const char *image = run->images->names[i];
    dc_classify_opts o = *run->o;
    if (worker) o.progress = NULL;
    else run->prog->start = run->prog->last = wall(), run->prog->label = image;
    classified *out = &run->out[i];
    out->st = dc_classify_image(run->pw->ctx[worker], run->cl, image, &o, &out->r, &out->err);
    if (!worker && run->prog->tty && run->prog->enabled) fprintf(stderr, "\n");
#ifdef _OPENMP
#pragma omp critical(classify_print)
#endif
    {
        out->ready = 1;
        for (; run->printed < run->images->n && run->out[run->printed].ready; run->printed++) {
            classified *next = &run->out[run->printed];
            if (next->st != DC_OK) {
                fprintf(stderr, "dc: %s\n", next->err.msg);
                run->rc = 1;
                continue;
            }
            if (!print_classified(run->co, run->cl, run->compute, run->images->names[run->printed], run->printed,
                                  run->images->n, run->plot, &next->r))
                run->rc = 1;
            dc_result_free(&next->r);
        }
    }
}

static int cmd_classify(int argc, char **argv)
{
    common_opts co;
    common_opts_init(&co);
    name_list images = {0};
    const char *plot = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(classify_help, stdout);
            return 0;
        } else if (!strcmp(a, "--plot") && i + 1 < argc) {
            plot = argv[++i];
        } else if (parse_common_option(&i, argc, argv, &co)) {
            continue;
        } else if (a[0] == '-' && a[1]) {
            die("classify: unknown option '%s' (see dc classify --help)", a);
        } else {
            names_add(&images, a, strlen(a));
        }
    }
    if (!images.n) die("%s", "classify: no images (usage: dc classify [-m MODEL] [OPTIONS] IMAGE...)");
    char default_model[4096];
    common_opts_finish(&co, default_model, sizeof default_model);

    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    int rc = 1;
    if (!open_classifier(co.model, &co.classes, co.tmpl, &m, &c, &cl)) goto done;
    (void)choose_default_stop(&co, m, dc_classes_count(cl), 0); /* its warnings; each result names the rule */
    progress_state prog = {!co.quiet, isatty(2), 0, 0, ""};
    co.o.progress = on_progress;
    co.o.progress_user = &prog;
    if (co.csv) printf("image,rank,class,error\n");
    /* one image per worker at a time, each printed once it and all before it are done */
    par_workers pw;
    par_workers_open(&pw, m, c, images.n);
    classified *out = calloc((size_t)images.n, sizeof *out);
    if (!out) die("%s", "out of memory");
    classify_run run = {&pw, cl, dc_model_compute(m), &co.o, &prog, &images, out, &co, plot, 0, 0};
    par_for(&pw, images.n, classify_one, &run);
    rc = run.rc;
    free(out);
    par_workers_close(&pw);
done:
    names_free(&co.classes);
    dc_calibration_free(&co.cal);
    names_free(&images);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    maybe_reexec(argv);

    /* pull global options out of argv, wherever they stand */
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") || !strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc) die("%s needs a number", argv[i]);
            char *end;
            errno = 0;
            long t = strtol(argv[++i], &end, 10);
            if (*end || errno || t < 1 || t > 1024) die("--threads: '%s' is not a thread count (1..1024)", argv[i]);
            dc_set_threads((int)t);
        } else if (!strcmp(argv[i], "--compute")) {
            dc_compute c;
            if (i + 1 >= argc) die("%s needs f32, int8 or auto", argv[i]);
            if (!dc_compute_parse(argv[++i], &c)) die("--compute: '%s' is not f32, int8 or auto", argv[i]);
            driver_set_compute(c);
        } else {
            argv[++n] = argv[i];
        }
    }
    argc = n + 1;

    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* a file-size limit then makes a write fail with EFBIG, which dc
       reports, instead of killing it halfway through a file */
    signal(SIGXFSZ, SIG_IGN);
    const char *cmd = argv[1];
    int rc = 2;
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("dc %s\n", dc_version());
        rc = 0;
    } else if (!strcmp(cmd, "blas")) rc = cmd_blas();
    else if (!strcmp(cmd, "info")) rc = cmd_info(argc - 2, argv + 2);
    else if (!strcmp(cmd, "forward")) rc = cmd_forward(argc - 2, argv + 2);
    else if (!strcmp(cmd, "classify")) rc = cmd_classify(argc - 2, argv + 2);
    else if (!strcmp(cmd, "eval")) rc = cmd_eval(argc - 2, argv + 2);
    else if (!strcmp(cmd, "calibrate")) rc = cmd_calibrate(argc - 2, argv + 2);
    else if (!strcmp(cmd, "tokenize")) rc = cmd_tokenize(argc - 2, argv + 2);
    else if (!strcmp(cmd, "match")) rc = cmd_match(argc - 2, argv + 2);
    else die("unknown command '%s' (see dc --help)", cmd);
    /* results printed to a full disk or a closed pipe are a failure too */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dc: cannot write the standard output: %s\n", strerror(errno));
        return 1;
    }
    return rc;
}
