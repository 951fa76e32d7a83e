/* tools/driver/driver.h - helpers shared by the dc driver's commands (the tools/ sources):
   option parsing, class lists and presets, progress, JSON strings. Only the
   driver uses them; the library never exits or prints. */
#ifndef DC_DRIVER_H
#define DC_DRIVER_H

#include <stdio.h>
#include "dc.h"

/* Prints "dc: " + the message (fmt with one %s) to stderr and exits 2
   (under MPI: ends the whole job, par.h). */
void die(const char *fmt, const char *arg);
/* The same with any printf arguments and exit code. */
void die_code(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* hook(code) runs instead of exit(code) in die and die_code (NULL: exit) */
void driver_exit_hook(void (*hook)(int code));

typedef struct {
    char **names;
    int n, cap;
} name_list;
void names_add(name_list *l, const char *s, size_t len);
void names_free(name_list *l);

/* "50,500" -> counts (exits on a malformed list); returns how many */
int parse_list(const char *opt, const char *s, int *out, int cap);
/* a whole decimal number in [lo, hi], or exit 2 naming the option */
long parse_long(const char *opt, const char *s, long lo, long hi);
/* class names, one per line; blank lines and # comments skipped */
void read_names(FILE *f, name_list *l, const char *what);
/* buf = <data>/<rel>: $DC_DATA, the installed share/dc, or the repository's data/ */
void data_path(char *buf, size_t cap, const char *rel);
/* a preset (data/presets/NAME.txt or a path): template, schedule, classes */
void load_preset(const char *name, dc_classify_opts *o, name_list *classes, char *tmpl, size_t tcap);

typedef struct {
    int enabled, tty;
    double start, last;
    const char *label;
} progress_state;
double wall(void);
/* dc_classify_opts.progress: a bar on a terminal, a line every 10 s otherwise */
void on_progress(void *user, long done, long total);
void json_string(FILE *f, const char *s);

/* The options classify and eval share: model, classes, schedule, output.
   parse_common_option consumes argv[*i] (and its value) if it is one of
   them and returns 1; 0 if it is not. */
typedef struct {
    const char *model, *classes_file, *tmpl_opt;
    char tmpl[1024];
    name_list classes;
    dc_classify_opts o;
    int schedule_set;    /* --samples, --keep, --stop, --calibration or --preset given */
    int top, json, csv, quiet;
    double temperature;  /* > 0: print probabilities softmax(-error / T) */
    const char *calibration; /* --calibration FILE, read into calib_* */
#define CALIBRATION_MAX 1024     /* timesteps a calibration file may list */
    int calib_t[CALIBRATION_MAX];
    float calib_spread[CALIBRATION_MAX];
} common_opts;
void common_opts_init(common_opts *co);
int parse_common_option(int *i, int argc, char **argv, common_opts *co);
/* After parsing: reads --classes, applies --template, picks the default
   model; exits on an unreadable class file. */
void common_opts_finish(common_opts *co, char *model_buf, size_t cap);

/* Loads the model, makes a context and encodes the classes (names, or all
   of a class-conditional model's when names is empty), warning about cut
   prompts; on failure prints the reason and returns 0 (outputs NULL or
   partly made: free them as usual). */
int open_classifier(const char *model, const name_list *names, const char *tmpl, dc_model **m, dc_ctx **c,
                    dc_classes **cl);

/* With no schedule option, a model that carries a timestep calibration
   classifies with --stop calibrated (about 10x fewer evaluations than the
   paper's schedule at the same accuracy, bench/README.md), or --stop
   screened above DC_SCREEN_ABOVE classes, where the t-test's minimum
   scores per class would dominate the cost; others with the paper's
   adaptive schedule. */
#define DC_SCREEN_ABOVE 20
void choose_default_stop(common_opts *co, const dc_model *m, int n_classes);
/* "adaptive", "sequential", "calibrated" or "screened" */
const char *stop_name(dc_stop stop);

/* ---- --compute: a global option, so every command that loads a network
   runs it the same way (the model-load options every command passes) ---- */
void driver_set_compute(dc_compute c);
const dc_load_opts *driver_load_opts(void);

int cmd_eval(int argc, char **argv);
int cmd_calibrate(int argc, char **argv);
int cmd_match(int argc, char **argv);
/* tools/driver/plot.c, PNG pictures; 1 on success, else 0 after printing why.
   plot_result: error against timestep for an image's top classes.
   plot_confusion: the confusion matrix conf [n, n] (rows true, columns
   predicted) with each class's accuracy, under a title line. */
int plot_result(const char *path, const char *image, const dc_result *r, const dc_classes *cl, int max_classes);
int plot_confusion(const char *path, const long *conf, int n, const name_list *names, const char *title);
/* an RGB image [h, w, 3] as a PNG file, replaced whole; 0 and why in msg on failure */
int write_png(const char *path, int w, int h, const unsigned char *rgb, char *msg, size_t cap);

#endif
