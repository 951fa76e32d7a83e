/* tools/driver/dc_match.c - `dc match`: image-text matching with the same
   machinery (Winoground-style). Each caption is a "class" with the
   template "{}"; every caption is scored on the same timesteps and noise,
   so their errors compare directly. With two images and two captions it
   reports Winoground's text, image and group scores. */
#define _POSIX_C_SOURCE 200809L
#include "dc.h"
#include "driver.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *match_help =
    "usage: dc match [-m MODEL] IMAGE \"caption\" \"caption\" ...\n"
    "       dc match [-m MODEL] --images I0 I1 --captions C0 C1\n"
    "\n"
    "Scores how well each caption explains the image: the mean error of the\n"
    "noise prediction under the caption, lower is better, all captions on\n"
    "the same timesteps and noise. With --images/--captions (caption k belongs\n"
    "to image k) it prints Winoground's scores: text (each image prefers its\n"
    "caption), image (each caption prefers its image) and group (both).\n"
    "\n"
    "  --samples N    timesteps per caption (default 50)\n"
    "  --seed N, --loss l2|l1|huber, --trials N, --size PX, --batch N\n"
    "  --json         one JSON object\n"
    "  --quiet        no progress\n";

int cmd_match(int argc, char **argv)
{
    common_opts co;
    common_opts_init(&co);
    name_list images = {0}, captions = {0}, pos = {0};
    int mode = 0; /* 0 positional, 1 --images, 2 --captions */
    int samples = 50;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(match_help, stdout);
            return 0;
        } else if (!strcmp(a, "--images")) mode = 1;
        else if (!strcmp(a, "--captions")) mode = 2;
        else if (!strcmp(a, "--samples") && i + 1 < argc) samples = (int)parse_long(a, argv[++i], 1, 1000);
        else if (parse_common_option(&i, argc, argv, &co)) continue;
        else if (a[0] == '-' && a[1]) die("match: unknown option '%s' (see dc match --help)", a);
        else names_add(mode == 1 ? &images : mode == 2 ? &captions : &pos, a, strlen(a));
    }
    if (pos.n) { /* IMAGE caption caption ... */
        if (images.n || captions.n) die("%s", "match: give IMAGE CAPTION... or --images/--captions, not both");
        names_add(&images, pos.names[0], strlen(pos.names[0]));
        for (int i = 1; i < pos.n; i++) names_add(&captions, pos.names[i], strlen(pos.names[i]));
    }
    if (!images.n || captions.n < 2) die("%s", "match: need an image and at least two captions (dc match --help)");
    char default_model[4096];
    common_opts_finish(&co, default_model, sizeof default_model);
    /* one stage: every caption scored on every timestep, then the best kept */
    co.o.stop = DC_STOP_ADAPTIVE;
    co.o.n_stages = 1;
    co.o.samples[0] = samples;
    co.o.keep[0] = 1;

    dc_model *m = NULL;
    dc_ctx *c = NULL;
    dc_classes *cl = NULL;
    int rc = 1, ni = images.n, nc = captions.n;
    double *e = calloc((size_t)ni * nc, sizeof(double));
    if (!e) die("%s", "match: out of memory");
    if (!open_classifier(co.model, &captions, "{}", &m, &c, &cl)) goto done;
    progress_state prog = {!co.quiet, isatty(2), 0, 0, ""};
    co.o.progress = on_progress;
    co.o.progress_user = &prog;
    for (int i = 0; i < ni; i++) {
        dc_result r;
        if (classify_file(c, cl, images.names[i], &co.o, &prog, &r) != DC_OK) goto done;
        for (int k = 0; k < nc; k++) e[(size_t)i * nc + k] = r.mean_error[k];
        dc_result_free(&r);
    }
    if (co.json) printf("{\"errors\": [");
    for (int i = 0; i < ni; i++) {
        if (co.json) {
            printf("%s[", i ? ", " : "");
            for (int k = 0; k < nc; k++) printf("%s%.7g", k ? ", " : "", e[(size_t)i * nc + k]);
            printf("]");
        } else {
            printf("%s:\n", images.names[i]);
            for (int k = 0; k < nc; k++) printf("  %.6f  %s\n", e[(size_t)i * nc + k], captions.names[k]);
        }
    }
    if (co.json) printf("]");
    if (ni == 2 && nc == 2) { /* caption k belongs to image k */
        int text = e[0] < e[1] && e[3] < e[2];  /* each image prefers its own caption */
        int image = e[0] < e[2] && e[3] < e[1]; /* each caption prefers its own image */
        if (co.json) printf(", \"text\": %d, \"image\": %d, \"group\": %d", text, image, text && image);
        else printf("winoground: text %d, image %d, group %d\n", text, image, text && image);
    }
    if (co.json) printf("}\n");
    rc = 0;
done:
    free(e);
    names_free(&images);
    names_free(&captions);
    names_free(&pos);
    names_free(&co.classes);
    dc_classes_free(cl);
    dc_ctx_free(c);
    dc_model_free(m);
    return rc;
}
