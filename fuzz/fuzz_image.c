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
   nn/image.c now refuses such files before stb sees them
   (dc__image_refusal); the reproducers in fuzz/crashes/ check that it does.

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../nn/nn.h"

/* the harness's own static stb_image, configured as dc's, for the header
   check below (the library's copy is static inside nn/image.c) */
#include "../nn/stb_impl.h"

#define FUZZ_IMAGE_MAX_SIDE 1024

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
    if (size > (1u << 20) || size > INT32_MAX) return 0;
    int w, h, comp;
    /* legal but slow sizes are skipped; stb's header reader is only asked
       about inputs dc's guards (dc__image_refusal) would pass on to stb */
    if (!dc__image_refusal(data, size) && stbi_info_from_memory(data, (int)size, &w, &h, &comp) &&
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
