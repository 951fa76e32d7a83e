/* nn/image.c - image files to the float tensors the VAE encodes.

   Decoding is stb_image (PNG, JPEG, BMP, GIF, PNM, TGA; grey, alpha and
   16-bit images become 8-bit RGB). Resizing reproduces Pillow's
   Image.resize exactly (same filters, same fixed-point arithmetic, same
   pass order, 8-bit rounding between passes), because the reference
   pipelines resize with Pillow: torchvision's Resize + CenterCrop for
   Stable Diffusion, ADM's center_crop_arr for DiT. A classifier that sees
   slightly different pixels sees a slightly different latent. */
#define _POSIX_C_SOURCE 200809L /* fileno */
#include "nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "stb_impl.h" /* stb_image, static in this file */

/* ---- guards for stb_image 2.27 (Debian's) ----
   Fuzzing (fuzz/, docs/robustness.md) found inputs on which that version
   reads out of bounds or from uninitialised memory: JPEG Huffman tables
   with more than 256 codes, JPEG scans using a table the file never
   defined, 16-bit PNM (a heap over-read even on valid files) and PNM
   header numbers that overflow; it also allocates whatever a PNG chunk's
   length claims. Such files are refused here, before stb
   sees them; everything else goes to stb unchanged. (nn/stb_impl.h also
   gives stb zeroed memory, so a table the checks below miss is all zeros,
   not heap garbage.) */

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }

/* Most JPEGs have 1 to 20 DHT markers; beyond this many the check below
   would cost too much (each candidate may walk 64 kB), so the file is
   refused instead. */
#define JPEG_MAX_DHT_MARKERS 1024

/* stb sums a DHT table's 16 code-length counts without checking that the
   sum is at most 256, then writes that many entries into 257-entry arrays.
   Where stb parses a DHT depends on how far its Huffman decoder reads into
   each scan, which a walk over the markers cannot know (fuzzing finds
   files where such a walk and stb disagree). But stb only ever parses a DHT right after the bytes FF C4,
   so every FF C4 in the file is read here exactly as stb reads a DHT
   segment, bytes past the end reading as 0 as they do in stb. Entropy-coded
   data never holds FF C4, so a valid file is refused only if some other
   payload (an EXIF blob, say) holds FF C4 followed by an impossible table. */
static const char *jpeg_dht_refusal(const unsigned char *d, size_t n)
{
    size_t markers = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        if (d[i] != 0xFF || d[i + 1] != 0xC4) continue;
        if (++markers > JPEG_MAX_DHT_MARKERS) return "a JPEG with more than 1024 Huffman table markers";
        size_t p = i + 2;
#define STB_GET8() (p < n ? d[p++] : (p++, 0u))
        long left = (long)(STB_GET8() << 8);
        left |= (long)STB_GET8();
        left -= 2;
        while (left > 0 && p < n) { /* past the end every count reads 0 */
            unsigned q = STB_GET8();
            if (q >> 4 > 1 || (q & 15) > 3) break; /* stb stops: bad DHT header */
            long codes = 0;
            for (int k = 0; k < 16; k++) codes += (long)STB_GET8();
            if (codes > 256) return "a JPEG Huffman table with more than 256 codes";
            p += (size_t)codes;
            left -= 17 + codes;
        }
#undef STB_GET8
    }
    return NULL;
}

/* A marker walk as decoders do it: segments by their lengths, entropy-coded
   data skipped to the next real marker. It refuses scans that use a Huffman
   table no earlier DHT defined, and truncated tables. */
static const char *jpeg_refusal(const unsigned char *d, size_t n)
{
    /* stb takes any run of 0xFF fill bytes before the start marker */
    size_t p = 0;
    while (p + 1 < n && d[p] == 0xFF && d[p + 1] == 0xFF) p++;
    if (p + 1 >= n || d[p] != 0xFF || d[p + 1] != 0xD8) return NULL;
    int defined[2][4] = {{0}};
    p += 2;
    while (p + 1 < n) {
        if (d[p] != 0xFF) { /* not at a marker: resynchronise on the next one, as decoders do */
            p++;
            continue;
        }
        unsigned m = d[p + 1];
        if (m == 0xFF) { /* fill byte */
            p++;
            continue;
        }
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
            p += 2;
            continue;
        }
        if (m == 0xD9) return NULL;
        if (p + 4 > n) return NULL;
        size_t len = be16(d + p + 2), end = p + 2 + len;
        if (len < 2) return "a JPEG segment with a length under 2";
        if (m == 0xC4) { /* DHT: tables of (class, id), counts, symbols */
            if (end > n) return "a truncated JPEG Huffman table";
            for (size_t q = p + 4; q < end;) {
                if (q + 17 > end) return "a truncated JPEG Huffman table";
                int tc = d[q] >> 4, th = d[q] & 15;
                if (tc > 1 || th > 3) return "a JPEG Huffman table with a bad class or id";
                size_t codes = 0;
                for (int i = 1; i <= 16; i++) codes += d[q + i];
                q += 17 + codes;
                if (q > end) return "a truncated JPEG Huffman table";
                defined[tc][th] = 1;
            }
        } else if (m == 0xDA) { /* SOS: every table the scan uses must exist */
            if (end > n || p + 5 > n) return "a truncated JPEG scan header";
            size_t ns = d[p + 4];
            if (p + 5 + 2 * ns + 2 > end) return "a truncated JPEG scan header";
            int ss = d[p + 5 + 2 * ns], se = d[p + 6 + 2 * ns];
            for (size_t i = 0; i < ns; i++) {
                int t = d[p + 6 + 2 * i], td = t >> 4, ta = t & 15;
                if (td > 3 || ta > 3 || (ss == 0 && !defined[0][td]) || (se > 0 && !defined[1][ta]))
                    return "a JPEG scan that uses a Huffman table the file does not define";
            }
            /* skip the entropy-coded data up to the next marker. As in stb's
               bit reader, a run of FF bytes is one FF: FF..FF 00 is a stuffed
               data byte and FF..FF D0-D7 a restart, both inside the data. */
            for (p = end; p + 1 < n; p++) {
                if (d[p] != 0xFF) continue;
                size_t q = p + 1;
                while (q < n && d[q] == 0xFF) q++;
                if (q < n && d[q] != 0 && !(d[q] >= 0xD0 && d[q] <= 0xD7)) {
                    p = q - 1; /* at the FF right before the marker */
                    break;
                }
                p = q;
            }
            continue;
        }
        p = end;
    }
    return NULL;
}

static const char *pnm_refusal(const unsigned char *d, size_t n)
{
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return NULL;
    int field = 0;
    for (size_t p = 2; p < n && field < 3;) {
        if (d[p] == '#') { /* a comment, to the end of the line */
            while (p < n && d[p] != '\n' && d[p] != '\r') p++;
            continue;
        }
        if (d[p] < '0' || d[p] > '9') {
            p++;
            continue;
        }
        size_t start = p;
        long v = 0;
        while (p < n && d[p] >= '0' && d[p] <= '9') {
            if (p - start < 9) v = v * 10 + (d[p] - '0');
            p++;
        }
        if (p - start > 9) return "a PNM header number with more than 9 digits";
        if (++field == 3 && v > 255) return "a 16-bit PNM (dc reads 8-bit PNM only)";
    }
    return NULL;
}

/* stb grows its buffer for the compressed data to the length an IDAT
   chunk claims before it reads the chunk, so a few bytes claiming a 2 GB
   chunk make it allocate 2 GB (fuzzing found it). Each chunk up to IEND
   must fit in the file; a file that does not is corrupt or truncated, and
   stb would fail on it after the allocation anyway. */
static const char *png_refusal(const unsigned char *d, size_t n)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
    if (n < 8 || memcmp(d, sig, 8) != 0) return NULL;
    for (size_t p = 8; p + 8 <= n;) {
        size_t len = (size_t)be16(d + p) << 16 | be16(d + p + 2);
        if (len > n - p - 8 || n - p - 8 - len < 4) /* data, then a 4-byte CRC */
            return "a PNG chunk longer than the rest of the file (truncated or corrupt)";
        if (memcmp(d + p + 4, "IEND", 4) == 0) break;
        p += 12 + len;
    }
    return NULL;
}

const char *dc__image_refusal(const unsigned char *d, size_t n)
{
    /* stb takes a file as JPEG only if it starts with FF */
    const char *why = n >= 2 && d[0] == 0xFF ? jpeg_dht_refusal(d, n) : NULL;
    if (!why) why = jpeg_refusal(d, n);
    if (!why) why = png_refusal(d, n);
    return why ? why : pnm_refusal(d, n);
}

dc_status dc__image_load(dc__image *img, const char *path, dc_error *err)
{
    memset(img, 0, sizeof *img);
    /* the whole file once: checked, then decoded from memory */
    FILE *f = fopen(path, "rb");
    if (!f) return dc__fail(err, DC_ERR_IO, "%s: cannot open", path);
    struct stat sb; /* a folder opens as a file on some systems and "reads" as huge or empty */
    if (fstat(fileno(f), &sb) == 0 && !S_ISREG(sb.st_mode)) {
        fclose(f);
        return dc__fail(err, DC_ERR_IO, "%s: %s, not an image file", path,
                        S_ISDIR(sb.st_mode) ? "is a directory" : "not a regular file");
    }
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size < 0 || size > DC_IMAGE_MAX_FILE) {
        fclose(f);
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: %s (dc reads image files up to %d MB)", path,
                        size < 0 ? "cannot tell its size" : "too large", DC_IMAGE_MAX_FILE >> 20);
    }
    unsigned char *data = malloc((size_t)size + 1);
    if (!data || fseek(f, 0, SEEK_SET) != 0 || fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        fclose(f);
        return dc__fail(err, data ? DC_ERR_IO : DC_ERR_NOMEM, "%s: cannot read", path);
    }
    fclose(f);
    const char *why = dc__image_refusal(data, (size_t)size);
    if (why) {
        free(data);
        return dc__fail(err, DC_ERR_FORMAT, "%s: refused: %s (unsafe for the image decoder)", path, why);
    }
    int w, h, comp;
    /* read the header first, so a huge declared size is refused before any allocation */
    if (!stbi_info_from_memory(data, (int)size, &w, &h, &comp)) {
        free(data);
        return dc__fail(err, DC_ERR_FORMAT, "%s: not an image dc can read (%s; PNG, JPEG, BMP, GIF, "
                        "PNM and TGA are supported)", path, stbi_failure_reason());
    }
    if (w < 1 || h < 1 || w > DC_IMAGE_MAX_SIDE || h > DC_IMAGE_MAX_SIDE ||
        (int64_t)w * h > DC_IMAGE_MAX_PIXELS) {
        free(data);
        return dc__fail(err, DC_ERR_UNSUPPORTED, "%s: %d x %d pixels is over dc's limit (%d per side, "
                        "%d megapixels)", path, w, h, DC_IMAGE_MAX_SIDE, DC_IMAGE_MAX_PIXELS / 1000000);
    }
    unsigned char *p = stbi_load_from_memory(data, (int)size, &w, &h, &comp, 3);
    free(data);
    if (!p) return dc__fail(err, DC_ERR_FORMAT, "%s: cannot decode: %s", path, stbi_failure_reason());
    img->w = w, img->h = h, img->rgb = p;
    return DC_OK;
}

/* ---- Pillow's resampling (Resample.c), reimplemented ---- */

#define PIL_PRECISION_BITS (32 - 8 - 2)

static double pil_bicubic(double x)
{
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

static double pil_box(double x)
{
    return x > -0.5 && x <= 0.5 ? 1.0 : 0.0;
}

/* Fixed-point weights for one axis: for output i, taps start at lo[i], count n[i]. */
typedef struct {
    int *lo, *n, taps;
    int32_t *k; /* [out, taps] */
} pil_axis;

static int pil_axis_make(pil_axis *ax, int in, int out, int box)
{
    double support = box ? 0.5 : 2.0, scale = (double)in / out, fs = scale > 1 ? scale : 1.0;
    double sup = support * fs, ss = 1.0 / fs;
    ax->taps = (int)ceil(sup) * 2 + 1;
    ax->lo = malloc(sizeof(int) * (size_t)out);
    ax->n = malloc(sizeof(int) * (size_t)out);
    ax->k = malloc(sizeof(int32_t) * (size_t)out * ax->taps);
    double *w = malloc(sizeof(double) * (size_t)ax->taps);
    if (!ax->lo || !ax->n || !ax->k || !w) {
        free(w);
        return 0;
    }
    for (int i = 0; i < out; i++) {
        double center = (i + 0.5) * scale, total = 0;
        int lo = (int)(center - sup + 0.5), hi = (int)(center + sup + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        for (int x = 0; x < n; x++) {
            double v = (x + lo - center + 0.5) * ss;
            w[x] = box ? pil_box(v) : pil_bicubic(v);
            total += w[x];
        }
        for (int x = 0; x < ax->taps; x++) {
            double k = x < n && total != 0 ? w[x] / total : 0;
            ax->k[(size_t)i * ax->taps + x] = (int32_t)(k * (1 << PIL_PRECISION_BITS) + (k < 0 ? -0.5 : 0.5));
        }
        ax->lo[i] = lo, ax->n[i] = n;
    }
    free(w);
    return 1;
}

static void pil_axis_free(pil_axis *ax)
{
    free(ax->lo), free(ax->n), free(ax->k);
}

static unsigned char clip8(int64_t v)
{
    v >>= PIL_PRECISION_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

dc_status dc__image_resize(dc__image *out, const dc__image *in, int w, int h, int box, dc_error *err)
{
    memset(out, 0, sizeof *out);
    if (w < 1 || h < 1 || w > DC_IMAGE_MAX_SIDE || h > DC_IMAGE_MAX_SIDE)
        return dc__fail(err, DC_ERR_INVALID, "resize to %d x %d is out of range", w, h);
    pil_axis ax = {0}, ay = {0};
    unsigned char *tmp = NULL, *dst = malloc((size_t)w * h * 3);
    int need_h = w != in->w, need_v = h != in->h;
    dc_status st = DC_OK;
    if (!dst || (need_h && !pil_axis_make(&ax, in->w, w, box)) ||
        (need_v && !pil_axis_make(&ay, in->h, h, box))) {
        st = dc__fail(err, DC_ERR_NOMEM, "out of memory resizing to %d x %d", w, h);
        goto done;
    }
    /* horizontal pass first (over the rows the vertical pass will read), as Pillow does */
    const unsigned char *src = in->rgb;
    int rows = in->h;
    if (need_h) {
        int y0 = 0, y1 = in->h;
        if (need_v) { /* only rows some output row touches */
            y0 = ay.lo[0];
            y1 = ay.lo[h - 1] + ay.n[h - 1];
            for (int i = 0; i < h; i++) {
                if (ay.lo[i] < y0) y0 = ay.lo[i];
                if (ay.lo[i] + ay.n[i] > y1) y1 = ay.lo[i] + ay.n[i];
            }
        }
        rows = y1 - y0;
        tmp = malloc((size_t)w * rows * 3);
        if (!tmp) {
            st = dc__fail(err, DC_ERR_NOMEM, "out of memory resizing");
            goto done;
        }
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < w; x++) {
                const int32_t *k = ax.k + (size_t)x * ax.taps;
                for (int c = 0; c < 3; c++) {
                    int64_t s = 1 << (PIL_PRECISION_BITS - 1);
                    for (int t = 0; t < ax.n[x]; t++)
                        s += (int64_t)src[((size_t)(y + y0) * in->w + ax.lo[x] + t) * 3 + c] * k[t];
                    tmp[((size_t)y * w + x) * 3 + c] = clip8(s);
                }
            }
        src = tmp;
        if (need_v) /* shift the vertical taps to the rows kept */
            for (int i = 0; i < h; i++) ay.lo[i] -= y0;
    }
    int sw = need_h ? w : in->w;
    if (need_v) {
        for (int y = 0; y < h; y++) {
            const int32_t *k = ay.k + (size_t)y * ay.taps;
            for (int x = 0; x < sw; x++)
                for (int c = 0; c < 3; c++) {
                    int64_t s = 1 << (PIL_PRECISION_BITS - 1);
                    for (int t = 0; t < ay.n[y]; t++)
                        s += (int64_t)src[((size_t)(ay.lo[y] + t) * sw + x) * 3 + c] * k[t];
                    dst[((size_t)y * w + x) * 3 + c] = clip8(s);
                }
        }
    } else {
        memcpy(dst, src, (size_t)w * h * 3);
    }
    (void)rows;
    out->w = w, out->h = h, out->rgb = dst, out->owned = 1;
    dst = NULL;
done:
    free(dst);
    free(tmp);
    if (need_h) pil_axis_free(&ax);
    if (need_v) pil_axis_free(&ay);
    return st;
}

void dc__image_free(dc__image *img)
{
    if (!img) return;
    if (img->owned == 1) free(img->rgb);
    else if (img->owned == 0) stbi_image_free(img->rgb);
    else return; /* borrowed */
    img->rgb = NULL;
}

/* Python's round(): half to even */
static int round_half_even(double v)
{
    double r = floor(v + 0.5);
    if (r - v == 0.5 && fmod(r, 2.0) != 0) r -= 1;
    return (int)r;
}

/* crop [x0, x0+size) x [y0, y0+size) to CHW floats in [-1, 1] */
static void crop_to_tensor(float *out, const dc__image *img, int x0, int y0, int size)
{
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++) {
                int sy = y + y0, sx = x + x0;
                /* torchvision pads with black if the crop leaves the image; here it cannot */
                float v = (sy >= 0 && sy < img->h && sx >= 0 && sx < img->w)
                              ? img->rgb[((size_t)sy * img->w + sx) * 3 + c] / 255.0f : 0.0f;
                out[((size_t)c * size + y) * size + x] = (v - 0.5f) / 0.5f;
            }
}

dc_status dc__preprocess_sd(float *out, const dc__image *img, int size, dc_error *err)
{
    /* torchvision Resize(size, BICUBIC): the short side becomes size, the
       long side int(size * long / short); then CenterCrop(size) with
       top = int(round((h - size) / 2)) */
    int w = img->w, h = img->h, nw, nh;
    if (w <= h) nw = size, nh = (int)((int64_t)size * h / w);
    else nh = size, nw = (int)((int64_t)size * w / h);
    dc__image r;
    dc_status st = dc__image_resize(&r, img, nw, nh, 0, err);
    if (st != DC_OK) return st;
    crop_to_tensor(out, &r, round_half_even((nw - size) / 2.0), round_half_even((nh - size) / 2.0), size);
    dc__image_free(&r);
    return DC_OK;
}

dc_status dc__preprocess_adm(float *out, const dc__image *img, int size, dc_error *err)
{
    /* ADM / DiT center_crop_arr: halve with BOX while the short side is at
       least twice the target, then BICUBIC so the short side is size
       (round(x * scale)), then crop at ((h - size) // 2, (w - size) // 2) */
    dc__image cur = *img, next;
    cur.owned = 2; /* borrowed: never freed here */
    dc_status st;
    while ((cur.w < cur.h ? cur.w : cur.h) >= 2 * size) {
        if ((st = dc__image_resize(&next, &cur, cur.w / 2, cur.h / 2, 1, err)) != DC_OK) goto fail;
        if (cur.owned == 1) dc__image_free(&cur);
        cur = next;
    }
    double scale = (double)size / (cur.w < cur.h ? cur.w : cur.h);
    if ((st = dc__image_resize(&next, &cur, round_half_even(cur.w * scale), round_half_even(cur.h * scale), 0,
                               err)) != DC_OK)
        goto fail;
    if (cur.owned == 1) dc__image_free(&cur);
    crop_to_tensor(out, &next, (next.w - size) / 2, (next.h - size) / 2, size);
    dc__image_free(&next);
    return DC_OK;
fail:
    if (cur.owned == 1) dc__image_free(&cur);
    return st;
}
