/* fuzz/fuzz_image.c - libFuzzer target: image files to model inputs.

   dc__image_load (stb_image behind a size check) decodes any PNG, JPEG,
   BMP, GIF, PNM or TGA; on success the image goes through both
   preprocessing paths (Stable Diffusion's resize + center crop and
   DiT/ADM's center_crop_arr, nn/image.c's reimplementation of Pillow's
   resampling) at small sizes, and every output value must lie in [-1, 1].

   The harness skips images over 1024 x 1024 (checked from the header with
   stbi_info_from_memory) only to keep each run fast: dc itself accepts up
   to DC_IMAGE_MAX_SIDE per side and DC_IMAGE_MAX_PIXELS in all, and that
   refusal is still exercised (a header may claim any size).

   Known bugs, worked around only while fuzzing (fuzz/crashes/image/ holds
   a reproducer of each; docs/robustness.md has the details). Debian's
   stb_image 2.27:
     - builds a JPEG Huffman table from 16 counts without checking that
       they sum to at most 256 (stbi__build_huffman writes h->size[] past
       its 257 entries);
     - loads a 16-bit PGM (maxval > 255) asked for 3 channels through the
       8-bit channel converter and then reads the result as 16-bit: a heap
       over-read of the whole image size, on valid files too;
     - reads PNM header numbers into an int without an overflow check.
   With DC_FUZZ_SKIP_KNOWN_STB=1 in the environment (fuzz/Makefile.inc sets
   it for the fuzzing runs, not for the reproducers) inputs that could reach
   them are skipped, so the fuzzer can look for other bugs. The two checks
   below sketch what nn/image.c could refuse before calling stb.

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../nn/nn.h"

#include <stb/stb_image.h>

#define FUZZ_IMAGE_MAX_SIDE 1024

/* 1 if any DHT marker (FF C4) in the file, read the way stb_image reads it
   (bytes past the end read as 0), declares a table of more than 256 codes. */
static int fuzz_dht_overflows(const uint8_t *d, size_t n)
{
#define FUZZ_AT(i) ((i) < n ? d[i] : 0)
    for (size_t p = 0; p + 1 < n; p++) {
        if (d[p] != 0xFF || d[p + 1] != 0xC4) continue;
        long L = (long)(FUZZ_AT(p + 2) << 8 | FUZZ_AT(p + 3)) - 2;
        size_t q = p + 4;
        while (L > 0 && q <= n + 17) {
            int tc = FUZZ_AT(q) >> 4, th = FUZZ_AT(q) & 15;
            if (tc > 1 || th > 3) break;
            long codes = 0;
            for (int i = 0; i < 16; i++) codes += FUZZ_AT(q + 1 + i);
            if (codes > 256) return 1;
            q += 17 + (size_t)codes;
            L -= 17 + codes;
        }
    }
    return 0;
#undef FUZZ_AT
}

/* 1 if the file starts like a PNM whose header has a number of 10 or more
   digits, or a maxval over 255 (16-bit samples). Over-approximates stb's
   header parser: every run of digits after the magic counts. */
static int fuzz_pnm_risky(const uint8_t *d, size_t n)
{
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return 0;
    int field = 0;
    for (size_t p = 2; p < n && field < 3;) {
        if (d[p] == '#') { /* comment to the end of the line */
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
        if (p - start > 9 || (++field == 3 && v > 255)) return 1;
    }
    return 0;
}

/* JPEGs are left to dc__image_load, whose guards run before stb's header reader */
static int fuzz_jpeg_any(const uint8_t *d, size_t n)
{
    return n >= 2 && d[0] == 0xFF && d[1] == 0xD8;
}

static void fuzz_check_range(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(x[i] >= -1.0f && x[i] <= 1.0f)) {
            fprintf(stderr, "preprocessed value %g at %zu is outside [-1, 1]\n", x[i], i);
            abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int skip_known = -1;
    if (skip_known < 0)
        skip_known = getenv("DC_FUZZ_SKIP_KNOWN_STB") && atoi(getenv("DC_FUZZ_SKIP_KNOWN_STB"));
    if (size > (1u << 20) || size > INT32_MAX) return 0;
    if (skip_known && (fuzz_dht_overflows(data, size) || fuzz_pnm_risky(data, size))) return 0;
    int w, h, comp;
    /* legal but slow sizes are skipped; stb's header reader is only asked
       about inputs dc's own guards (nn/image.c) would pass on to stb */
    if (!fuzz_dht_overflows(data, size) && !fuzz_pnm_risky(data, size) && !fuzz_jpeg_any(data, size) &&
        stbi_info_from_memory(data, (int)size, &w, &h, &comp) &&
        (w > FUZZ_IMAGE_MAX_SIDE || h > FUZZ_IMAGE_MAX_SIDE) &&
        w <= DC_IMAGE_MAX_SIDE && h <= DC_IMAGE_MAX_SIDE && (int64_t)w * h <= DC_IMAGE_MAX_PIXELS)
        return 0; /* legal but slow; see the top comment */
    const char *path = fuzz_file(data, size);
    dc_error err;
    dc__image img;
    if (dc__image_load(&img, path, &err) != DC_OK) {
        fuzz_check_msg(err.msg);
        return 0;
    }
    if (img.w < 1 || img.h < 1 || img.w > DC_IMAGE_MAX_SIDE || img.h > DC_IMAGE_MAX_SIDE) abort();
    /* every pixel must be readable */
    volatile unsigned char last = img.rgb[(size_t)img.w * img.h * 3 - 1];
    (void)last;
    static const int sizes[] = {8, 17};
    float out[3 * 17 * 17];
    for (int i = 0; i < 2; i++) {
        int s = sizes[i];
        if (dc__preprocess_sd(out, &img, s, &err) == DC_OK) fuzz_check_range(out, (size_t)3 * s * s);
        else fuzz_check_msg(err.msg);
        if (dc__preprocess_adm(out, &img, s, &err) == DC_OK) fuzz_check_range(out, (size_t)3 * s * s);
        else fuzz_check_msg(err.msg);
    }
    dc__image_free(&img);
    return 0;
}
