/* tools/driver/plot.c - `dc classify --plot OUT.png`: each class's error against
   the timestep, the picture the paper uses to show where classes separate.
   Drawn by hand into an RGB buffer, encoded by stb_image_write in memory
   and written whole (durable.h), every write checked; no font, so the
   colours are listed on stdout instead of in a legend. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO_UNUSED
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
#include "driver.h"
#include "durable.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PW 720
#define PH 420
#define MARGIN 40

static const unsigned char palette[10][3] = {{228, 26, 28}, {55, 126, 184}, {77, 175, 74}, {152, 78, 163},
                                             {255, 127, 0}, {166, 86, 40}, {247, 129, 191}, {153, 153, 153},
                                             {23, 190, 207}, {188, 189, 34}};

typedef struct {
    unsigned char *p;
    size_t n, cap;
    int failed;
} png_buf;

static void png_append(void *user, void *data, int size)
{
    png_buf *b = user;
    if (b->failed || size <= 0) return;
    if (b->n + (size_t)size > b->cap) {
        size_t cap = 2 * (b->n + (size_t)size);
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
    memcpy(b->p + b->n, data, (size_t)size);
    b->n += (size_t)size;
}

int write_png(const char *path, int w, int h, const unsigned char *rgb, char *msg, size_t cap)
{
    png_buf b = {NULL, 0, 0, 0};
    int ok = stbi_write_png_to_func(png_append, &b, w, h, 3, rgb, w * 3) && !b.failed;
    if (!ok) snprintf(msg, cap, "cannot encode '%s': out of memory", path);
    else ok = write_file_replace(path, b.p, b.n, msg, cap);
    free(b.p);
    return ok;
}

static void put(unsigned char *img, int x, int y, const unsigned char *c)
{
    if (x < 0 || y < 0 || x >= PW || y >= PH) return;
    memcpy(img + 3 * ((size_t)y * PW + x), c, 3);
}

static void line(unsigned char *img, int x0, int y0, int x1, int y1, const unsigned char *c)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) { /* Bresenham, two pixels thick */
        put(img, x0, y0, c);
        put(img, x0, y0 + 1, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

int plot_result(const char *path, const dc_result *r, const dc_classes *cl, int max_classes)
{
    unsigned char *img = malloc((size_t)PW * PH * 3);
    if (!img) return 0;
    memset(img, 255, (size_t)PW * PH * 3);
    int nshow = r->n_classes < max_classes ? r->n_classes : max_classes;
    if (nshow > 10) nshow = 10;
    double lo = INFINITY, hi = -INFINITY;
    int tmax = 1;
    for (int k = 0; k < r->n_timesteps; k++) tmax = r->timesteps[k] > tmax ? r->timesteps[k] : tmax;
    for (int j = 0; j < nshow; j++)
        for (int k = 0; k < r->n_timesteps; k++) {
            float e = r->errors[(size_t)r->ranking[j] * r->n_timesteps + k];
            if (e == e) lo = e < lo ? e : lo, hi = e > hi ? e : hi;
        }
    if (!(hi > lo)) hi = lo + 1;
    static const unsigned char axis[3] = {0, 0, 0}, grid[3] = {225, 225, 225};
    for (int g = 1; g < 10; g++) { /* timestep grid every 10% */
        int x = MARGIN + (PW - 2 * MARGIN) * g / 10;
        line(img, x, MARGIN, x, PH - MARGIN, grid);
    }
    line(img, MARGIN, PH - MARGIN, PW - MARGIN, PH - MARGIN, axis);
    line(img, MARGIN, MARGIN, MARGIN, PH - MARGIN, axis);
    int *order = malloc(sizeof(int) * (size_t)(r->n_timesteps ? r->n_timesteps : 1));
    for (int j = nshow - 1; j >= 0; j--) { /* best class drawn last, on top */
        int c = r->ranking[j], n = 0;
        for (int k = 0; k < r->n_timesteps; k++)
            if (r->errors[(size_t)c * r->n_timesteps + k] == r->errors[(size_t)c * r->n_timesteps + k]) order[n++] = k;
        for (int a = 1; a < n; a++) /* by timestep */
            for (int b = a; b > 0 && r->timesteps[order[b]] < r->timesteps[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1], order[b - 1] = t;
            }
        int px = -1, py = -1;
        for (int a = 0; a < n; a++) {
            int k = order[a];
            int x = MARGIN + (int)((double)(PW - 2 * MARGIN) * r->timesteps[k] / tmax);
            int y = PH - MARGIN - (int)((PH - 2 * MARGIN) * (r->errors[(size_t)c * r->n_timesteps + k] - lo) / (hi - lo));
            if (px >= 0) line(img, px, py, x, y, palette[j]);
            px = x, py = y;
        }
        for (int dy = 0; dy < 10; dy++) /* a colour key, best first, top right */
            for (int dx = 0; dx < 10; dx++) put(img, PW - MARGIN - 14 * (nshow - j) + dx, 10 + dy, palette[j]);
    }
    free(order);
    char msg[4400];
    int ok = write_png(path, PW, PH, img, msg, sizeof msg);
    free(img);
    if (!ok) fprintf(stderr, "dc: --plot: %s\n", msg);
    if (ok) {
        static const char *names[10] = {"red", "blue", "green", "purple", "orange", "brown", "pink", "grey", "cyan",
                                        "olive"};
        printf("  plot: %s (error against timestep 0..%d, error %.4f..%.4f):", path, tmax, lo, hi);
        for (int j = 0; j < nshow; j++) printf(" %s=%s", names[j], dc_classes_name(cl, r->ranking[j]));
        printf("\n");
    }
    return ok;
}
