/* tests/test_docs.c - what the documents say of the code holds: the
   reading guide names only functions that exist (every `name()` in
   docs/reading-guide.md is defined in one of the source files listed
   below, and each of those files is there), and the library never calls
   exit(), as dc.h says. */
#include "test.h"

#include <ctype.h>
#include <stdlib.h>

static void reading_guide_should_name_only_functions_that_exist(void)
{
    static const char *sources[] = {"dc.c", "nn/model.c", "nn/stats.c", "nn/core.c", "nn/weights.c", "nn/cpu.c",
                                    "nn/image.c", "nn/dit.c", "nn/vae.c", "nn/clip.c", "nn/tokenizer.c",
                                    "nn/unet.c", "nn/conv.c", "nn/linear.c", "nn/norm.c", "nn/ops.c", "nn/attn.c",
                                    "nn/kernels.c", "tools/driver/dc_main.c", "tools/driver/driver.c",
                                    "tools/driver/dc_eval.c", "tools/driver/durable.c", "tools/driver/par.c",
                                    "tools/driver/calibrate.c"};
    char *guide = t_read_file(t_path(T.data, "../../docs/reading-guide.md"), NULL);
    if (!guide) {
        CHECK(0, "cannot read docs/reading-guide.md");
        return;
    }
    char *all = calloc(1, 1);
    size_t len = 0;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char *s = t_read_file(t_path(T.data, "../../%s", sources[i]), NULL);
        if (!s) { /* a source moved or renamed: the list above must follow it */
            CHECK(0, "cannot read %s, a source the guide may name", sources[i]);
            continue;
        }
        size_t n = strlen(s);
        all = realloc(all, len + n + 1);
        memcpy(all + len, s, n + 1);
        len += n;
        free(s);
    }
    int named = 0, missing = 0;
    for (char *p = guide; (p = strchr(p, '`')); p++) {
        char *q = strchr(p + 1, '`');
        if (!q) break;
        if (q - p > 3 && q[-1] == ')' && q[-2] == '(' && q - p < 64) {
            char name[64], def[80];
            memcpy(name, p + 1, (size_t)(q - p - 3));
            name[q - p - 3] = 0;
            named++;
            /* a definition: the name followed by '(' at the start of a declarator line */
            snprintf(def, sizeof def, "%s(", name);
            int found = 0;
            for (char *d = all; !found && (d = strstr(d, def)); d++) {
                char *line = d;
                while (line > all && line[-1] != '\n') line--;
                char *eol = strchr(d, '\n');
                found = line[0] != ' ' && line[0] != '\t' && line[0] != '#' && line[0] != '/' && line[0] != '*' &&
                        (!eol || !memchr(d, ';', (size_t)(eol - d)) || memchr(d, '{', (size_t)(eol - d)));
            }
            if (!found) {
                printf("  not defined anywhere: %s()\n", name);
                missing++;
            }
        }
        p = q;
    }
    printf("  the guide names %d functions\n", named);
    CHECK(named >= 30, "only %d functions named: is the guide intact?", named);
    CHECK(missing == 0, "%d functions named in the guide do not exist", missing);
    free(all);
    free(guide);
}

/* The files of the library: the Makefile's NN_SRC and HEADERS lists
   (continued with backslashes), and dc.c. */
static int library_files(const char *makefile, char names[][64], int cap)
{
    int n = 0;
    if (cap > 0) snprintf(names[n++], 64, "dc.c");
    static const char *const lists[] = {"\nNN_SRC =", "\nHEADERS ="};
    for (int l = 0; l < 2; l++) {
        const char *p = strstr(makefile, lists[l]);
        if (!p) continue;
        for (p = strchr(p, '=') + 1; *p && *p != '\n';) {
            if (*p == ' ' || *p == '\t') {
                p++;
                continue;
            }
            if (*p == '\\' && p[1] == '\n') { /* the list goes on on the next line */
                p += 2;
                continue;
            }
            size_t len = strcspn(p, " \t\n\\");
            if (len && len < 64 && n < cap) memcpy(names[n], p, len), names[n++][len] = 0;
            p += len;
        }
    }
    return n;
}

/* dc.h says the library never calls exit(): no library file names exit,
   _Exit or quick_exit outside its comments (only the driver ends the
   process, tools/driver/driver.c's driver_exit). */
static void library_should_never_call_exit(void)
{
    char *makefile = t_read_file(t_path(T.data, "../../Makefile"), NULL), names[96][64];
    if (!makefile) {
        CHECK(0, "cannot read the Makefile");
        return;
    }
    int n = library_files(makefile, names, 96), calls = 0;
    free(makefile);
    CHECK(n > 20, "only %d library files found in the Makefile's NN_SRC and HEADERS", n);
    for (int i = 0; i < n; i++) {
        char *src = t_read_file(t_path(T.data, "../../%s", names[i]), NULL);
        if (!src) {
            CHECK(0, "cannot read %s, a library file the Makefile lists", names[i]);
            continue;
        }
        for (char *p = src; *p; p++) { /* blank out comments and string literals */
            char *end = NULL;
            if (p[0] == '/' && p[1] == '*') end = strstr(p + 2, "*/"), end = end ? end + 2 : p + strlen(p);
            else if (p[0] == '/' && p[1] == '/') end = p + strcspn(p, "\n");
            else if (*p == '"' || *p == '\'') {
                for (end = p + 1; *end && *end != *p; end++)
                    if (*end == '\\' && end[1]) end++;
                end += *end != 0;
            }
            if (end) memset(p, ' ', (size_t)(end - p)), p = end - 1;
        }
        static const char *const banned[] = {"exit", "_Exit", "quick_exit"};
        for (int b = 0; b < 3; b++)
            for (char *p = src; (p = strstr(p, banned[b])); p++) {
                char *q = p + strlen(banned[b]);
                while (*q == ' ' || *q == '\t' || *q == '\n') q++;
                int word = (p == src || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'));
                if (word && *q == '(') printf("  %s calls %s()\n", names[i], banned[b]), calls++;
            }
        free(src);
    }
    CHECK(calls == 0, "the library calls exit %d time(s)", calls);
}

void suite_docs(void)
{
    RUN(reading_guide_should_name_only_functions_that_exist);
    RUN(library_should_never_call_exit);
}
