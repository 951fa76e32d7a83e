/* fuzz/fuzz_classlist.c - libFuzzer target: the driver's class lists and presets.

   `dc classify --classes FILE` and `--preset NAME|FILE` read user files
   with tools/driver/driver.c's read_names and load_preset (and the schedule lists
   inside a preset with parse_list). Those are driver code: on bad input
   they print a message and exit(2), which libFuzzer would count as a
   crash. So fuzz/Makefile.inc compiles tools/driver/driver.c for this target with
   exit() and fopen()/fclose() renamed to the hooks below: exit returns here
   by longjmp, and the hooks close a preset file left open by that jump, so
   the leak checker sees only real leaks. The driver's own source is not
   changed.

   Input: the first byte picks the function, the rest is the file / text:
     0  read_names on the bytes as a class-list file
     1  load_preset on the bytes as a preset file
     2  parse_list on the bytes as a "--samples" value
     3  parse_common_option over the bytes split at NULs as argv (inputs
        naming --preset or --classes are skipped: their value is a path)
   and each accepted result is checked: names non-empty, without line
   breaks, trailing blanks or a leading '#'; 1..8 positive stage counts; a
   terminated template.

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../tools/driver/driver.h"

#include <setjmp.h>

static jmp_buf fuzz_exit_jump;
static FILE *fuzz_open_file;
/* what the driver writes into, at file scope so it is defined after a longjmp */
static name_list fuzz_names;
static dc_classify_opts fuzz_opts;
static char fuzz_tmpl[1024];
static common_opts fuzz_co;

/* the hooks tools/driver/driver.c is compiled against (-Dexit=... -Dfopen=... -Dfclose=...) */
void dcfuzz_exit(int code)
{
    (void)code;
    longjmp(fuzz_exit_jump, 1);
}

FILE *dcfuzz_fopen(const char *path, const char *mode)
{
    return fuzz_open_file = fopen(path, mode);
}

int dcfuzz_fclose(FILE *f)
{
    if (f == fuzz_open_file) fuzz_open_file = NULL;
    return fclose(f);
}

static void fuzz_check_names(const name_list *l)
{
    for (int i = 0; i < l->n; i++) {
        const char *s = l->names[i];
        size_t len = strlen(s);
        if (!len || s[0] == '#' || strchr(s, '\n') || s[len - 1] == '\r' || s[len - 1] == ' ') {
            fprintf(stderr, "accepted a bad class name '%s'\n", s);
            abort();
        }
    }
}

static void fuzz_check_counts(const int *v, int n)
{
    if (n < 1 || n > DC_MAX_STAGES) abort();
    for (int i = 0; i < n; i++)
        if (v[i] < 1) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16)) return 0;
    int mode = data[0] % 4;
    dc_classify_opts_default(&fuzz_opts);
    snprintf(fuzz_tmpl, sizeof fuzz_tmpl, "a photo of a {}.");
    /* volatile: read after the longjmp */
    char *volatile text = NULL;
    FILE *volatile f = NULL;
    if (setjmp(fuzz_exit_jump) == 0) {
        if (mode == 0) {
            f = fopen(fuzz_file(data + 1, size - 1), "r");
            if (!f) abort();
            read_names(f, &fuzz_names, "fuzz");
            fuzz_check_names(&fuzz_names);
        } else if (mode == 1) {
            load_preset(fuzz_file(data + 1, size - 1), &fuzz_opts, &fuzz_names, fuzz_tmpl,
                        sizeof fuzz_tmpl);
            fuzz_check_names(&fuzz_names);
            fuzz_check_counts(fuzz_opts.samples, fuzz_opts.n_stages);
            if (!memchr(fuzz_tmpl, 0, sizeof fuzz_tmpl)) abort();
        } else if (mode == 2) {
            text = malloc(size);
            if (!text) abort();
            memcpy(text, data + 1, size - 1);
            text[size - 1] = 0;
            int v[DC_MAX_STAGES];
            fuzz_check_counts(v, parse_list("fuzz", text, v, DC_MAX_STAGES));
        } else {
            /* argv: the bytes split at NUL, at most 64 arguments */
            char *argv[65];
            int argc = 0, skip = 0;
            text = malloc(size);
            if (!text) abort();
            memcpy(text, data + 1, size - 1);
            text[size - 1] = 0;
            for (size_t i = 0; i < size - 1 && argc < 64; i += strlen(text + i) + 1) {
                argv[argc] = text + i;
                if (!strcmp(argv[argc], "--preset") || !strcmp(argv[argc], "--classes")) skip = 1;
                argc++;
            }
            argv[argc] = NULL;
            if (!skip) {
                common_opts_init(&fuzz_co);
                for (int i = 0; i < argc; i++) parse_common_option(&i, argc, argv, &fuzz_co);
                fuzz_check_counts(fuzz_co.o.samples, fuzz_co.o.n_stages);
            }
        }
    }
    /* normal return or exit(2) from the driver: clean up either way */
    if (f) fclose(f);
    if (fuzz_open_file) {
        fclose(fuzz_open_file);
        fuzz_open_file = NULL;
    }
    free(text);
    names_free(&fuzz_names);
    names_free(&fuzz_co.classes);
    return 0;
}
