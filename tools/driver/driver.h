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
/* Ends the process with code: runs the hook first (par.c's, under MPI,
   ends the whole job), then exit(code), the only call of exit() in dc. */
void driver_exit(int code);
/* hook(code) runs first in driver_exit (NULL: none) */
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
/* The longest line, in bytes before its newline, of the text files the
   driver reads (class lists, presets); a longer one is an error. */
#define DRIVER_LINE_MAX 4094
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
/* dc_classify_image on one file, its progress (o->progress_user = prog)
   labelled with the path; on failure prints the library's reason. */
dc_status classify_file(dc_ctx *c, const dc_classes *cl, const char *path, const dc_classify_opts *o,
                        progress_state *prog, dc_result *r);
void json_string(FILE *f, const char *s);
/* s as one CSV field (RFC 4180): always quoted, so that commas, quotes
   and line breaks in a path or class name stay inside it; a quote is
   written twice */
void csv_string(FILE *f, const char *s);

/* The options classify and eval share: model, classes, schedule, output.
   parse_common_option consumes argv[*i] (and its value) if it is one of
   them and returns 1; 0 if it is not. */
typedef struct {
    const char *model, *classes_file, *tmpl_opt;
    char tmpl[1024];
    name_list classes;
    dc_classify_opts o;
    int schedule_set;    /* --samples, --keep, --stop or --preset given */
    int keep_set;        /* --keep given (the adaptive schedule's) */
    int top, json, csv, quiet;
    double temperature;  /* > 0: print probabilities softmax(-error / T) */
    const char *calibration; /* --calibration FILE, read into cal (o.calib_* point there) */
    dc_calibration cal;
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

/* "auto", "adaptive", ... -> *stop (dc_stop_name's names); 0 for another name */
int parse_stop(const char *name, dc_stop *stop);
/* The rule co->o.stop names for this model and class count, DC_STOP_AUTO
   resolved by the library (dc_classify_rule); says on stderr when
   --calibration or --keep go unread, and with say_note the library's note
   when the default fell back to the t-test for lack of a calibration
   (unless --quiet; dc classify prints it per image instead). */
dc_stop choose_default_stop(common_opts *co, const dc_model *m, int n_classes, int say_note);
/* dc_stop_name */
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
