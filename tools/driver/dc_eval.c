/* tools/driver/dc_eval.c - `dc eval`: accuracy of a model on a labelled data set.

   Data sets: an image-folder tree (root/CLASS/ holding PNG or JPEG files,
   classes in sorted folder order) or an IDX image file with its label file (as
   Fashion-MNIST and MNIST ship, gzip or not). Each image's result is
   appended to a JSON-lines file as soon as it is known, so a stopped run
   resumes where it stopped; --shard i/n splits the work across processes
   or machines, and `dc eval --merge` combines their files. */
#define _POSIX_C_SOURCE 200809L
#include "dc.h"
#include "driver.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stb/stb_image.h> /* its zlib inflater reads .gz IDX files (stb_zlib.c) */

static const char *eval_help =
    "usage: dc eval [-m MODEL] DATASET [LABELS] [OPTIONS]\n"
    "       dc eval --merge RESULTS... [--json]\n"
    "\n"
    "DATASET is a folder of class folders (root/CLASS/*.png|jpg|jpeg) or an IDX\n"
    "image file (.gz or not) followed by its IDX label file, whose labels index\n"
    "the class list (--classes/--preset, else the model's own classes).\n"
    "\n"
    "  --subset FILE       evaluate only these image indices (text, or an integer .npy)\n"
    "  --limit N           at most N images (after --subset and --shard)\n"
    "  --shard I/N         this process takes every N-th image from the I-th (0-based)\n"
    "  --results FILE      per-image results, appended (default: eval-results.jsonl);\n"
    "                      images already in it are skipped, so a stopped run resumes\n"
    "  --merge FILES...    combine result files (shards) and report\n"
    "  --fit-temperature   fit T so that softmax(-error / T) is calibrated on these\n"
    "                      labelled results (for dc classify --temperature T)\n"
    "  --calibrate FILE    measure on these labelled images how the error difference\n"
    "                      (wrong class - true class) spreads at each timestep and\n"
    "                      write \"t spread mean count\" lines (for --stop calibrated\n"
    "                      --calibration FILE). Needs every class scored at every\n"
    "                      timestep: --samples K --keep 1. Use held-out images\n"
    "                      (e.g. the training split), never the test images\n"
    "  --json              the last line of stdout is one JSON object with n, top1,\n"
    "                      top5, mean_per_class, evals_per_image, seconds_per_image\n"
    "plus every class and schedule option of `dc classify --help`.\n";

/* ---- data sets ---- */

typedef struct {
    int n, w, h;               /* IDX: n images of w x h grey pixels */
    unsigned char *pixels;     /* IDX pixels [n, h, w] */
    name_list files;           /* folder: one path per image */
    int *labels;               /* [n] index into the class list */
    name_list folder_classes;  /* folder: class names in sorted order */
} dataset;

static unsigned char *read_file(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = sz >= 0 ? malloc((size_t)sz + 1) : NULL;
    if (p && fread(p, 1, (size_t)sz, f) != (size_t)sz) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)sz;
    return p;
}

/* The whole file, gunzipped when it starts with the gzip magic. */
static unsigned char *read_maybe_gz(const char *path, size_t *n)
{
    size_t len = 0;
    unsigned char *raw = read_file(path, &len);
    if (!raw) die("eval: cannot read '%s'", path);
    if (len < 18 || raw[0] != 0x1f || raw[1] != 0x8b) {
        *n = len;
        return raw;
    }
    /* gzip: a 10-byte header, optional fields, then a raw deflate stream */
    if (raw[2] != 8) die("eval: '%s': gzip with an unknown compression method", path);
    size_t pos = 10;
    int flg = raw[3];
    if (flg & 4) pos += 2 + (raw[10] | raw[11] << 8);
    if (flg & 8) while (pos < len && raw[pos++]) {}
    if (flg & 16) while (pos < len && raw[pos++]) {}
    if (flg & 2) pos += 2;
    if (pos >= len) die("eval: '%s': truncated gzip header", path);
    int outlen = 0;
    char *out = stbi_zlib_decode_noheader_malloc((const char *)raw + pos, (int)(len - pos), &outlen);
    free(raw);
    if (!out || outlen < 0) die("eval: '%s': corrupt gzip data", path);
    *n = (size_t)outlen;
    return (unsigned char *)out;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void load_idx(dataset *d, const char *images, const char *labels, int n_classes)
{
    size_t n_img, n_lab;
    unsigned char *im = read_maybe_gz(images, &n_img), *lb = read_maybe_gz(labels, &n_lab);
    if (n_img < 16 || be32(im) != 0x803) die("eval: '%s' is not an IDX image file (magic 0x00000803)", images);
    if (n_lab < 8 || be32(lb) != 0x801) die("eval: '%s' is not an IDX label file (magic 0x00000801)", labels);
    uint32_t n = be32(im + 4), h = be32(im + 8), w = be32(im + 12);
    if (!n || !h || !w || h > 4096 || w > 4096 || (uint64_t)n * h * w != n_img - 16)
        die("eval: '%s': its header does not match its size", images);
    if (be32(lb + 4) != n || n_lab - 8 != n) die("eval: '%s': label count differs from the image count", labels);
    d->n = (int)n, d->w = (int)w, d->h = (int)h;
    d->pixels = malloc((size_t)n * h * w);
    d->labels = malloc(sizeof(int) * n);
    if (!d->pixels || !d->labels) die("%s", "eval: out of memory");
    memcpy(d->pixels, im + 16, (size_t)n * h * w);
    for (uint32_t i = 0; i < n; i++) {
        d->labels[i] = lb[8 + i];
        if (d->labels[i] >= n_classes) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d", d->labels[i]);
            die("eval: label %s is past the end of the class list", msg);
        }
    }
    free(im);
    free(lb);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *s)
{
    const char *dot = strrchr(s, '.');
    if (!dot) return 0;
    char ext[8] = {0};
    for (int i = 0; i < 7 && dot[1 + i]; i++) ext[i] = (char)(dot[1 + i] | 0x20);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

static void load_folder(dataset *d, const char *root)
{
    DIR *dir = opendir(root);
    if (!dir) die("eval: cannot open folder '%s'", root);
    struct dirent *e;
    char path[8192];
    while ((e = readdir(dir))) {
        struct stat sb;
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", root, e->d_name);
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) names_add(&d->folder_classes, e->d_name, strlen(e->d_name));
    }
    closedir(dir);
    if (!d->folder_classes.n) die("eval: '%s' has no class folders (root/CLASS/*.png)", root);
    qsort(d->folder_classes.names, (size_t)d->folder_classes.n, sizeof(char *), cmp_str);
    int cap = 0;
    for (int c = 0; c < d->folder_classes.n; c++) {
        snprintf(path, sizeof path, "%s/%s", root, d->folder_classes.names[c]);
        name_list files = {0};
        if (!(dir = opendir(path))) continue;
        while ((e = readdir(dir)))
            if (e->d_name[0] != '.' && is_image_name(e->d_name)) {
                char full[16384];
                snprintf(full, sizeof full, "%s/%s", path, e->d_name);
                names_add(&files, full, strlen(full));
            }
        closedir(dir);
        qsort(files.names, (size_t)files.n, sizeof(char *), cmp_str);
        for (int i = 0; i < files.n; i++) {
            names_add(&d->files, files.names[i], strlen(files.names[i]));
            if (d->files.n > cap) {
                cap = 2 * d->files.n;
                d->labels = realloc(d->labels, sizeof(int) * (size_t)cap);
                if (!d->labels) die("%s", "eval: out of memory");
            }
            d->labels[d->files.n - 1] = c;
        }
        names_free(&files);
    }
    d->n = d->files.n;
    if (!d->n) die("eval: no .png/.jpg/.jpeg images under '%s'", root);
}

/* ---- results ---- */

#define TOPK 5
typedef struct {
    int index, label, k;
    int top[TOPK];
    long evals;
    double seconds;
    int n_err;      /* mean error of every class (for calibration), or 0 */
    float *err;
} result_row;

typedef struct {
    result_row *rows;
    int n, cap;
    char *seen; /* [dataset size] */
} results;

static void results_add(results *r, const result_row *row)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->rows = realloc(r->rows, sizeof *r->rows * (size_t)r->cap);
        if (!r->rows) die("%s", "eval: out of memory");
    }
    r->rows[r->n++] = *row;
}

/* One line of our own format; returns 0 for anything else (e.g. the torn
   last line of a killed run, or the header). */
static int parse_row(const char *line, result_row *row)
{
    const char *p;
    memset(row, 0, sizeof *row);
    if (!(p = strstr(line, "\"index\": ")) || sscanf(p + 9, "%d", &row->index) != 1) return 0;
    if (!(p = strstr(line, "\"label\": ")) || sscanf(p + 9, "%d", &row->label) != 1) return 0;
    if (!(p = strstr(line, "\"evals\": ")) || sscanf(p + 9, "%ld", &row->evals) != 1) return 0;
    if (!(p = strstr(line, "\"seconds\": ")) || sscanf(p + 11, "%lf", &row->seconds) != 1) return 0;
    if (!(p = strstr(line, "\"top\": ["))) return 0;
    p += 8;
    while (row->k < TOPK && *p && *p != ']') {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) return 0;
        row->top[row->k++] = (int)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    if (*p != ']' || row->k < 1 || !strstr(line, "}")) return 0;
    if ((p = strstr(line, "\"errors\": ["))) { /* optional: every class's mean error */
        p += 11;
        int cap = 0;
        while (*p && *p != ']') {
            char *end;
            double v = strtod(p, &end);
            if (end == p) break;
            if (row->n_err == cap) {
                cap = cap ? 2 * cap : 16;
                row->err = realloc(row->err, sizeof(float) * (size_t)cap);
                if (!row->err) die("%s", "eval: out of memory");
            }
            row->err[row->n_err++] = (float)v;
            p = end;
            while (*p == ',' || *p == ' ') p++;
        }
    }
    return 1;
}

/* Reads a results file: the header's class count, and its rows. stop (may
   be NULL, stop_cap bytes) gets the stopping rule the header names, "" for files
   made before headers named it: a run resumes only with the same rule,
   since the rule changes what each row means (evaluations, errors). */
static int read_results(const char *path, results *r, int *n_classes, name_list *class_names, char *stop,
                        size_t stop_cap)
{
    if (stop) stop[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rows = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        result_row row;
        const char *h = strstr(line, "\"dc_eval\": 1");
        if (h) {
            const char *p = strstr(line, "\"n_classes\": ");
            int nc = p ? atoi(p + 13) : 0;
            if (*n_classes && nc != *n_classes) die("eval: '%s' was made with a different class list", path);
            *n_classes = nc;
            const char *st = stop ? strstr(line, "\"stop\": \"") : NULL;
            if (st) {
                st += 9;
                size_t n = strcspn(st, "\"");
                snprintf(stop, stop_cap, "%.*s", (int)(n < stop_cap ? n : stop_cap - 1), st);
            }
            const char *q = strstr(line, "\"classes\": [");
            if (q && class_names && !class_names->n) { /* "a", "b", ...: names without quotes or escapes */
                q += 12;
                while (*q == '"') {
                    const char *e = strchr(q + 1, '"');
                    if (!e) break;
                    names_add(class_names, q + 1, (size_t)(e - q - 1));
                    q = e + 1;
                    while (*q == ',' || *q == ' ') q++;
                }
            }
            continue;
        }
        if (parse_row(line, &row)) {
            results_add(r, &row);
            rows++;
        }
    }
    free(line);
    fclose(f);
    return rows;
}

static void write_row(FILE *f, const result_row *row)
{
    fprintf(f, "{\"index\": %d, \"label\": %d, \"top\": [", row->index, row->label);
    for (int j = 0; j < row->k; j++) fprintf(f, "%s%d", j ? ", " : "", row->top[j]);
    fprintf(f, "], \"evals\": %ld, \"seconds\": %.4f", row->evals, row->seconds);
    if (row->n_err) {
        fprintf(f, ", \"errors\": [");
        for (int j = 0; j < row->n_err; j++) fprintf(f, "%s%.7g", j ? ", " : "", row->err[j]);
        fprintf(f, "]");
    }
    fprintf(f, "}\n");
    fflush(f);
}

/* ---- calibration ----
   Softmax over raw errors is nearly uniform (errors differ in the third
   digit), so probabilities need a temperature: p(c) = softmax(-err_c / T).
   T is fitted on labelled results by minimising the mean negative log
   likelihood of the true class, a 1-D search over log T. */

static double nll(const results *r, double T)
{
    double total = 0;
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        const result_row *row = &r->rows[i];
        if (row->n_err <= row->label || row->label < 0) continue;
        double mn = 1e300, z = 0;
        for (int c = 0; c < row->n_err; c++) mn = row->err[c] < mn ? row->err[c] : mn;
        for (int c = 0; c < row->n_err; c++) z += exp(-(row->err[c] - mn) / T);
        total += (row->err[row->label] - mn) / T + log(z);
        n++;
    }
    return n ? total / n : 0;
}

static double fit_temperature(const results *r, double *before, double *after)
{
    double lo = log(1e-7), hi = log(1e2); /* golden-section search on log T */
    const double g = 0.6180339887498949;
    double a = hi - g * (hi - lo), b = lo + g * (hi - lo), fa = nll(r, exp(a)), fb = nll(r, exp(b));
    for (int it = 0; it < 100; it++) {
        if (fa < fb) hi = b, b = a, fb = fa, a = hi - g * (hi - lo), fa = nll(r, exp(a));
        else lo = a, a = b, fa = fb, b = lo + g * (hi - lo), fb = nll(r, exp(b));
    }
    double T = exp((lo + hi) / 2);
    *before = nll(r, 1.0);
    *after = nll(r, T);
    return T;
}

/* ---- the report ---- */

static void report(const results *r, int n_classes, const name_list *names, int json, int fit, const char *plot)
{
    if (!r->n) die("%s", "eval: no results to report");
    long top1 = 0, top5 = 0, evals = 0;
    double secs = 0;
    long *conf = calloc((size_t)n_classes * n_classes, sizeof(long));
    long *per = calloc((size_t)n_classes, sizeof(long)), *hit = calloc((size_t)n_classes, sizeof(long));
    if (!conf || !per || !hit) die("%s", "eval: out of memory");
    for (int i = 0; i < r->n; i++) {
        const result_row *row = &r->rows[i];
        if (row->label < 0 || row->label >= n_classes || row->top[0] < 0 || row->top[0] >= n_classes) continue;
        top1 += row->top[0] == row->label;
        for (int j = 0; j < row->k; j++) top5 += row->top[j] == row->label;
        conf[(size_t)row->label * n_classes + row->top[0]]++;
        per[row->label]++;
        hit[row->label] += row->top[0] == row->label;
        evals += row->evals;
        secs += row->seconds;
    }
    double mpc = 0;
    int present = 0;
    for (int c = 0; c < n_classes; c++)
        if (per[c]) mpc += (double)hit[c] / per[c], present++;
    mpc = present ? mpc / present : 0;
    printf("images: %d\ntop-1: %.4f\ntop-5: %.4f\nmean per-class accuracy: %.4f\n"
           "evaluations per image: %.1f\nseconds per image: %.3f\n",
           r->n, (double)top1 / r->n, (double)top5 / r->n, mpc, (double)evals / r->n, secs / r->n);
    if (n_classes <= 20) {
        printf("confusion matrix (rows: true class, columns: predicted):\n");
        for (int a = 0; a < n_classes; a++) {
            printf("  %-14.14s", a < names->n ? names->names[a] : "?");
            for (int b = 0; b < n_classes; b++) printf(" %5ld", conf[(size_t)a * n_classes + b]);
            printf("\n");
        }
    }
    if (plot) {
        char title[160];
        snprintf(title, sizeof title, "%d images: top-1 %.3f, mean per-class %.3f", r->n, (double)top1 / r->n, mpc);
        if (!plot_confusion(plot, conf, n_classes, names, title)) die("eval: --plot: cannot write '%s'", plot);
        printf("plot: %s (the confusion matrix)\n", plot);
    }
    double T = 0, nll0 = 0, nll1 = 0;
    if (fit) {
        T = fit_temperature(r, &nll0, &nll1);
        printf("temperature: %.6g (mean NLL of the true class %.4f at T = 1, %.4f fitted; "
               "use dc classify --temperature %.6g)\n", T, nll0, nll1, T);
    }
    if (json) {
        printf("{\"n\": %d, \"top1\": %.6f, \"top5\": %.6f, \"mean_per_class\": %.6f, "
               "\"evals_per_image\": %.2f, \"seconds_per_image\": %.4f",
               r->n, (double)top1 / r->n, (double)top5 / r->n, mpc, (double)evals / r->n, secs / r->n);
        if (fit) printf(", \"temperature\": %.6g, \"nll\": %.6f", T, nll1);
        printf("}\n");
    }
    free(conf);
    free(per);
    free(hit);
}

static int cmd_merge(int argc, char **argv, int json, int fit, const char *plot)
{
    results r = {0};
    int n_classes = 0;
    name_list names = {0};
    for (int i = 0; i < argc; i++)
        if (!read_results(argv[i], &r, &n_classes, &names, NULL, 0)) die("eval --merge: nothing read from '%s'", argv[i]);
    /* shards are disjoint; a repeated index (a shard run twice) counts once */
    int max_index = 0;
    for (int i = 0; i < r.n; i++) max_index = r.rows[i].index > max_index ? r.rows[i].index : max_index;
    char *seen = calloc((size_t)max_index + 1, 1);
    int k = 0;
    for (int i = 0; i < r.n; i++)
        if (!seen[r.rows[i].index]) seen[r.rows[i].index] = 1, r.rows[k++] = r.rows[i];
        else free(r.rows[i].err);
    r.n = k;
    report(&r, n_classes, &names, json, fit, plot);
    for (int i = 0; i < r.n; i++) free(r.rows[i].err);
    free(seen);
    free(r.rows);
    names_free(&names);
    return 0;
}

static int *read_subset(const char *path, int *n)
{
    int *idx = NULL, cap = 0;
    *n = 0;
    const char *dot = strrchr(path, '.');
    if (dot && !strcmp(dot, ".npy")) {
        dc_tensor t;
        dc_error err;
        if (dc_tensor_load_npy(&t, path, &err) != DC_OK) die("eval: --subset: %s", err.msg);
        if (!t.i64) die("eval: --subset '%s': expected integer indices", path);
        int64_t cnt = 1;
        for (int i = 0; i < t.ndim; i++) cnt *= t.shape[i];
        idx = malloc(sizeof(int) * (size_t)(cnt ? cnt : 1));
        for (int64_t i = 0; idx && i < cnt; i++) idx[(*n)++] = (int)t.i64[i];
        dc_tensor_free(&t);
        return idx;
    }
    FILE *f = fopen(path, "r");
    if (!f) die("eval: --subset: cannot open '%s'", path);
    long v;
    while (fscanf(f, "%ld", &v) == 1) {
        if (*n == cap) {
            cap = cap ? 2 * cap : 256;
            idx = realloc(idx, sizeof(int) * (size_t)cap);
            if (!idx) die("%s", "eval: out of memory");
        }
        idx[(*n)++] = (int)v;
    }
    if (!feof(f)) die("eval: --subset '%s': expected whitespace-separated integers", path);
    fclose(f);
    return idx;
}

/* --calibrate: per timestep, the error difference wrong class - true class
   over images and wrong classes. */
#define CALIB_MAX_T 100000
typedef struct {
    double *sum, *sq;
    long *count;
} calibration;

static void calibration_add(calibration *cb, const dc_result *r, int label)
{
    int nt = r->n_timesteps;
    for (int j = 0; j < nt; j++) {
        int t = r->timesteps[j];
        float et = r->errors[(size_t)label * nt + j];
        if (t < 0 || t >= CALIB_MAX_T || isnan(et)) continue;
        for (int c = 0; c < r->n_classes; c++) {
            float ec = r->errors[(size_t)c * nt + j];
            if (c == label || isnan(ec)) continue;
            double d = (double)ec - et;
            cb->sum[t] += d, cb->sq[t] += d * d, cb->count[t]++;
        }
    }
}

/* Per-timestep estimates from a few hundred images are noisy, and the
   visiting order follows them; so the spread is smoothed over 5
   neighbouring timesteps, in the log domain (it spans orders of magnitude). */
static void calibration_write(const calibration *cb, const char *path, const char *model, int images)
{
    int n = 0, *ts = malloc(sizeof(int) * CALIB_MAX_T);
    double *logsd = malloc(sizeof(double) * CALIB_MAX_T), *mean = malloc(sizeof(double) * CALIB_MAX_T);
    if (!ts || !logsd || !mean) die("%s", "eval: out of memory");
    for (int t = 0; t < CALIB_MAX_T; t++) {
        if (cb->count[t] < 2) continue;
        double m = cb->sum[t] / cb->count[t], v = (cb->sq[t] - cb->count[t] * m * m) / (cb->count[t] - 1);
        ts[n] = t, mean[n] = m, logsd[n] = log(v > 1e-300 ? sqrt(v) : 1e-150);
        n++;
    }
    if (!n) die("eval --calibrate: no timestep had every class scored; use a one-stage schedule such as "
                "--samples %s --keep 1", "50");
    FILE *f = fopen(path, "w");
    if (!f) die("eval --calibrate: cannot write '%s'", path);
    fprintf(f, "# dc timestep calibration of %s on %d labelled images\n", model, images);
    fprintf(f, "# d = error(wrong class) - error(true class); spread = std(d), geometric mean over 5 "
               "neighbouring timesteps\n# t spread mean count\n");
    for (int i = 0; i < n; i++) {
        double s = 0;
        int k = 0;
        for (int j = i - 2; j <= i + 2; j++)
            if (j >= 0 && j < n) s += logsd[j], k++;
        fprintf(f, "%d %.6g %.6g %ld\n", ts[i], exp(s / k), mean[i], cb->count[ts[i]]);
    }
    if (fclose(f)) die("eval --calibrate: cannot write '%s'", path);
    fprintf(stderr, "eval: timestep calibration of %d timesteps written to %s\n", n, path);
    free(ts), free(logsd), free(mean);
}

int cmd_eval(int argc, char **argv)
{
    common_opts co;
    common_opts_init(&co);
    name_list pos = {0};
    const char *subset = NULL, *results_path = "eval-results.jsonl", *calibrate = NULL, *plot = NULL;
    long limit = -1;
    int shard_i = 0, shard_n = 1, merge = 0, fit = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(eval_help, stdout);
            return 0;
        } else if (!strcmp(a, "--merge")) merge = 1;
        else if (!strcmp(a, "--fit-temperature")) fit = 1;
        else if (parse_common_option(&i, argc, argv, &co)) continue;
        else if (!strcmp(a, "--subset") && i + 1 < argc) subset = argv[++i];
        else if (!strcmp(a, "--limit") && i + 1 < argc) limit = parse_long(a, argv[++i], 0, 1L << 30);
        else if (!strcmp(a, "--results") && i + 1 < argc) results_path = argv[++i];
        else if (!strcmp(a, "--calibrate") && i + 1 < argc) calibrate = argv[++i];
        else if (!strcmp(a, "--plot") && i + 1 < argc) plot = argv[++i];
        else if (!strcmp(a, "--shard") && i + 1 < argc) {
            const char *v = argv[++i];
            if (sscanf(v, "%d/%d", &shard_i, &shard_n) != 2 || shard_n < 1 || shard_i < 0 || shard_i >= shard_n)
                die("eval: --shard '%s': I/N with 0 <= I < N", v);
        } else if (a[0] == '-' && a[1]) die("eval: unknown or incomplete option '%s' (see dc eval --help)", a);
        else names_add(&pos, a, strlen(a));
    }
    if (merge) {
        if (!pos.n) die("%s", "eval --merge: which result files?");
        int rc = cmd_merge(pos.n, pos.names, co.json, fit, plot);
        names_free(&pos);
        names_free(&co.classes);
        return rc;
    }
    if (pos.n < 1 || pos.n > 2) die("%s", "eval: usage: dc eval [-m MODEL] DATASET [LABELS] [OPTIONS]");
    char default_model[4096];
    common_opts_finish(&co, default_model, sizeof default_model);

    dc_error err;
    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    dataset d;
    memset(&d, 0, sizeof d);
    struct stat sb;
    int is_folder = stat(pos.names[0], &sb) == 0 && S_ISDIR(sb.st_mode);
    if (is_folder && pos.n != 1) die("%s", "eval: a folder data set takes no label file");
    if (!is_folder && pos.n != 2) die("%s", "eval: an IDX image file needs its IDX label file after it");
    if (is_folder) {
        load_folder(&d, pos.names[0]);
        if (!co.classes.n) /* the folders name the classes */
            for (int i = 0; i < d.folder_classes.n; i++)
                names_add(&co.classes, d.folder_classes.names[i], strlen(d.folder_classes.names[i]));
        else if (co.classes.n != d.folder_classes.n)
            die("%s", "eval: the class list and the data set's class folders differ in number");
    }
    if (!open_classifier(co.model, &co.classes, co.tmpl, &m, &c, &cl)) {
        dc_classes_free(cl);
        dc_ctx_free(c);
        dc_model_free(m);
        return 1;
    }
    choose_default_stop(&co, m);
    int n_classes = dc_classes_count(cl);
    if (!is_folder) load_idx(&d, pos.names[0], pos.names[1], n_classes);

    /* which images: subset, then shard, then limit */
    int n_idx = d.n, *idx = NULL;
    if (subset) {
        idx = read_subset(subset, &n_idx);
        for (int i = 0; i < n_idx; i++)
            if (idx[i] < 0 || idx[i] >= d.n) die("eval: --subset: an index is outside the data set (%s)", subset);
    } else {
        idx = malloc(sizeof(int) * (size_t)d.n);
        for (int i = 0; idx && i < d.n; i++) idx[i] = i;
    }
    if (!idx) die("%s", "eval: out of memory");
    int k = 0;
    for (int i = shard_i; i < n_idx; i += shard_n) idx[k++] = idx[i];
    n_idx = k;
    if (limit >= 0 && limit < n_idx) n_idx = (int)limit;

    /* resume: what the results file already holds */
    results done = {0};
    int file_classes = 0;
    char file_stop[32];
    int had = read_results(results_path, &done, &file_classes, NULL, file_stop, sizeof file_stop);
    if (had && file_classes != n_classes) die("eval: '%s' was made with a different class list", results_path);
    if (file_stop[0] && strcmp(file_stop, stop_name(co.o.stop))) {
        char why[4400];
        snprintf(why, sizeof why, "'%s' holds results of --stop %s, this run uses --stop %s (give that option, "
                 "or another --results file)", results_path, file_stop, stop_name(co.o.stop));
        die("eval: %s", why);
    }
    char *seen = calloc((size_t)d.n, 1);
    for (int i = 0; i < done.n; i++)
        if (done.rows[i].index >= 0 && done.rows[i].index < d.n) seen[done.rows[i].index] = 1;
    FILE *out = fopen(results_path, "a");
    if (!out) die("eval: cannot write '%s'", results_path);
    if (!had && ftell(out) == 0) { /* header: what these results are */
        fprintf(out, "{\"dc_eval\": 1, \"model\": ");
        json_string(out, co.model);
        fprintf(out, ", \"dataset\": ");
        json_string(out, pos.names[0]);
        fprintf(out, ", \"stop\": \"%s\", \"n_classes\": %d, \"classes\": [", stop_name(co.o.stop), n_classes);
        for (int i = 0; i < n_classes; i++) {
            fprintf(out, "%s", i ? ", " : "");
            json_string(out, dc_classes_name(cl, i));
        }
        fprintf(out, "]}\n");
    }
    results mine = {0};
    for (int i = 0; i < done.n; i++) /* rows of this run's selection count in the report */
        for (int j = 0; j < n_idx; j++)
            if (idx[j] == done.rows[i].index) {
                results_add(&mine, &done.rows[i]);
                break;
            }
    int copied = mine.n; /* rows from here on are this run's own (their err arrays too) */
    int todo = 0;
    for (int j = 0; j < n_idx; j++) todo += !seen[idx[j]];
    if (!co.quiet && had) fprintf(stderr, "eval: resuming: %d of %d images already in %s\n", n_idx - todo, n_idx, results_path);

    calibration cb = {0};
    if (calibrate) {
        cb.sum = calloc(CALIB_MAX_T, sizeof(double)), cb.sq = calloc(CALIB_MAX_T, sizeof(double));
        cb.count = calloc(CALIB_MAX_T, sizeof(long));
        if (!cb.sum || !cb.sq || !cb.count) die("%s", "eval: out of memory");
    }
    unsigned char *rgb = d.pixels ? malloc((size_t)d.w * d.h * 3) : NULL;
    double t0 = wall(), last = 0;
    int count = 0, correct = 0, rc = 0;
    for (int j = 0; j < n_idx; j++) {
        int i = idx[j];
        if (seen[i]) continue;
        dc_result r;
        dc_status st;
        if (d.pixels) { /* grey IDX pixels -> RGB */
            const unsigned char *g = d.pixels + (size_t)i * d.w * d.h;
            for (int p = 0; p < d.w * d.h; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = g[p];
            st = dc_classify_rgb(c, cl, rgb, d.w, d.h, &co.o, &r, &err);
        } else {
            st = dc_classify_image(c, cl, d.files.names[i], &co.o, &r, &err);
        }
        if (st != DC_OK) {
            fprintf(stderr, "dc: image %d: %s\n", i, err.msg);
            rc = 1;
            continue;
        }
        result_row row = {i, d.labels[i], r.n_classes < TOPK ? r.n_classes : TOPK, {0}, r.n_evals, r.seconds,
                          r.n_classes, malloc(sizeof(float) * (size_t)r.n_classes)};
        if (!row.err) die("%s", "eval: out of memory");
        for (int q = 0; q < row.k; q++) row.top[q] = r.ranking[q];
        for (int q = 0; q < r.n_classes; q++) row.err[q] = (float)r.mean_error[q];
        write_row(out, &row);
        if (calibrate) calibration_add(&cb, &r, row.label);
        results_add(&mine, &row);
        seen[i] = 1;
        count++;
        correct += row.top[0] == row.label;
        dc_result_free(&r);
        double now = wall();
        if (!co.quiet && (now - last > (isatty(2) ? 0.5 : 10) || count == todo)) {
            double rate = (now - t0) / count;
            fprintf(stderr, "%seval: %d/%d images, top-1 %.3f, %.2f s/image, ETA %.0f s%s", isatty(2) ? "\r" : "",
                    count, todo, (double)correct / count, rate, rate * (todo - count), isatty(2) ? " " : "\n");
            last = now;
        }
    }
    if (!co.quiet && isatty(2) && count) fprintf(stderr, "\n");
    fclose(out);
    if (calibrate) {
        if (!count) die("eval --calibrate: no image was evaluated in this run (all already in %s?)", results_path);
        calibration_write(&cb, calibrate, co.model, count);
        free(cb.sum), free(cb.sq), free(cb.count);
    }
    name_list names = {0};
    for (int i = 0; i < n_classes; i++) names_add(&names, dc_classes_name(cl, i), strlen(dc_classes_name(cl, i)));
    if (mine.n) report(&mine, n_classes, &names, co.json, fit, plot);
    names_free(&names);
    for (int i = copied; i < mine.n; i++) free(mine.rows[i].err);
    for (int i = 0; i < done.n; i++) free(done.rows[i].err);
    free(mine.rows);
    free(done.rows);
    free(seen);
    free(idx);
    free(rgb);
    free(d.pixels);
    free(d.labels);
    names_free(&d.files);
    names_free(&d.folder_classes);
    names_free(&pos);
    names_free(&co.classes);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}
