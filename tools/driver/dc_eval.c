/* tools/driver/dc_eval.c - `dc eval`: accuracy of a model on a labelled data set.

   Data sets: an image-folder tree (root/CLASS/ holding PNG or JPEG files,
   classes in sorted folder order) or an IDX image file with its label file (as
   Fashion-MNIST and MNIST ship, gzip or not). Each image's result is
   appended to a JSON-lines file as soon as it is known (durable.c: checked
   writes, synced every few seconds, one writer), so a stopped run resumes
   where it stopped; `mpirun dc eval` spreads the images over MPI ranks
   (par.c), --shard i/n splits them across independent processes, and
   `dc eval --merge` combines their files. */
#define _POSIX_C_SOURCE 200809L
#include "dc.h"
#include "driver.h"
#include "calibrate.h"
#include "durable.h"
#include "par.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stb/stb_image.h> /* its zlib inflater reads .gz IDX files: the driver's own copy, stb_zlib.c */

static const char eval_help[] =
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
    "                      images already in it are skipped, so a stopped run resumes.\n"
    "                      One run at a time may write it (a second is refused); rows\n"
    "                      reach the disk within seconds, a write error stops the run\n"
    "  --merge FILES...    combine result files (shards) and report\n"
    "  --fit-temperature   fit T so that softmax(-error / T) is calibrated on these\n"
    "                      labelled results (for dc classify --temperature T)\n"
    "  --calibrate FILE    measure on these labelled images how the error difference\n"
    "                      (wrong class - true class) spreads at each timestep and\n"
    "                      write \"t spread mean count\" lines (for --stop calibrated\n"
    "                      --calibration FILE). Needs every class scored at every\n"
    "                      timestep: --samples K --keep 1 (--stop adaptive, the\n"
    "                      default here). Use held-out images\n"
    "                      (e.g. the training split), never the test images\n"
    "  --plot FILE.png     draw the confusion matrix (counts, per-class accuracy);\n"
    "                      beyond 60 classes, among the 40 most confused ones\n"
    "  --json              the last line of stdout is one JSON object with n, top1,\n"
    "                      top5, mean_per_class, evals_per_image, seconds_per_image,\n"
    "                      undecided (images a budget stopped)\n"
    "plus every class and schedule option of `dc classify --help` (budgets too:\n"
    "--max-evals N, --max-seconds S per image).\n"
    "\n"
    "Built with `make MPI=1`, `mpirun -n N dc eval ...` shares the images out among\n"
    "N ranks as they finish them; rank 0 writes the results file.\n";

static const char calibrate_help[] =
    "usage: dc calibrate [-m MODEL] IMAGES... -o FILE [OPTIONS]\n"
    "\n"
    "Measures a timestep calibration for --stop calibrated and screened on images\n"
    "without labels: each image is scored for every class at a shared grid\n"
    "(default --samples 50 --keep 1), and the spread of the error difference\n"
    "between the other finalists and the leading class is written per timestep.\n"
    "IMAGES: image files, folders of them (searched through their subfolders), or\n"
    "one IDX image file (.gz or not). A few hundred images like the ones to be\n"
    "classified suffice; on the shipped models 200 unlabelled images give the\n"
    "labelled calibration's accuracy (docs/results.md). Store it in a model with\n"
    "tools/convert/convert.py --calibration FILE, or pass --calibration FILE.\n"
    "\n"
    "  -o, --output FILE   the calibration (\"t spread mean count\" lines)\n"
    "  --samples K --keep 1  the grid every class is scored at (default 50). Many\n"
    "                      classes: --samples 10,50 --keep 5,1 scores all classes at\n"
    "                      10 timesteps and the 5 leading ones at 50: the finalists\n"
    "  --subset FILE, --limit N, --shard I/N, --results FILE (default\n"
    "                      calibrate-results.jsonl; a stopped run resumes), --json\n"
    "plus every class option of `dc classify --help`.\n";

/* ---- data sets ---- */

typedef struct {
    int n, w, h;               /* IDX: n images of w x h grey pixels */
    int unlabelled;            /* labels are all -1 */
    unsigned char *pixels;     /* IDX pixels [n, h, w] */
    name_list files;           /* folder: one path per image */
    int *labels;               /* [n] index into the class list */
    name_list folder_classes;  /* folder: class names in sorted order */
} dataset;

static unsigned char *read_file(const char *path, size_t *n)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        die(S_ISDIR(sb.st_mode) ? "eval: '%s' is a directory, not an IDX file" : "eval: '%s' is not a regular file",
            path);
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

/* Labels are checked against the class list once it is known (check_labels). */
static void load_idx(dataset *d, const char *images, const char *labels)
{
    size_t n_img, n_lab = 0;
    unsigned char *im = read_maybe_gz(images, &n_img), *lb = labels ? read_maybe_gz(labels, &n_lab) : NULL;
    if (n_img < 16 || be32(im) != 0x803) die("eval: '%s' is not an IDX image file (magic 0x00000803)", images);
    if (lb && (n_lab < 8 || be32(lb) != 0x801)) die("eval: '%s' is not an IDX label file (magic 0x00000801)", labels);
    uint32_t n = be32(im + 4), h = be32(im + 8), w = be32(im + 12);
    if (!n || !h || !w || h > 4096 || w > 4096 || (uint64_t)n * h * w != n_img - 16)
        die("eval: '%s': its header does not match its size", images);
    if (lb && (be32(lb + 4) != n || n_lab - 8 != n))
        die("eval: '%s': label count differs from the image count", labels);
    d->n = (int)n, d->w = (int)w, d->h = (int)h;
    d->pixels = malloc((size_t)n * h * w);
    d->labels = malloc(sizeof(int) * n);
    if (!d->pixels || !d->labels) die("%s", "eval: out of memory");
    memcpy(d->pixels, im + 16, (size_t)n * h * w);
    for (uint32_t i = 0; i < n; i++) d->labels[i] = lb ? lb[8 + i] : -1;
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

/* The names in dir but the hidden ones, in sorted order. */
static void list_folder(name_list *out, const char *dir)
{
    DIR *dp = opendir(dir);
    if (!dp) die("cannot open folder '%s'", dir);
    struct dirent *e;
    while ((e = readdir(dp)))
        if (e->d_name[0] != '.') names_add(out, e->d_name, strlen(e->d_name));
    closedir(dp);
    if (out->n > 1) qsort(out->names, (size_t)out->n, sizeof(char *), cmp_str);
}

/* The image files in dir, in sorted order, then through its subfolders
   down to max_depth levels below it (depth counts the levels walked). */
static void collect_images(name_list *out, const char *dir, int depth, int max_depth)
{
    name_list entries = {0};
    list_folder(&entries, dir);
    for (int i = 0; i < entries.n; i++) {
        char path[16384];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, entries.names[i]);
        if (stat(path, &sb) != 0) continue;
        if (S_ISDIR(sb.st_mode) && depth < max_depth) collect_images(out, path, depth + 1, max_depth);
        else if (S_ISREG(sb.st_mode) && is_image_name(path)) names_add(out, path, strlen(path));
    }
    names_free(&entries);
}

/* root/CLASS/ folders, classes in sorted order, each image labelled with its folder's. */
static void load_folder(dataset *d, const char *root)
{
    name_list entries = {0};
    list_folder(&entries, root);
    for (int i = 0; i < entries.n; i++) {
        const char *name = entries.names[i];
        char path[8192];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", root, name);
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) names_add(&d->folder_classes, name, strlen(name));
    }
    names_free(&entries);
    if (!d->folder_classes.n) die("eval: '%s' has no class folders (root/CLASS/*.png)", root);
    for (int c = 0; c < d->folder_classes.n; c++) {
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", root, d->folder_classes.names[c]);
        int before = d->files.n;
        collect_images(&d->files, path, 0, 0);
        d->labels = realloc(d->labels, sizeof(int) * (size_t)(d->files.n ? d->files.n : 1));
        if (!d->labels) die("%s", "eval: out of memory");
        for (int i = before; i < d->files.n; i++) d->labels[i] = c;
    }
    d->n = d->files.n;
    if (!d->n) die("eval: no .png/.jpg/.jpeg images under '%s'", root);
}

/* dc calibrate's images: one IDX image file, or image files and folders. */
static void load_unlabelled(dataset *d, const name_list *args)
{
    struct stat sb;
    d->unlabelled = 1;
    if (args->n == 1 && stat(args->names[0], &sb) == 0 && S_ISREG(sb.st_mode) && !is_image_name(args->names[0])) {
        load_idx(d, args->names[0], NULL);
        return;
    }
    for (int i = 0; i < args->n; i++) {
        const char *a = args->names[i];
        if (stat(a, &sb) != 0) die("calibrate: cannot read '%s'", a);
        if (S_ISDIR(sb.st_mode)) collect_images(&d->files, a, 0, 16);
        else if (is_image_name(a)) names_add(&d->files, a, strlen(a));
        else die("calibrate: '%s' is not a .png/.jpg/.jpeg image (an IDX image file comes alone)", a);
    }
    d->n = d->files.n;
    if (!d->n) die("%s", "calibrate: no .png/.jpg/.jpeg images among the arguments");
    d->labels = malloc(sizeof(int) * (size_t)d->n);
    if (!d->labels) die("%s", "calibrate: out of memory");
    for (int i = 0; i < d->n; i++) d->labels[i] = -1;
}

/* ---- results ----
   The results file: a header line ({"dc_eval": 1, ...: model, data set,
   stopping rule, classes}), then one line per image. Every line is written
   whole or not at all (durable.c), so a line that does not parse is damage
   (a disk fault, an editor): it is named and skipped, and its image is
   evaluated again. */

#define TOPK 5
typedef struct {
    int seq;        /* order of arrival in its list */
    int index, label, k;
    int top[TOPK];
    long evals;
    double seconds;
    int undecided;  /* a budget (--max-evals, --max-seconds) stopped it */
    int n_err;      /* mean error of every class (for temperature fits), or 0 */
    float *err;
    int has_cal;    /* --calibrate: per timestep, "t, sum d, sum d^2, count" */
    int n_cal;      /* values in cal (4 per timestep) */
    double *cal;
} result_row;

typedef struct {
    result_row *rows;
    int n, cap;
} results;

static void results_add(results *r, const result_row *row)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 256;
        r->rows = realloc(r->rows, sizeof *r->rows * (size_t)r->cap);
        if (!r->rows) die("%s", "eval: out of memory");
    }
    r->rows[r->n] = *row;
    r->rows[r->n].seq = r->n;
    r->n++;
}

static void row_free(result_row *row)
{
    free(row->err);
    free(row->cal);
    row->err = NULL, row->cal = NULL;
}

static void results_free(results *r)
{
    for (int i = 0; i < r->n; i++) row_free(&r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

/* p: just past "[": numbers to ']' into a growing array; returns the count,
   or -1 if the list does not end in ']' */
static int parse_numbers(const char *p, double **out)
{
    int n = 0, cap = 0;
    *out = NULL;
    while (*p == ' ') p++;
    while (*p && *p != ']') {
        char *end;
        double v = strtod(p, &end);
        if (end == p) return -1;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            double *bigger = realloc(*out, sizeof(double) * (size_t)cap);
            if (!bigger) die("%s", "eval: out of memory");
            *out = bigger;
        }
        (*out)[n++] = v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return *p == ']' ? n : -1;
}

/* One result line (without its newline); 0 for anything else. A row is one
   object: it starts with its index and holds no second '{', which a line
   torn and then written on by an older dc would. */
static int parse_row(const char *line, result_row *row)
{
    const char *p;
    size_t len = strlen(line);
    memset(row, 0, sizeof *row);
    if (strncmp(line, "{\"index\": ", 10) || strchr(line + 1, '{') || len < 2 || line[len - 1] != '}') return 0;
    if (sscanf(line + 10, "%d", &row->index) != 1 || row->index < 0) return 0;
    if (!(p = strstr(line, "\"label\": ")) || sscanf(p + 9, "%d", &row->label) != 1) return 0;
    if (!(p = strstr(line, "\"evals\": ")) || sscanf(p + 9, "%ld", &row->evals) != 1) return 0;
    if (!(p = strstr(line, "\"seconds\": ")) || sscanf(p + 11, "%lf", &row->seconds) != 1) return 0;
    row->undecided = strstr(line, "\"undecided\": 1") != NULL;
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
    if (*p != ']' || row->k < 1) return 0;
    double *v;
    int n;
    if ((p = strstr(line, "\"errors\": ["))) { /* every class's mean error */
        if ((n = parse_numbers(p + 11, &v)) < 0) {
            free(v);
            return 0;
        }
        row->err = malloc(sizeof(float) * (size_t)(n ? n : 1));
        if (!row->err) die("%s", "eval: out of memory");
        for (int i = 0; i < n; i++) row->err[i] = (float)v[i];
        row->n_err = n;
        free(v);
    }
    if ((p = strstr(line, "\"calib\": ["))) {
        if ((n = parse_numbers(p + 10, &v)) < 0 || n % 4) {
            free(v);
            row_free(row);
            return 0;
        }
        row->has_cal = 1, row->n_cal = n, row->cal = v;
    }
    return 1;
}

/* The line a row is written as (malloc'd, no newline). Numbers are printed
   so that they read back the same: errors to float precision, the
   calibration sums (doubles) with 17 digits. */
static char *format_row(const result_row *row)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) die("%s", "eval: out of memory");
    fprintf(f, "{\"index\": %d, \"label\": %d, \"top\": [", row->index, row->label);
    for (int j = 0; j < row->k; j++) fprintf(f, "%s%d", j ? ", " : "", row->top[j]);
    fprintf(f, "], \"evals\": %ld, \"seconds\": %.4f", row->evals, row->seconds);
    if (row->undecided) fprintf(f, ", \"undecided\": 1");
    if (row->n_err) {
        fprintf(f, ", \"errors\": [");
        for (int j = 0; j < row->n_err; j++) fprintf(f, "%s%.7g", j ? ", " : "", row->err[j]);
        fprintf(f, "]");
    }
    if (row->has_cal) {
        fprintf(f, ", \"calib\": [");
        for (int j = 0; j < row->n_cal; j++) fprintf(f, "%s%.17g", j ? ", " : "", row->cal[j]);
        fprintf(f, "]");
    }
    fprintf(f, "}");
    if (fclose(f) != 0 || !buf) die("%s", "eval: out of memory");
    return buf;
}

/* What a results file holds: its rows, the header's class count, names and
   stopping rule ("" for files made before headers named it: a run resumes
   only with the same rule, since the rule changes what each row means). */
typedef struct {
    const char *path;
    results *r;
    int n_classes, headers, damaged;
    name_list *class_names; /* may be NULL */
    char stop[32];
    char compute[16];       /* "" for files made before headers named it */
} reader;

static void read_line(void *user, const char *line, size_t len)
{
    reader *rd = user;
    (void)len;
    result_row row;
    if (!strncmp(line, "{\"dc_eval\": 1", 13)) {
        const char *p = strstr(line, "\"n_classes\": ");
        int nc = p ? atoi(p + 13) : 0;
        if (rd->n_classes && nc != rd->n_classes) die("eval: '%s' was made with a different class list", rd->path);
        rd->n_classes = nc;
        rd->headers++;
        const char *st = strstr(line, "\"stop\": \"");
        if (st) {
            st += 9;
            snprintf(rd->stop, sizeof rd->stop, "%.*s", (int)strcspn(st, "\""), st);
        }
        const char *cp = strstr(line, "\"compute\": \"");
        if (cp) {
            cp += 12;
            snprintf(rd->compute, sizeof rd->compute, "%.*s", (int)strcspn(cp, "\""), cp);
        }
        const char *q = strstr(line, "\"classes\": [");
        if (q && rd->class_names && !rd->class_names->n) { /* "a", "b", ...: names without quotes or escapes */
            q += 12;
            while (*q == '"') {
                const char *e = strchr(q + 1, '"');
                if (!e) break;
                names_add(rd->class_names, q + 1, (size_t)(e - q - 1));
                q = e + 1;
                while (*q == ',' || *q == ' ') q++;
            }
        }
    } else if (parse_row(line, &row)) {
        results_add(rd->r, &row);
    } else {
        rd->damaged++;
    }
}

static int cmp_row_index(const void *a, const void *b)
{
    const result_row *x = a, *y = b;
    return x->index != y->index ? (x->index > y->index) - (x->index < y->index)
                                : (x->seq > y->seq) - (x->seq < y->seq);
}

/* Rows of one image written twice (two runs on one file before it was
   locked, or a shard given twice to --merge) count once; returns how many
   were dropped, keeping the first. Leaves the rows in index order. */
static int results_dedupe(results *r)
{
    if (r->n > 1) qsort(r->rows, (size_t)r->n, sizeof *r->rows, cmp_row_index);
    int k = 0;
    for (int i = 0; i < r->n; i++)
        if (k && r->rows[k - 1].index == r->rows[i].index) row_free(&r->rows[i]);
        else r->rows[k++] = r->rows[i];
    int dropped = r->n - k;
    r->n = k;
    return dropped;
}

static void warn_damage(const char *path, int damaged, const char *then)
{
    if (damaged)
        fprintf(stderr, "dc: warning: '%s': %d line(s) are neither results nor a header (damaged): ignored%s\n",
                path, damaged, then);
}

/* --merge: a file read whole, no lock (it may be another run's, growing) */
static int read_results(const char *path, results *r, int *n_classes, name_list *class_names)
{
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    reader rd = {path, r, *n_classes, 0, 0, class_names, "", ""};
    int before = r->n;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break; /* a last line still being written */
        line[--len] = 0;
        if (len) read_line(&rd, line, (size_t)len);
    }
    free(line);
    fclose(f);
    warn_damage(path, rd.damaged, "");
    *n_classes = rd.n_classes;
    return r->n - before;
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
    long top1 = 0, top5 = 0, evals = 0, undecided = 0;
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
        undecided += row->undecided;
    }
    double mpc = 0;
    int present = 0;
    for (int c = 0; c < n_classes; c++)
        if (per[c]) mpc += (double)hit[c] / per[c], present++;
    mpc = present ? mpc / present : 0;
    printf("images: %d\ntop-1: %.4f\ntop-5: %.4f\nmean per-class accuracy: %.4f\n"
           "evaluations per image: %.1f\nseconds per image: %.3f\n",
           r->n, (double)top1 / r->n, (double)top5 / r->n, mpc, (double)evals / r->n, secs / r->n);
    if (undecided) printf("undecided (the budget ran out): %ld images\n", undecided);
    if (n_classes <= 20) {
        printf("confusion matrix (rows: true class, columns: predicted):\n");
        for (int a = 0; a < n_classes; a++) {
            printf("  %-14.14s", a < names->n ? names->names[a] : "?");
            for (int b = 0; b < n_classes; b++) printf(" %5ld", conf[(size_t)a * n_classes + b]);
            printf("\n");
        }
    } else { /* too many classes for a matrix in text: the pairs most often confused */
        long shown = 0, last = LONG_MAX;
        int lp = -1;
        for (int k = 0; k < 10; k++) { /* the next largest count after (last, lp), in row-major order among ties */
            long bv = 0;
            int bp = -1;
            for (int p = 0; p < n_classes * n_classes; p++) {
                long v = conf[p];
                if (p / n_classes == p % n_classes || !v || v > last || (v == last && p <= lp)) continue;
                if (v > bv) bv = v, bp = p;
            }
            if (bp < 0) break;
            if (!shown++) printf("most confused (true -> predicted: images):\n");
            int a = bp / n_classes, b = bp % n_classes;
            printf("  %s -> %s: %ld\n", a < names->n ? names->names[a] : "?", b < names->n ? names->names[b] : "?", bv);
            last = bv, lp = bp;
        }
    }
    if (plot) { /* plot_confusion says why when it cannot write */
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
        printf(", \"undecided\": %ld", undecided);
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
        if (!read_results(argv[i], &r, &n_classes, &names)) die("eval --merge: nothing read from '%s'", argv[i]);
    /* shards are disjoint; a repeated index (a shard given twice) counts once */
    int dup = results_dedupe(&r);
    if (dup) fprintf(stderr, "dc: warning: eval --merge: %d row(s) repeat an image of another row: each image counts once\n", dup);
    report(&r, n_classes, &names, json, fit, plot);
    results_free(&r);
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

/* ---- the run ----
   dc eval and dc calibrate are one run over a data set, with its durable
   results, resumption and MPI ranks. Any rank evaluates images
   (eval_compute); rank 0 alone holds the results file and takes every
   finished row (eval_accept), its own and the other ranks', in the order
   they finish. A run_kind says what tells the two commands apart. */

typedef struct eval_state eval_state;
typedef struct {
    const char *name;      /* the command, in messages */
    const char *help;
    const char *results;   /* the default --results file */
    int labelled;          /* eval: labels, accuracy; calibrate: none, the leading class stands in */
    /* after the options: usage checks, defaults and the data set, before
       any file is opened or made */
    void (*prepare)(eval_state *s);
    /* rank 0, at the end: what the run measured, on stdout */
    void (*report)(const eval_state *s);
} run_kind;

/* the options beyond the common ones */
typedef struct {
    name_list data;           /* the arguments: DATASET [LABELS], or IMAGES... */
    const char *subset, *plot;
    const char *calibration;  /* eval --calibrate FILE, calibrate -o FILE: rows carry their timestep sums */
    long limit;               /* -1: no limit */
    int shard_i, shard_n, merge, fit;
} run_opts;

struct eval_state {
    const run_kind *kind;
    common_opts co;
    run_opts ro;
    char default_model[4096];
    dataset d;
    dc_model *m;
    dc_ctx *c;
    par_workers pw;      /* the images run at once, each with its context */
    dc_classes *cl;
    int n_classes;
    unsigned char *rgb;  /* IDX: one image as RGB per worker */
    int rank, ranks;
    int *per_rank;       /* images each rank evaluated in this run */
    /* rank 0 */
    const char *results_path;
    dlog log;
    int log_open;
    results mine;        /* this selection's rows: the file's, then this run's */
    int file_rows;       /* images the results file holds */
    int *selection, n_selection; /* the images asked for, in order */
    int *todo, n_todo;   /* those not yet in the results file */
    int count, correct, rc;
    double t0, last;
};

static void write_failed(eval_state *s, const char *why)
{
    die_code(1, "eval: %s\n"
             "dc: '%s' holds the results of %d images, each row whole; the images being evaluated are not among them.\n"
             "dc: make room (or repair the file system) and rerun the same command: it resumes from those results.",
             why, s->results_path, s->file_rows);
}

static char *eval_compute(void *user, int worker, int i)
{
    eval_state *s = user;
    dc_result r;
    dc_error err;
    dc_status st;
    dc_ctx *c = s->pw.ctx[worker];
    if (s->d.pixels) { /* grey IDX pixels -> RGB */
        const unsigned char *g = s->d.pixels + (size_t)i * s->d.w * s->d.h;
        unsigned char *rgb = s->rgb + (size_t)worker * s->d.w * s->d.h * 3;
        for (int p = 0; p < s->d.w * s->d.h; p++) rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = g[p];
        st = dc_classify_rgb(c, s->cl, rgb, s->d.w, s->d.h, &s->co.o, &r, &err);
    } else {
        st = dc_classify_image(c, s->cl, s->d.files.names[i], &s->co.o, &r, &err);
    }
    if (st != DC_OK) {
        char *why = malloc(strlen(err.msg) + 2);
        if (!why) die("%s", "eval: out of memory");
        why[0] = '!';
        strcpy(why + 1, err.msg);
        return why;
    }
    result_row row;
    memset(&row, 0, sizeof row);
    row.index = i, row.label = s->d.labels[i], row.k = r.n_classes < TOPK ? r.n_classes : TOPK;
    row.evals = r.n_evals, row.seconds = r.seconds, row.n_err = r.n_classes, row.undecided = r.undecided;
    row.err = malloc(sizeof(float) * (size_t)r.n_classes);
    if (!row.err) die("%s", "eval: out of memory");
    for (int q = 0; q < row.k; q++) row.top[q] = r.ranking[q];
    for (int q = 0; q < r.n_classes; q++) row.err[q] = (float)r.mean_error[q];
    if (s->ro.calibration) { /* labelled: against the true class; else the leading one, among the finalists */
        row.has_cal = 1;
        row.n_cal = s->kind->labelled ? calib_sums(&r, row.label, 0, &row.cal) : calib_sums(&r, r.ranking[0], 1, &row.cal);
    }
    dc_result_free(&r);
    char *line = format_row(&row);
    row_free(&row);
    return line;
}

static void eval_accept(void *user, int image, int rank, const char *line)
{
    eval_state *s = user;
    char msg[8192];
    if (line[0] == '!') {
        fprintf(stderr, "dc: image %d: %s\n", image, line + 1);
        s->rc = 1;
        return;
    }
    result_row row;
    if (!parse_row(line, &row) || row.index != image)
        die_code(1, "eval: rank %d sent a damaged result for image %d: '%.200s'", rank, image, line);
    size_t n = strlen(line);
    char *text = malloc(n + 1);
    if (!text) die("%s", "eval: out of memory");
    memcpy(text, line, n);
    text[n] = '\n';
    int ok = dlog_append(&s->log, text, n + 1, msg, sizeof msg);
    free(text);
    if (!ok) write_failed(s, msg);
    s->file_rows++;
    results_add(&s->mine, &row);
    s->count++;
    s->correct += row.top[0] == row.label;
    if (rank >= 0 && rank < s->ranks) s->per_rank[rank]++;
    double now = wall();
    if (!s->co.quiet && (now - s->last > (isatty(2) ? 0.5 : 10) || s->count == s->n_todo)) {
        double rate = (now - s->t0) / s->count;
        char top1[32] = "";
        if (s->kind->labelled) snprintf(top1, sizeof top1, ", top-1 %.3f", (double)s->correct / s->count);
        fprintf(stderr, "%s%s: %d/%d images%s, %.2f s/image, ETA %.0f s%s", isatty(2) ? "\r" : "", s->kind->name,
                s->count, s->n_todo, top1, rate, rate * (s->n_todo - s->count), isatty(2) ? " " : "\n");
        s->last = now;
    }
}

/* rank 0, often: rows reach the disk on time even while an image runs long */
static void eval_tick(void *user)
{
    eval_state *s = user;
    char msg[8192];
    if (s->log_open && !dlog_tick(&s->log, msg, sizeof msg)) write_failed(s, msg);
}

/* dc_classify_opts.progress: after each denoiser batch, rank 0 answers the
   ranks waiting for work and syncs the results when due */
static void eval_progress(void *user, long done, long total)
{
    (void)done, (void)total, (void)user;
    par_serve(); /* and eval_tick */
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    return !strcmp(a, b);
}

static void write_header(eval_state *s, const char *dataset, int n_classes, const char *compute)
{
    char *text = NULL, msg[8192];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) die("%s", "eval: out of memory");
    fprintf(f, "{\"dc_eval\": 1, \"model\": ");
    json_string(f, s->co.model);
    fprintf(f, ", \"dataset\": ");
    json_string(f, dataset);
    fprintf(f, ", \"compute\": \"%s\"", compute);
    fprintf(f, ", \"stop\": \"%s\", \"n_classes\": %d, \"classes\": [", stop_name(s->co.o.stop), n_classes);
    for (int i = 0; i < n_classes; i++) {
        fprintf(f, "%s", i ? ", " : "");
        json_string(f, dc_classes_name(s->cl, i));
    }
    fprintf(f, "]}\n");
    if (fclose(f) != 0 || !text) die("%s", "eval: out of memory");
    if (!dlog_append(&s->log, text, len, msg, sizeof msg)) write_failed(s, msg);
    free(text);
}

/* Which images, in order: --subset (each index once), then --shard, then
   --limit. Returns the count; *out is malloc'd. */
static int select_images(const char *subset, int n_data, int shard_i, int shard_n, long limit, int **out)
{
    int n = n_data, *idx = NULL;
    if (subset) {
        idx = read_subset(subset, &n);
        char *in = calloc((size_t)n_data + 1, 1);
        if (!in) die("%s", "eval: out of memory");
        int k = 0, twice = 0;
        for (int i = 0; i < n; i++) {
            if (idx[i] < 0 || idx[i] >= n_data) die("eval: --subset: an index is outside the data set (%s)", subset);
            if (in[idx[i]]) twice++;
            else in[idx[i]] = 1, idx[k++] = idx[i];
        }
        free(in);
        if (twice) fprintf(stderr, "dc: warning: --subset '%s' lists %d index(es) more than once: each counts once\n",
                           subset, twice);
        n = k;
    } else {
        idx = malloc(sizeof(int) * (size_t)(n_data ? n_data : 1));
        for (int i = 0; idx && i < n_data; i++) idx[i] = i;
    }
    if (!idx) die("%s", "eval: out of memory");
    int k = 0;
    for (int i = shard_i; i < n; i += shard_n) idx[k++] = idx[i];
    n = k;
    if (limit >= 0 && limit < n) n = (int)limit;
    *out = idx;
    return n;
}

static int *sort_key; /* qsort has no user pointer: the selection position of each image */
static int cmp_selection(const void *a, const void *b)
{
    int x = sort_key[((const result_row *)a)->index], y = sort_key[((const result_row *)b)->index];
    return (x > y) - (x < y);
}

/* ---- the two kinds of run ---- */

static int needs_labels(const char *opt)
{
    return !strcmp(opt, "--merge") || !strcmp(opt, "--fit-temperature") || !strcmp(opt, "--calibrate") ||
           !strcmp(opt, "--plot");
}

/* Reads argv into s->co and s->ro; 0 when it printed --help instead. */
static int parse_run_options(eval_state *s, int argc, char **argv)
{
    const run_kind *kind = s->kind;
    run_opts *ro = &s->ro;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(kind->help, stdout);
            return 0;
        } else if (!kind->labelled && (!strcmp(a, "-o") || !strcmp(a, "--output")) && i + 1 < argc) {
            ro->calibration = argv[++i];
        } else if (!kind->labelled && needs_labels(a)) die("calibrate: %s needs labels (dc eval)", a);
        else if (!strcmp(a, "--merge")) ro->merge = 1;
        else if (!strcmp(a, "--fit-temperature")) ro->fit = 1;
        else if (parse_common_option(&i, argc, argv, &s->co)) continue;
        else if (!strcmp(a, "--subset") && i + 1 < argc) ro->subset = argv[++i];
        else if (!strcmp(a, "--limit") && i + 1 < argc) ro->limit = parse_long(a, argv[++i], 0, 1L << 30);
        else if (!strcmp(a, "--results") && i + 1 < argc) s->results_path = argv[++i];
        else if (!strcmp(a, "--calibrate") && i + 1 < argc) ro->calibration = argv[++i];
        else if (!strcmp(a, "--plot") && i + 1 < argc) ro->plot = argv[++i];
        else if (!strcmp(a, "--shard") && i + 1 < argc) {
            const char *v = argv[++i];
            if (sscanf(v, "%d/%d", &ro->shard_i, &ro->shard_n) != 2 || ro->shard_n < 1 || ro->shard_i < 0 ||
                ro->shard_i >= ro->shard_n)
                die("eval: --shard '%s': I/N with 0 <= I < N", v);
        } else if (a[0] == '-' && a[1]) {
            die_code(2, "%s: unknown or incomplete option '%s' (see dc %s --help)", kind->name, a, kind->name);
        } else {
            names_add(&ro->data, a, strlen(a));
        }
    }
    return 1;
}

/* dc eval: a folder of class folders, which name the classes unless the
   options do, or an IDX image file and its label file. */
static void prepare_eval(eval_state *s)
{
    const name_list *args = &s->ro.data;
    if (args->n < 1 || args->n > 2) die("%s", "eval: usage: dc eval [-m MODEL] DATASET [LABELS] [OPTIONS]");
    struct stat sb;
    int is_folder = stat(args->names[0], &sb) == 0 && S_ISDIR(sb.st_mode);
    if (is_folder && args->n != 1) die("%s", "eval: a folder data set takes no label file");
    if (!is_folder && args->n != 2) die("%s", "eval: an IDX image file needs its IDX label file after it");
    if (!is_folder) {
        load_idx(&s->d, args->names[0], args->names[1]);
        return;
    }
    const name_list *found = &s->d.folder_classes;
    name_list *classes = &s->co.classes;
    load_folder(&s->d, args->names[0]);
    if (!classes->n)
        for (int i = 0; i < found->n; i++) names_add(classes, found->names[i], strlen(found->names[i]));
    else if (classes->n != found->n)
        die("%s", "eval: the class list and the data set's class folders differ in number");
}

/* dc calibrate: where to, its images, and by default every class scored
   at one shared grid of 50 timesteps. */
static void prepare_calibrate(eval_state *s)
{
    common_opts *co = &s->co;
    if (!s->ro.calibration) die("%s", "calibrate: where to? -o FILE (usage: dc calibrate [-m MODEL] IMAGES... -o FILE)");
    if (!s->ro.data.n) die("%s", "calibrate: no images (usage: dc calibrate [-m MODEL] IMAGES... -o FILE)");
    if (!co->schedule_set) {
        co->o.n_stages = 1, co->o.samples[0] = 50, co->o.keep[0] = 1;
        co->schedule_set = 1;
    }
    load_unlabelled(&s->d, &s->ro.data);
}

static void report_eval(const eval_state *s)
{
    name_list names = {0};
    for (int i = 0; i < s->n_classes; i++) names_add(&names, dc_classes_name(s->cl, i), strlen(dc_classes_name(s->cl, i)));
    report(&s->mine, s->n_classes, &names, s->co.json, s->ro.fit, s->ro.plot);
    names_free(&names);
}

/* dc calibrate's summary: images, their cost, and how the leading classes
   spread over the classes (a calibration from images the model puts all in
   one class measures little). */
static void report_calibrate(const eval_state *s)
{
    const results *r = &s->mine;
    double evals = 0;
    int most = 0, classes = 0, *count = calloc((size_t)s->n_classes, sizeof(int));
    if (!count) die("%s", "calibrate: out of memory");
    for (int i = 0; i < r->n; i++) {
        evals += r->rows[i].evals;
        int c = r->rows[i].top[0];
        if (c < 0 || c >= s->n_classes) continue;
        classes += !count[c]++;
        most = count[c] > most ? count[c] : most;
    }
    free(count);
    if (s->co.json) {
        printf("{\"n\": %d, \"evals_per_image\": %.1f, \"leading_classes\": %d, \"largest_share\": %.4f, "
               "\"calibration\": ", r->n, evals / r->n, classes, (double)most / r->n);
        json_string(stdout, s->ro.calibration);
        printf("}\n");
    } else {
        printf("images: %d\nevaluations per image: %.1f\nleading classes: %d distinct, the most common leads %.1f%% "
               "of the images\ncalibration: %s\n", r->n, evals / r->n, classes, 100.0 * most / r->n,
               s->ro.calibration);
    }
}

static const run_kind eval_kind = {"eval", eval_help, "eval-results.jsonl", 1, prepare_eval, report_eval};
static const run_kind calibrate_kind = {"calibrate", calibrate_help, "calibrate-results.jsonl", 0, prepare_calibrate,
                                        report_calibrate};

/* ---- the run's steps ---- */

/* Rank 0, before the slow model load, so that a second run on the same
   results is refused at once: the output paths, then the results file
   opened (locked) and read into rd. */
static void open_results(eval_state *s, reader *rd)
{
    const char *cal = s->ro.calibration;
    char msg[8192];
    if (cal && !check_output_path(cal, msg, sizeof msg)) die_code(2, "eval --calibrate: %s", msg);
    if (cal && same_file(cal, s->results_path)) die_code(2, "eval: --calibrate and --results name one file, '%s'", cal);
    if (!dlog_open(&s->log, s->results_path, read_line, rd, msg, sizeof msg))
        die_code(s->log.holder ? 1 : 2, "eval: %s", msg);
    s->log_open = 1;
    warn_damage(s->results_path, rd->damaged, "; their images are evaluated again");
    int dup = results_dedupe(rd->r);
    if (dup)
        fprintf(stderr, "dc: warning: '%s': %d row(s) repeat an image of an earlier row (two runs wrote it?): "
                "each image counts once\n", s->results_path, dup);
    s->file_rows = rd->r->n;
}

static void check_labels(const dataset *d, int n_classes)
{
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] >= n_classes) {
            char msg[64];
            snprintf(msg, sizeof msg, "%d", d->labels[i]);
            die("eval: label %s is past the end of the class list", msg);
        }
}

/* Every rank: the model, its context and classes, and the stopping rule. */
static void open_model(eval_state *s)
{
    common_opts *co = &s->co;
    if (!open_classifier(co->model, &co->classes, co->tmpl, &s->m, &s->c, &s->cl)) driver_exit(1); /* it said why */
    s->n_classes = dc_classes_count(s->cl);
    /* a calibration compares classes at shared timesteps: the staged
       schedule gives them, the default rule (t-tests) does not */
    if (s->ro.calibration && co->o.stop == DC_STOP_AUTO) co->o.stop = DC_STOP_ADAPTIVE;
    co->o.stop = choose_default_stop(co, s->m, s->n_classes, 1);
    check_labels(&s->d, s->n_classes);
}

/* Rank 0: the selection, the file's rows of it (into s->mine: they count
   in the report), and the images still to evaluate (s->todo). */
static void plan_work(eval_state *s, reader *rd)
{
    const dataset *d = &s->d;
    const results *done = rd->r;
    if (rd->headers && rd->n_classes != s->n_classes)
        die("eval: '%s' was made with a different class list", s->results_path);
    if (rd->stop[0] && strcmp(rd->stop, stop_name(s->co.o.stop)))
        die_code(2, "eval: '%s' holds results of --stop %s, this run uses --stop %s (give that option, "
                 "or another --results file)", s->results_path, rd->stop, stop_name(s->co.o.stop));
    const char *compute = dc_model_compute(s->m);
    if (rd->compute[0] && strcmp(rd->compute, compute))
        die_code(2, "eval: '%s' holds results of --compute %s, this run computes in %s (give that option, "
                 "or another --results file)", s->results_path, rd->compute, compute);
    s->n_selection = select_images(s->ro.subset, d->n, s->ro.shard_i, s->ro.shard_n, s->ro.limit, &s->selection);
    sort_key = malloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    s->todo = malloc(sizeof(int) * (size_t)(s->n_selection ? s->n_selection : 1));
    if (!sort_key || !s->todo) die("%s", "eval: out of memory");
    for (int i = 0; i < d->n; i++) sort_key[i] = -1;
    for (int j = 0; j < s->n_selection; j++) sort_key[s->selection[j]] = j;
    int missing_cal = 0;
    for (int i = 0; i < done->n; i++) {
        result_row *row = &done->rows[i];
        if (row->index < d->n && sort_key[row->index] >= 0) {
            missing_cal += !row->has_cal;
            results_add(&s->mine, row);
        } else {
            row_free(row);
        }
    }
    if (s->ro.calibration && missing_cal)
        die_code(2, "eval --calibrate: '%s' holds %d of these images without their timestep sums (evaluated "
                 "without --calibrate); give another --results file", s->results_path, missing_cal);
    char *have = calloc((size_t)d->n + 1, 1);
    if (!have) die("%s", "eval: out of memory");
    for (int i = 0; i < s->mine.n; i++) have[s->mine.rows[i].index] = 1;
    for (int j = 0; j < s->n_selection; j++)
        if (!have[s->selection[j]]) s->todo[s->n_todo++] = s->selection[j];
    free(have);
    if (!rd->headers && s->log.size == 0) write_header(s, s->ro.data.names[0], s->n_classes, compute);
    if (!s->co.quiet && s->mine.n)
        fprintf(stderr, "eval: resuming: %d of %d images already in %s\n", s->mine.n, s->n_selection,
                s->results_path);
}

/* Rank 0: the results file closed (synced), and the run's statistics. */
static void close_results(eval_state *s)
{
    char msg[8192];
    if (!s->co.quiet && isatty(2) && s->count) fprintf(stderr, "\n");
    if (!dlog_close(&s->log, msg, sizeof msg)) write_failed(s, msg);
    s->log_open = 0;
    if (s->co.quiet) return;
    fprintf(stderr, "%s: %d new result(s) in %s, which holds %d; disk syncs: %ld in %.3f s (writes %.3f s, run %.1f s)\n",
            s->kind->name, s->count, s->results_path, s->file_rows, s->log.syncs, s->log.sync_seconds,
            s->log.write_seconds, wall() - s->t0);
    if (s->ranks > 1) {
        fprintf(stderr, "eval: images per rank:");
        for (int r = 0; r < s->ranks; r++) fprintf(stderr, " %d", s->per_rank[r]);
        fprintf(stderr, "\n");
    }
}

/* Rank 0: the calibration from the selection's timestep sums, added in the
   selection's order, so that the same images give the same file however
   they ran. */
static void write_calibration(eval_state *s)
{
    char msg[8192];
    calibration cb;
    if (!calibration_init(&cb)) die("%s", "eval: out of memory");
    for (int i = 0; i < s->mine.n; i++) calibration_add(&cb, s->mine.rows[i].cal, s->mine.rows[i].n_cal);
    if (!s->mine.n) die("%s", "eval --calibrate: no image was evaluated");
    if (!calibration_write(&cb, s->ro.calibration, s->co.model, s->mine.n, !s->kind->labelled, msg, sizeof msg))
        die_code(1, "eval --calibrate: %s\ndc: the results in '%s' are whole (%d images with their timestep "
                 "sums): rerun the same command to write the calibration from them", msg, s->results_path,
                 s->file_rows);
    calibration_free(&cb);
}

static void eval_state_free(eval_state *s)
{
    results_free(&s->mine);
    free(sort_key);
    sort_key = NULL;
    free(s->todo);
    free(s->selection);
    free(s->rgb);
    free(s->per_rank);
    free(s->d.pixels);
    free(s->d.labels);
    names_free(&s->d.files);
    names_free(&s->d.folder_classes);
    names_free(&s->ro.data);
    names_free(&s->co.classes);
    dc_calibration_free(&s->co.cal);
    par_workers_close(&s->pw); /* the other workers' contexts; the first is s->c */
    dc_classes_free(s->cl);
    dc_ctx_free(s->c);
    dc_model_free(s->m);
}

/* dc eval or dc calibrate: the options and the data set; on rank 0 the
   results file, opened before the model loads; the model; on rank 0 what is
   left to do; the images over the ranks; on rank 0 the results closed, the
   calibration written and the report. */
static int run(int argc, char **argv, const run_kind *kind)
{
    eval_state s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    common_opts_init(&s.co);
    s.ro.limit = -1, s.ro.shard_n = 1;
    s.results_path = kind->results;
    if (!parse_run_options(&s, argc, argv)) return 0;
    if (s.ro.merge) {
        if (!s.ro.data.n) die("%s", "eval --merge: which result files?");
        int rc = cmd_merge(s.ro.data.n, s.ro.data.names, s.co.json, s.ro.fit, s.ro.plot);
        eval_state_free(&s);
        return rc;
    }
    common_opts_finish(&s.co, s.default_model, sizeof s.default_model);
    kind->prepare(&s);
    s.ranks = par_start(&argc, &argv, &s.rank);
    s.per_rank = calloc((size_t)s.ranks, sizeof(int));
    if (!s.per_rank) die("%s", "eval: out of memory");

    results done = {0};
    reader rd = {s.results_path, &done, 0, 0, 0, NULL, "", ""};
    if (s.rank == 0) open_results(&s, &rd);
    open_model(&s);
    if (s.rank == 0) plan_work(&s, &rd);
    free(done.rows); /* plan_work took or freed each row */
    /* the images run at once on this rank, each worker with its context and RGB buffer */
    par_workers_open(&s.pw, s.m, s.c, s.rank == 0 ? s.n_todo : 1);
    s.rgb = s.d.pixels ? malloc((size_t)s.d.w * s.d.h * 3 * s.pw.n) : NULL;
    if (s.d.pixels && !s.rgb) die("%s", "eval: out of memory");

    s.t0 = wall();
    s.co.o.progress = eval_progress, s.co.o.progress_user = &s;
    par_work work = {eval_compute, eval_accept, eval_tick, &s};
    par_run(s.todo, s.n_todo, &work, &s.pw);

    if (s.rank == 0) {
        close_results(&s);
        if (s.mine.n > 1) qsort(s.mine.rows, (size_t)s.mine.n, sizeof *s.mine.rows, cmp_selection);
        if (s.ro.calibration) write_calibration(&s);
        if (s.mine.n) kind->report(&s);
    }
    int rc = s.rc;
    eval_state_free(&s);
    par_stop();
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    return run(argc, argv, &eval_kind);
}

int cmd_calibrate(int argc, char **argv)
{
    return run(argc, argv, &calibrate_kind);
}
