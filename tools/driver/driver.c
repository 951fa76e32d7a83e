/* tools/driver/driver.c - helpers shared by the driver's commands (tools/driver/driver.h). */
#define _POSIX_C_SOURCE 200809L
#include "driver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* par.c sets this while the process is one rank of an MPI job, so that an
   error ends the whole job instead of leaving the other ranks waiting */
static void (*exit_hook)(int code);

void driver_exit_hook(void (*hook)(int code))
{
    exit_hook = hook;
}

/* The one exit() of dc: the library returns a status and never exits. */
void driver_exit(int code)
{
    if (exit_hook) exit_hook(code);
#ifdef _OPENMP
    /* From an image worker (a failed results write in eval's accept) the
       other workers are still inside the network: exit()'s teardown of the
       OpenMP and OpenBLAS runtimes would pull memory from under them
       (SIGSEGV instead of the message and status). What must survive is
       already on disk or in stdio's buffers: flush those and leave. */
    if (omp_in_parallel()) {
        fflush(NULL);
        _exit(code);
    }
#endif
    exit(code);
}

void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "dc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    driver_exit(2);
}

void die_code(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "dc: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    driver_exit(code);
}


void names_add(name_list *l, const char *s, size_t len)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->names = realloc(l->names, sizeof *l->names * (size_t)l->cap);
        if (!l->names) die("%s", "out of memory");
    }
    char *p = malloc(len + 1);
    if (!p) die("%s", "out of memory");
    memcpy(p, s, len);
    p[len] = 0;
    l->names[l->n++] = p;
}

void names_free(name_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* "50,500" -> counts; returns how many */
int parse_list(const char *opt, const char *s, int *out, int cap)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > 1000000) die("%s: expected a comma-separated list of positive counts", opt);
        if (n == cap) die("%s: too many stages (at most 8)", opt);
        out[n++] = (int)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) die("%s: expected a comma-separated list of positive counts", opt);
    }
    if (!n) die("%s: empty list", opt);
    return n;
}

long parse_long(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) die_code(2, "%s: '%s' is not a number in [%ld, %ld]", opt, s, lo, hi);
    return v;
}

/* The next line of f (what names the file in an error) without its
   newline or CR; -1 at the end of the file. A line longer than
   DRIVER_LINE_MAX bytes is an error. */
static long next_line(FILE *f, char line[DRIVER_LINE_MAX + 2], const char *what)
{
    if (!fgets(line, DRIVER_LINE_MAX + 2, f)) return -1;
    size_t len = strlen(line);
    if (len == DRIVER_LINE_MAX + 1 && line[len - 1] != '\n')
        die_code(2, "%s: a line is longer than %d bytes", what, DRIVER_LINE_MAX);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    return (long)len;
}

/* Reads class names, one per line (blank lines and # comments skipped), from f
   until EOF; trailing spaces and CR are trimmed. */
void read_names(FILE *f, name_list *l, const char *what)
{
    char line[DRIVER_LINE_MAX + 2];
    long got;
    while ((got = next_line(f, line, what)) >= 0) {
        size_t len = (size_t)got;
        while (len && (line[len - 1] == ' ' || line[len - 1] == '\r')) line[--len] = 0;
        if (!len || line[0] == '#') continue;
        names_add(l, line, len);
    }
}

/* Where the shipped data (models, presets) is, the first found of: $DC_DATA;
   DC_DATADIR, compiled into the installed driver by `make install`; data/
   beside the executable (the repository's ./dc); the repository's data/
   two levels up (build/<variant>/dc); ../share/dc beside the executable (an
   installed tree moved elsewhere); else data/ under the working directory. */
static int readable(char *buf, size_t cap, const char *dir, const char *sub, const char *rel)
{
    int len = snprintf(buf, cap, "%s/%s%s", dir, sub, rel);
    return len > 0 && (size_t)len < cap && access(buf, R_OK) == 0;
}

void data_path(char *buf, size_t cap, const char *rel)
{
    const char *env = getenv("DC_DATA");
    if (env) {
        snprintf(buf, cap, "%s/%s", env, rel);
        return;
    }
#ifdef DC_DATADIR
    if (readable(buf, cap, DC_DATADIR, "", rel)) return;
#endif
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        if (readable(buf, cap, exe, "data/", rel) || readable(buf, cap, exe, "../../data/", rel) ||
            readable(buf, cap, exe, "../share/dc/", rel))
            return;
    }
    snprintf(buf, cap, "data/%s", rel);
}

void load_preset(const char *name, dc_classify_opts *o, name_list *classes, char *tmpl, size_t tcap)
{
    char path[4096];
    if (strchr(name, '/') || strstr(name, ".txt")) snprintf(path, sizeof path, "%s", name);
    else {
        char rel[512];
        snprintf(rel, sizeof rel, "presets/%s.txt", name);
        data_path(path, sizeof path, rel);
    }
    FILE *f = fopen(path, "r");
    if (!f)
        die_code(2, "--preset %s: cannot open %s (presets: cifar10 stl10 pets fashion_mnist imagenet food flowers "
                 "aircraft objectnet)", name, path);
    char line[DRIVER_LINE_MAX + 2];
    int keep_n = -1;
    long len;
    while ((len = next_line(f, line, path)) >= 0) {
        if (!len || line[0] == '#') continue;
        if (!strncmp(line, "template ", 9)) {
            if ((size_t)snprintf(tmpl, tcap, "%s", line + 9) >= tcap) die("%s: template too long", path);
        } else if (!strncmp(line, "samples ", 8)) {
            o->n_stages = parse_list("preset samples", line + 8, o->samples, DC_MAX_STAGES);
        } else if (!strncmp(line, "keep ", 5)) {
            keep_n = parse_list("preset keep", line + 5, o->keep, DC_MAX_STAGES);
        } else if (!strncmp(line, "stop ", 5)) {
            if (!parse_stop(line + 5, &o->stop)) die("%s: stop must be auto, adaptive, sequential, calibrated or screened", path);
        } else if (!strncmp(line, "loss ", 5)) {
            const char *v = line + 5;
            if (!strcmp(v, "l2")) o->loss = DC_LOSS_L2;
            else if (!strcmp(v, "l1")) o->loss = DC_LOSS_L1;
            else if (!strcmp(v, "huber")) o->loss = DC_LOSS_HUBER;
            else die("%s: loss must be l2, l1 or huber", path);
        } else if (!strcmp(line, "classes")) {
            read_names(f, classes, path);
            break;
        } else {
            die_code(2, "%s: cannot read line '%s'", path, line);
        }
    }
    if (keep_n >= 0 && keep_n != o->n_stages) die("%s: 'keep' needs as many counts as 'samples'", path);
    fclose(f);
}


double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A bar with rate and ETA on a terminal; a plain line every 10 s otherwise. */
void on_progress(void *user, long done, long total)
{
    progress_state *p = user;
    if (!p->enabled) return;
    double t = wall(), el = t - p->start;
    if (!p->tty && t - p->last < 10 && done < total) return;
    if (p->tty && t - p->last < 0.2 && done < total) return;
    p->last = t;
    double rate = el > 0 ? done / el : 0, eta = rate > 0 ? (total - done) / rate : 0;
    if (p->tty) {
        int w = 30, fill = total > 0 ? (int)(w * (double)done / total) : 0;
        char bar[64];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        fprintf(stderr, "\r%s [%s] %ld/%ld evals, %.1f/s, ETA %.0fs ", p->label, bar, done, total, rate, eta);
    } else {
        fprintf(stderr, "%s: %ld/%ld evals, %.1f/s, ETA %.0fs\n", p->label, done, total, rate, eta);
    }
}

dc_status classify_file(dc_ctx *c, const dc_classes *cl, const char *path, const dc_classify_opts *o,
                        progress_state *prog, dc_result *r)
{
    dc_error err;
    prog->start = prog->last = wall();
    prog->label = path;
    dc_status st = dc_classify_image(c, cl, path, o, r, &err);
    if (prog->tty && prog->enabled) fprintf(stderr, "\n"); /* past the bar */
    if (st != DC_OK) fprintf(stderr, "dc: %s\n", err.msg);
    return st;
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void csv_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}


void common_opts_init(common_opts *co)
{
    memset(co, 0, sizeof *co);
    co->tmpl[0] = 0; /* empty: the model's own template (dc_classes_new) */
    dc_classify_opts_default(&co->o);
    co->top = 5;
}

int parse_common_option(int *i, int argc, char **argv, common_opts *co)
{
    const char *a = argv[*i];
    int has = *i + 1 < argc;
#define VALUE() (has ? argv[++*i] : (die("%s needs a value", a), ""))
    dc_classify_opts *o = &co->o;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) co->model = VALUE();
    else if (!strcmp(a, "--class")) {
        const char *v = VALUE();
        if (!v[strspn(v, " \t\r\n")]) die("--class '%s': a class needs a name", v);
        names_add(&co->classes, v, strlen(v));
    } else if (!strcmp(a, "--classes")) co->classes_file = VALUE();
    else if (!strcmp(a, "--preset")) {
        load_preset(VALUE(), o, &co->classes, co->tmpl, sizeof co->tmpl);
        co->schedule_set = 1;
    }
    else if (!strcmp(a, "--template")) co->tmpl_opt = VALUE();
    else if (!strcmp(a, "--samples")) {
        o->n_stages = parse_list("--samples", VALUE(), o->samples, DC_MAX_STAGES);
        co->schedule_set = 1;
    } else if (!strcmp(a, "--keep")) {
        co->schedule_set = co->keep_set = 1;
        int n = parse_list("--keep", VALUE(), o->keep, DC_MAX_STAGES);
        if (n != o->n_stages) die("%s", "--keep needs as many counts as --samples");
    } else if (!strcmp(a, "--stop")) {
        const char *v = VALUE();
        co->schedule_set = 1;
        if (!parse_stop(v, &o->stop)) die("--stop '%s': auto, adaptive, sequential, calibrated or screened", v);
    } else if (!strcmp(a, "--calibration")) {
        co->calibration = VALUE(); /* read by common_opts_finish; the rule is --stop's alone */
    } else if (!strcmp(a, "--max-evals")) o->max_evals = parse_long(a, VALUE(), 1, 1L << 40);
    else if (!strcmp(a, "--max-seconds")) {
        const char *v = VALUE();
        char *end;
        o->max_seconds = strtod(v, &end);
        if (*end || !(o->max_seconds > 0 && o->max_seconds < 1e9)) die("--max-seconds '%s': seconds, > 0", v);
    } else if (!strcmp(a, "--alpha")) {
        const char *v = VALUE();
        char *end;
        o->ttest_alpha = strtod(v, &end);
        if (*end || !(o->ttest_alpha > 0 && o->ttest_alpha < 1)) die("--alpha '%s': a level in (0, 1)", v);
    } else if (!strcmp(a, "--min-scores")) o->ttest_min_scores = (int)parse_long(a, VALUE(), 2, 100000);
    else if (!strcmp(a, "--loss")) {
        const char *v = VALUE();
        if (!strcmp(v, "l2")) o->loss = DC_LOSS_L2;
        else if (!strcmp(v, "l1")) o->loss = DC_LOSS_L1;
        else if (!strcmp(v, "huber")) o->loss = DC_LOSS_HUBER;
        else die("--loss '%s': l2, l1 or huber", v);
    } else if (!strcmp(a, "--trials")) o->trials = (int)parse_long(a, VALUE(), 1, 1000);
    else if (!strcmp(a, "--seed")) o->seed = (uint64_t)parse_long(a, VALUE(), 0, 0x7fffffffL);
    else if (!strcmp(a, "--size")) o->size = (int)parse_long(a, VALUE(), 8, 4096);
    else if (!strcmp(a, "--batch")) o->batch = (int)parse_long(a, VALUE(), 1, 4096);
    else if (!strcmp(a, "--top")) co->top = (int)parse_long(a, VALUE(), 1, 100000);
    else if (!strcmp(a, "--temperature")) {
        const char *v = VALUE();
        char *end;
        co->temperature = strtod(v, &end);
        if (*end || !(co->temperature > 0)) die("--temperature '%s': a positive number (dc eval --fit-temperature)", v);
    } else if (!strcmp(a, "--json")) co->json = 1;
    else if (!strcmp(a, "--csv")) co->csv = 1;
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) co->quiet = 1;
    else return 0;
#undef VALUE
    return 1;
}

/* A timestep calibration file (dc calibrate and dc eval --calibrate write
   them), read and checked by the library. */
static void read_calibration(common_opts *co)
{
    dc_error err;
    if (dc_calibration_load(&co->cal, co->calibration, &err) != DC_OK) die("--calibration: %s", err.msg);
    co->o.calib_t = co->cal.t, co->o.calib_spread = co->cal.spread, co->o.n_calib = co->cal.n;
}

void common_opts_finish(common_opts *co, char *model_buf, size_t cap)
{
    if (co->json && co->csv) die("%s", "--json or --csv, not both");
    if (co->classes_file) {
        FILE *f = fopen(co->classes_file, "r");
        if (!f) die("--classes: cannot open '%s'", co->classes_file);
        read_names(f, &co->classes, co->classes_file);
        fclose(f);
        if (!co->classes.n) die("--classes: '%s' lists no class", co->classes_file);
    }
    if (co->tmpl_opt && (size_t)snprintf(co->tmpl, sizeof co->tmpl, "%s", co->tmpl_opt) >= sizeof co->tmpl)
        die("%s", "--template is too long");
    if (co->calibration) read_calibration(co);
    if (!co->model) {
        data_path(model_buf, cap, "models/default.dcw");
        co->model = model_buf;
    }
}

int parse_stop(const char *name, dc_stop *stop)
{
    for (int k = DC_STOP_ADAPTIVE; k <= DC_STOP_AUTO; k++)
        if (!strcmp(name, dc_stop_name((dc_stop)k))) return *stop = (dc_stop)k, 1;
    return 0;
}

dc_stop choose_default_stop(common_opts *co, const dc_model *m, int n_classes, int say_note)
{
    const char *note;
    dc_stop rule = dc_classify_rule(m, &co->o, n_classes, &note);
    if (co->keep_set && rule != DC_STOP_ADAPTIVE)
        fprintf(stderr, "dc: warning: --keep: --stop %s does not keep by stages (--stop adaptive does)\n",
                dc_stop_name(rule));
    if (co->calibration && rule != DC_STOP_CALIBRATED && rule != DC_STOP_SCREENED)
        fprintf(stderr, "dc: warning: --calibration: --stop %s does not read a calibration\n", dc_stop_name(rule));
    if (say_note && *note && !co->quiet) fprintf(stderr, "dc: note: %s\n", note);
    return rule;
}

const char *stop_name(dc_stop stop)
{
    return dc_stop_name(stop);
}

int open_classifier(const char *model, const name_list *names, const char *tmpl, dc_model **m, dc_ctx **c,
                    dc_classes **cl)
{
    dc_error err;
    *m = NULL, *c = NULL, *cl = NULL;
    if (dc_model_load(m, model, driver_load_opts(), &err) != DC_OK || dc_ctx_new(c, *m, &err) != DC_OK ||
        dc_classes_new(cl, *c, names->n ? (const char *const *)names->names : NULL, names->n,
                       tmpl && *tmpl ? tmpl : NULL, &err) != DC_OK) {
        fprintf(stderr, "dc: %s\n", err.msg);
        return 0;
    }
    if (dc_classes_truncated(*cl))
        fprintf(stderr, "dc: warning: %d prompt(s) longer than the text encoder's 77 tokens were cut\n",
                dc_classes_truncated(*cl));
    return 1;
}

/* ---- --compute ---- */

static dc_load_opts load_opts; /* the driver's one setting for every model it loads */

void driver_set_compute(dc_compute c) { load_opts.compute = c; }

const dc_load_opts *driver_load_opts(void) { return &load_opts; }

