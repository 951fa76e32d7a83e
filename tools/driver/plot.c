/* tools/driver/plot.c - the driver's pictures, drawn by hand into an RGB
   buffer and encoded with stb_image_write in memory and written whole, every write checked
   (durable.h; no plotting library to depend on):
     `dc classify --plot OUT.png`: each top class's error against the
       timestep, the picture the paper uses to show where classes separate;
     `dc eval --plot OUT.png`: the confusion matrix, counts in the cells and
       each class's accuracy beside its row.
   Text uses a 5x9-pixel bitmap font drawn for dc (printable ASCII; any other
   byte shows as '?'). */
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

/* ---- canvas, lines, text ---- */

typedef struct {
    int w, h;
    unsigned char *px; /* [h, w, 3] */
} canvas;

typedef unsigned char rgb[3];
static const rgb black = {0, 0, 0}, dark = {60, 60, 60}, grey = {150, 150, 150}, light = {225, 225, 225},
                 white = {255, 255, 255};

static int canvas_new(canvas *cv, int w, int h)
{
    cv->w = w, cv->h = h;
    cv->px = malloc((size_t)w * h * 3);
    if (cv->px) memset(cv->px, 255, (size_t)w * h * 3);
    return cv->px != NULL;
}

static void put(canvas *cv, int x, int y, const unsigned char *c)
{
    if (x < 0 || y < 0 || x >= cv->w || y >= cv->h) return;
    memcpy(cv->px + 3 * ((size_t)y * cv->w + x), c, 3);
}

static void rect(canvas *cv, int x, int y, int w, int h, const unsigned char *c)
{
    for (int j = y; j < y + h; j++)
        for (int i = x; i < x + w; i++) put(cv, i, j, c);
}

static void line(canvas *cv, int x0, int y0, int x1, int y1, const unsigned char *c)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (;;) { /* Bresenham, two pixels thick */
        put(cv, x0, y0, c);
        put(cv, x0, y0 + 1, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

/* Printable ASCII from ' ', 9 rows of 5 pixels each, bit 4 the leftmost
   column; rows 7 and 8 hold descenders. */
#define GLYPH_W 5
#define GLYPH_H 9
#define ADVANCE 6 /* glyph and one column of space */
static const unsigned char font[95][GLYPH_H] = {
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* space */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ! */
    {0x0a, 0x0a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* " */
    {0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a, 0x00, 0x00}, /* # */
    {0x04, 0x0f, 0x14, 0x0e, 0x05, 0x1e, 0x04, 0x00, 0x00}, /* $ */
    {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00, 0x00}, /* % */
    {0x0c, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* & */
    {0x04, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ' */
    {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00, 0x00}, /* ( */
    {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00, 0x00}, /* ) */
    {0x00, 0x04, 0x15, 0x0e, 0x15, 0x04, 0x00, 0x00, 0x00}, /* * */
    {0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00, 0x00, 0x00}, /* + */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x04, 0x08, 0x00}, /* , */
    {0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00}, /* - */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c, 0x00, 0x00}, /* . */
    {0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00, 0x00}, /* / */
    {0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e, 0x00, 0x00}, /* 0 */
    {0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* 1 */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* 2 */
    {0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 3 */
    {0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02, 0x00, 0x00}, /* 4 */
    {0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e, 0x00, 0x00}, /* 5 */
    {0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 6 */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00, 0x00}, /* 7 */
    {0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* 8 */
    {0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c, 0x00, 0x00}, /* 9 */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00, 0x00, 0x00}, /* : */
    {0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x08, 0x00, 0x00}, /* ; */
    {0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00, 0x00}, /* < */
    {0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00}, /* = */
    {0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00, 0x00}, /* > */
    {0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00, 0x00}, /* ? */
    {0x0e, 0x11, 0x17, 0x15, 0x17, 0x10, 0x0f, 0x00, 0x00}, /* @ */
    {0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* A */
    {0x1e, 0x11, 0x11, 0x1e, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* B */
    {0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e, 0x00, 0x00}, /* C */
    {0x1c, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1c, 0x00, 0x00}, /* D */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* E */
    {0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* F */
    {0x0e, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* G */
    {0x11, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11, 0x00, 0x00}, /* H */
    {0x0e, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* I */
    {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c, 0x00, 0x00}, /* J */
    {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00, 0x00}, /* K */
    {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f, 0x00, 0x00}, /* L */
    {0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00, 0x00}, /* M */
    {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00, 0x00}, /* N */
    {0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* O */
    {0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10, 0x00, 0x00}, /* P */
    {0x0e, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0d, 0x00, 0x00}, /* Q */
    {0x1e, 0x11, 0x11, 0x1e, 0x14, 0x12, 0x11, 0x00, 0x00}, /* R */
    {0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e, 0x00, 0x00}, /* S */
    {0x1f, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* T */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* U */
    {0x11, 0x11, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* V */
    {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* W */
    {0x11, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x11, 0x00, 0x00}, /* X */
    {0x11, 0x11, 0x0a, 0x04, 0x04, 0x04, 0x04, 0x00, 0x00}, /* Y */
    {0x1f, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1f, 0x00, 0x00}, /* Z */
    {0x0e, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0e, 0x00, 0x00}, /* [ */
    {0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00, 0x00}, /* backslash */
    {0x0e, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0e, 0x00, 0x00}, /* ] */
    {0x04, 0x0a, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ^ */
    {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f, 0x00}, /* _ */
    {0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, /* ` */
    {0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f, 0x00, 0x00}, /* a */
    {0x10, 0x10, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x00, 0x00}, /* b */
    {0x00, 0x00, 0x0f, 0x10, 0x10, 0x10, 0x0f, 0x00, 0x00}, /* c */
    {0x01, 0x01, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x00, 0x00}, /* d */
    {0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e, 0x00, 0x00}, /* e */
    {0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08, 0x00, 0x00}, /* f */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* g */
    {0x10, 0x10, 0x1e, 0x11, 0x11, 0x11, 0x11, 0x00, 0x00}, /* h */
    {0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* i */
    {0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0c}, /* j */
    {0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00, 0x00}, /* k */
    {0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e, 0x00, 0x00}, /* l */
    {0x00, 0x00, 0x1a, 0x15, 0x15, 0x15, 0x11, 0x00, 0x00}, /* m */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x11, 0x00, 0x00}, /* n */
    {0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e, 0x00, 0x00}, /* o */
    {0x00, 0x00, 0x1e, 0x11, 0x11, 0x11, 0x1e, 0x10, 0x10}, /* p */
    {0x00, 0x00, 0x0f, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x01}, /* q */
    {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00, 0x00}, /* r */
    {0x00, 0x00, 0x0f, 0x10, 0x0e, 0x01, 0x1e, 0x00, 0x00}, /* s */
    {0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06, 0x00, 0x00}, /* t */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d, 0x00, 0x00}, /* u */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04, 0x00, 0x00}, /* v */
    {0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a, 0x00, 0x00}, /* w */
    {0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11, 0x00, 0x00}, /* x */
    {0x00, 0x00, 0x11, 0x11, 0x11, 0x11, 0x0f, 0x01, 0x0e}, /* y */
    {0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f, 0x00, 0x00}, /* z */
    {0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00, 0x00}, /* { */
    {0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00}, /* | */
    {0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00, 0x00}, /* } */
    {0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00, 0x00}, /* ~ */
};

/* Width in pixels of s at a scale (each font pixel a scale x scale square). */
static int text_width(const char *s, int scale)
{
    int n = (int)strlen(s);
    return n ? (n * ADVANCE - 1) * scale : 0;
}

/* Draws s with its top-left corner at (x, y); vertical: turned a quarter
   left, reading upwards from (x, y) as its bottom-left corner. */
static void text_at(canvas *cv, int x, int y, const char *s, int scale, const unsigned char *c, int vertical)
{
    for (int k = 0; s[k]; k++) {
        unsigned ch = (unsigned char)s[k];
        const unsigned char *g = font[(ch >= 32 && ch < 127 ? ch : '?') - 32];
        for (int r = 0; r < GLYPH_H; r++)
            for (int col = 0; col < GLYPH_W; col++) {
                if (!(g[r] >> (GLYPH_W - 1 - col) & 1)) continue;
                int u = (k * ADVANCE + col) * scale, v = r * scale; /* along the text, down from its top */
                for (int a = 0; a < scale; a++)
                    for (int b = 0; b < scale; b++) {
                        if (vertical) put(cv, x + v + b, y - u - a, c);
                        else put(cv, x + u + a, y + v + b, c);
                    }
            }
    }
}

static void text(canvas *cv, int x, int y, const char *s, int scale, const unsigned char *c)
{
    text_at(cv, x, y, s, scale, c, 0);
}

/* A name cut to at most max characters, with a trailing '.' when cut.
   The font is ASCII, so each other UTF-8 character shows as its code
   point (a Chinese class name reads "U+7684"). */
static void clip_name(char *buf, size_t cap, const char *s, int max)
{
    size_t n = 0;
    buf[0] = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 9 < cap;) {
        unsigned c = *p, len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        for (unsigned k = 1; k < len; k++)
            if ((p[k] & 0xc0) != 0x80) len = 0;
        if (len == 1) {
            buf[n++] = (char)c, p++;
        } else if (len) {
            unsigned cp = c & (0x7f >> len);
            for (unsigned k = 1; k < len; k++) cp = cp << 6 | (p[k] & 0x3f);
            n += (size_t)snprintf(buf + n, cap - n, "U+%04X", cp), p += len;
        } else {
            buf[n++] = '?', p++;
        }
        buf[n] = 0;
    }
    if ((int)strlen(buf) > max && max >= 2) buf[max - 1] = '.', buf[max] = 0;
}

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

/* Encodes the canvas in memory and replaces path whole (durable.h); says why on failure. */
static int canvas_write(canvas *cv, const char *path)
{
    char msg[4400];
    int ok = write_png(path, cv->w, cv->h, cv->px, msg, sizeof msg);
    if (!ok) fprintf(stderr, "dc: --plot: %s\n", msg);
    free(cv->px);
    cv->px = NULL;
    return ok;
}

/* ---- dc classify --plot: error against timestep ---- */

static const unsigned char palette[10][3] = {{228, 26, 28}, {55, 126, 184}, {77, 175, 74}, {152, 78, 163},
                                             {255, 127, 0}, {166, 86, 40}, {247, 129, 191}, {153, 153, 153},
                                             {23, 190, 207}, {188, 189, 34}};
static const char *palette_names[10] = {"red", "blue", "green", "purple", "orange", "brown", "pink", "grey",
                                        "cyan", "olive"};

/* Round steps for axis ticks: 1, 2 or 5 times a power of ten, about n ticks over span. */
static double tick_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

/* The value a panel draws for class c at timestep index k: the error
   (diff 0), or the error minus the best class's at the same timestep and
   noise (diff 1), which shows where the classes separate; NaN where
   either was not scored. */
static double panel_value(const dc_result *r, int c, int k, int diff)
{
    double e = r->errors[(size_t)c * r->n_timesteps + k];
    return diff ? e - r->errors[(size_t)r->ranking[0] * r->n_timesteps + k] : e;
}

/* One panel: axes with ticks, grid, and a line per shown class (best on top). */
static void panel(canvas *cv, const dc_result *r, int nshow, int diff, int X0, int X1, int Y0, int Y1,
                  double tspan, const char *ylabel, int *order)
{
    double lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < nshow; j++)
        for (int k = 0; k < r->n_timesteps; k++) {
            double v = panel_value(r, r->ranking[j], k, diff);
            if (v == v) lo = v < lo ? v : lo, hi = v > hi ? v : hi;
        }
    if (!(lo <= hi)) lo = 0, hi = 1;
    if (!(hi > lo)) hi = lo + (lo ? fabs(lo) : 1);
    char buf[64];
    double ts = tick_step(tspan, 10);
    for (double t = 0; t <= tspan + 1e-9; t += ts) {
        int x = X0 + (int)((X1 - X0) * t / tspan);
        if (t > 0) line(cv, x, Y0, x, Y1, light);
        snprintf(buf, sizeof buf, "%g", t);
        text(cv, x - text_width(buf, 1) / 2, Y1 + 8, buf, 1, dark);
    }
    double es = tick_step(hi - lo, 5);
    for (double e = ceil(lo / es) * es; e <= hi + 1e-12; e += es) {
        int y = Y1 - (int)((Y1 - Y0) * (e - lo) / (hi - lo));
        int zero = fabs(e) < es * 1e-6;
        line(cv, X0, y, X1, y, zero && diff ? grey : light);
        snprintf(buf, sizeof buf, "%.3g", zero ? 0 : e);
        text(cv, X0 - 6 - text_width(buf, 1), y - 4, buf, 1, dark);
    }
    line(cv, X0, Y1, X1, Y1, black);
    line(cv, X0, Y0, X0, Y1, black);
    text_at(cv, 12, (Y0 + Y1) / 2 + text_width(ylabel, 2) / 2, ylabel, 2, black, 1);
    for (int j = nshow - 1; j >= 0; j--) { /* best class drawn last, on top */
        int c = r->ranking[j], n = 0;
        for (int k = 0; k < r->n_timesteps; k++)
            if (panel_value(r, c, k, diff) == panel_value(r, c, k, diff)) order[n++] = k;
        for (int a = 1; a < n; a++) /* by timestep */
            for (int b = a; b > 0 && r->timesteps[order[b]] < r->timesteps[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1], order[b - 1] = t;
            }
        int px = -1, py = -1;
        for (int a = 0; a < n; a++) {
            int k = order[a];
            int x = X0 + (int)((X1 - X0) * r->timesteps[k] / tspan);
            int y = Y1 - (int)((Y1 - Y0) * (panel_value(r, c, k, diff) - lo) / (hi - lo));
            if (px >= 0) line(cv, px, py, x, y, palette[j]);
            rect(cv, x - 1, y - 1, 3, 3, palette[j]);
            px = x, py = y;
        }
    }
}

#define PW 900
#define PH 730
int plot_result(const char *path, const char *image, const dc_result *r, const dc_classes *cl, int max_classes)
{
    int nshow = r->n_classes < max_classes ? r->n_classes : max_classes;
    if (nshow > 10) nshow = 10;
    int tmax = 1;
    for (int k = 0; k < r->n_timesteps; k++) tmax = r->timesteps[k] > tmax ? r->timesteps[k] : tmax;
    double tspan = tmax <= 1000 ? 1000 : tmax; /* the usual 1000-step schedule as the axis */
    canvas cv;
    int *order = malloc(sizeof(int) * (size_t)(r->n_timesteps ? r->n_timesteps : 1));
    if (!order || !canvas_new(&cv, PW, PH)) {
        free(order);
        return 0;
    }
    /* two panels, the key of class names to their right */
    const int X0 = 90, X1 = PW - 230;
    char buf[256];
    snprintf(buf, sizeof buf, "%.60s: %s", image, dc_classes_name(cl, r->ranking[0]));
    text(&cv, X0, 14, buf, 2, black);
    snprintf(buf, sizeof buf, "best %d of %d classes; %ld evaluations, %d timesteps", nshow, r->n_classes,
             r->n_evals, r->n_timesteps);
    text(&cv, X0, 38, buf, 1, dark);
    panel(&cv, r, nshow, 0, X0, X1, 64, 364, tspan, "error", order);
    text(&cv, X0, 400, "the same, minus the best class's error at each timestep (above 0: worse)", 1, dark);
    panel(&cv, r, nshow, 1, X0, X1, 420, 680, tspan, "difference", order);
    text(&cv, (X0 + X1) / 2 - text_width("timestep", 2) / 2, 706, "timestep", 2, black);
    for (int j = 0; j < nshow; j++) { /* the key: colour, rank, name, mean error */
        int ky = 68 + 40 * j, c = r->ranking[j];
        char name[32];
        rect(&cv, X1 + 20, ky + 2, 16, 16, palette[j]);
        clip_name(name, sizeof name, dc_classes_name(cl, c), 14);
        snprintf(buf, sizeof buf, "%d %s", j + 1, name);
        text(&cv, X1 + 44, ky, buf, 2, black);
        snprintf(buf, sizeof buf, "mean %.5f, %d scores", r->mean_error[c], r->n_scored[c]);
        text(&cv, X1 + 44, ky + 22, buf, 1, dark);
    }
    free(order);
    int ok = canvas_write(&cv, path);
    if (ok) {
        printf("  plot: %s (error against timestep 0..%d):", path, tmax);
        for (int j = 0; j < nshow; j++) printf(" %s=%s", palette_names[j], dc_classes_name(cl, r->ranking[j]));
        printf("\n");
    }
    return ok;
}

/* ---- dc eval --plot: the confusion matrix ----
   Rows are true classes, columns predicted ones. A cell's shade follows
   its share of the row (of the true class's images): blue on the diagonal
   (right), red off it (wrong), so a good classifier is a dark blue diagonal
   on white. Off the diagonal the shade is that share times 2.5, so that a
   confusion of a quarter of a class is already dark red, not a faint pink
   beside the diagonal's near-full shares. Beside each row: the class's
   accuracy as a bar and a number. Beyond 60 classes (a 1,000-class matrix
   is a blank square at any size that fits a screen) it draws the rows and
   columns of the (at most) 40 classes most involved in confusions, with each row's
   share and accuracy still counted over all classes. */

static void shade(unsigned char *out, const unsigned char *full, double f)
{
    for (int i = 0; i < 3; i++) out[i] = (unsigned char)lrint(255 - (255 - full[i]) * (f < 0 ? 0 : f > 1 ? 1 : f));
}

/* draw_matrix: conf [n, n] with row_total[a] the true class's images in
   the whole matrix (more than its row here when classes were left out). */
static int draw_matrix(const char *path, const long *conf, const long *row_total, int n, const char *const *names,
                       const char *title, const char *key)
{
    static const rgb right = {8, 69, 148}, wrong = {200, 20, 30}, bar = {65, 140, 90};
    if (n < 1) return 0;
    long maxc = 1;
    int maxname = 1;
    for (int i = 0; i < n * n; i++) maxc = conf[i] > maxc ? conf[i] : maxc;
    char nm[32];
    for (int i = 0; i < n; i++) {
        clip_name(nm, sizeof nm, names[i], 24);
        int len = (int)strlen(nm);
        maxname = len > maxname ? len : maxname;
    }
    if (maxname > 24) maxname = 24;
    /* Cells fit their counts in 2x text up to 20 classes, 1x up to 60;
       beyond that the matrix is drawn as a heat map without text. */
    int scale = n <= 20 ? 2 : 1, digits = snprintf(NULL, 0, "%ld", maxc);
    int cell = n <= 60 ? digits * ADVANCE * scale + 8 * scale : 1200 / n;
    if (n <= 60 && cell < (GLYPH_H + 6) * scale + 8) cell = (GLYPH_H + 6) * scale + 8;
    if (cell < 2) cell = 2;
    int labels = n <= 60, lh = (GLYPH_H + 2) * scale;
    int name_w = labels ? maxname * ADVANCE * scale : 0;
    int acc_w = labels ? 60 * scale + 12 * ADVANCE * scale : 0;
    /* the title (2x) and a key line (1x) on top, then the axis names and the class names */
    int gx = 16 + lh + 8 + name_w + 8, gy = 52 + lh + 6 + name_w + 6;
    int W = gx + n * cell + 16 + acc_w + 16, H = gy + n * cell + 24;
    if (W < 480) W = 480;
    if (W < 32 + text_width(title, 2)) W = 32 + text_width(title, 2);
    if (W < 32 + text_width(key, 1)) W = 32 + text_width(key, 1);
    canvas cv;
    if (!canvas_new(&cv, W, H)) return 0;
    char buf[256];
    text(&cv, 16, 12, title, 2, black);
    text(&cv, 16, 36, key, 1, dark);
    text(&cv, gx + n * cell / 2 - text_width("predicted", scale) / 2, gy - name_w - 6 - lh, "predicted", scale,
         black);
    text_at(&cv, 16, gy + n * cell / 2 + text_width("true class", scale) / 2, "true class", scale, black, 1);
    for (int a = 0; a < n; a++) {
        long row = row_total[a];
        for (int b = 0; b < n; b++) {
            long v = conf[(size_t)a * n + b];
            rgb c;
            double f = row ? (double)v / row * (a == b ? 1 : 2.5) : 0;
            shade(c, a == b ? right : wrong, f);
            rect(&cv, gx + b * cell, gy + a * cell, cell, cell, c);
            if (labels && v) {
                snprintf(buf, sizeof buf, "%ld", v);
                text(&cv, gx + b * cell + (cell - text_width(buf, scale)) / 2,
                     gy + a * cell + (cell - GLYPH_H * scale) / 2 + scale, buf, scale, f > 0.45 ? white : black);
            }
        }
        if (!labels) continue;
        clip_name(nm, sizeof nm, names[a], maxname);
        text(&cv, gx - 8 - text_width(nm, scale), gy + a * cell + (cell - GLYPH_H * scale) / 2 + scale, nm, scale,
             black);
        text_at(&cv, gx + a * cell + (cell - GLYPH_H * scale) / 2 + scale, gy - 6, nm, scale, black, 1);
        /* the class's accuracy: a bar on a grey track, then the figure */
        int bx = gx + n * cell + 16, by = gy + a * cell + cell / 4, bw = 60 * scale, bh = cell / 2;
        double acc = row ? (double)conf[(size_t)a * n + a] / row : 0;
        rect(&cv, bx, by, bw, bh, light);
        rect(&cv, bx, by, (int)lrint(bw * acc), bh, bar);
        if (row) snprintf(buf, sizeof buf, "%.2f %ld/%ld", acc, conf[(size_t)a * n + a], row);
        else snprintf(buf, sizeof buf, "-");
        text(&cv, bx + bw + 6, gy + a * cell + (cell - GLYPH_H * scale) / 2 + scale, buf, scale, black);
    }
    if (labels) text(&cv, gx + n * cell + 16, gy - lh - 4, "accuracy", scale, black);
    for (int i = 0; i <= n; i++) { /* cell borders; only the frame around cells too small for text */
        if (!labels && i && i < n) continue;
        line(&cv, gx + i * cell, gy, gx + i * cell, gy + n * cell, i == 0 || i == n ? grey : light);
        line(&cv, gx, gy + i * cell, gx + n * cell, gy + i * cell, i == 0 || i == n ? grey : light);
    }
    return canvas_write(&cv, path);
}

#define MOST_CONFUSED 40

int plot_confusion(const char *path, const long *conf, int n, const name_list *names, const char *title)
{
    if (n < 1) return 0;
    int k = n > 60 ? MOST_CONFUSED : n, ok = 0;
    long *total = calloc((size_t)n, sizeof *total), *involved = calloc((size_t)n, sizeof *involved);
    long *sub = malloc(sizeof *sub * (size_t)k * (size_t)k), *sub_total = malloc(sizeof *sub_total * (size_t)k);
    int *pick = malloc(sizeof *pick * (size_t)n);
    const char **nm = malloc(sizeof *nm * (size_t)k);
    if (!total || !involved || !sub || !sub_total || !pick || !nm) {
        fprintf(stderr, "dc: plot: out of memory\n");
        goto done;
    }
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++) {
            long v = conf[(size_t)a * n + b];
            total[a] += v;
            if (a != b) involved[a] += v, involved[b] += v;
        }
    /* the classes drawn: all of them, or the k with the most confusions (ties: lower index) */
    for (int c = 0; c < n; c++) pick[c] = c;
    if (k < n) { /* only classes with a confusion, unless there is none */
        int m = 0;
        for (int c = 0; c < n; c++) m += involved[c] > 0;
        if (m && m < k) k = m;
    }
    if (k < n)
        for (int i = 0; i < k; i++) {
            int m = i;
            for (int j = i + 1; j < n; j++)
                if (involved[pick[j]] > involved[pick[m]]) m = j;
            int t = pick[i];
            pick[i] = pick[m], pick[m] = t;
        }
    for (int a = 0; a < k; a++) {
        sub_total[a] = total[pick[a]];
        nm[a] = pick[a] < names->n ? names->names[pick[a]] : "?";
        for (int b = 0; b < k; b++) sub[(size_t)a * k + b] = conf[(size_t)pick[a] * n + pick[b]];
    }
    char key[200];
    if (k < n)
        snprintf(key, sizeof key, "the %d of %d classes most involved in confusions; rows: true, columns: predicted; "
                 "shares and accuracy of all the row's images", k, n);
    else
        snprintf(key, sizeof key, "rows: true class, columns: predicted; blue: right, red: confused, darker: more of "
                 "the row");
    ok = draw_matrix(path, sub, sub_total, k, nm, title, key);
done:
    free(total), free(involved), free(sub), free(sub_total), free(pick), free(nm);
    return ok;
}
