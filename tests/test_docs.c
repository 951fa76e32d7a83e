/* tests/test_docs.c - the reading guide names only functions that exist:
   every `name()` in docs/reading-guide.md must be defined in one of the
   source files listed below, and each of those files must be there. */
#include "test.h"

#include <stdlib.h>

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p) p[fread(p, 1, (size_t)n, f)] = 0;
    fclose(f);
    return p;
}

static void reading_guide_should_name_only_functions_that_exist(void)
{
    static const char *sources[] = {"dc.c", "nn/model.c", "nn/stats.c", "nn/core.c", "nn/weights.c", "nn/cpu.c",
                                    "nn/image.c", "nn/dit.c", "nn/vae.c", "nn/clip.c", "nn/tokenizer.c",
                                    "nn/unet.c", "nn/conv.c", "nn/linear.c", "nn/norm.c", "nn/ops.c", "nn/attn.c",
                                    "nn/kernels.c", "tools/driver/dc_main.c", "tools/driver/driver.c",
                                    "tools/driver/dc_eval.c", "tools/driver/durable.c", "tools/driver/par.c",
                                    "tools/driver/calibrate.c"};
    char *guide = slurp(t_path(T.data, "../../docs/reading-guide.md"));
    if (!guide) {
        CHECK(0, "cannot read docs/reading-guide.md");
        return;
    }
    char *all = calloc(1, 1);
    size_t len = 0;
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        char *s = slurp(t_path(T.data, "../../%s", sources[i]));
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

void suite_docs(void)
{
    RUN(reading_guide_should_name_only_functions_that_exist);
}
