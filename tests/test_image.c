/* tests/test_image.c - decoding (stb_image) and resizing against Pillow,
   which the reference pipelines use; and refusal of bad image files. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

static int load_ref_i(dc__npy *a, const char *name)
{
    dc_error err;
    if (dc__npy_load(a, t_path(T.data, "images/%s", name), &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        return 0;
    }
    return 1;
}

static void decoded_pixels_should_equal_pillows_for_every_format_and_mode(void)
{
    static const char *files[] = {"rgb_45x31", "grey_20x50", "rgba_33x33", "palette_40x24", "rgb_16x12"};
    static const char *exts[] = {"png", "png", "png", "png", "bmp"};
    for (int i = 0; i < 5; i++) {
        dc__image img;
        dc_error err;
        dc__npy want;
        char name[64];
        snprintf(name, sizeof name, "%s_rgb.npy", files[i]);
        if (dc__image_load(&img, t_path(T.data, "images/%s.%s", files[i], exts[i]), &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        if (load_ref_i(&want, name)) {
            int same = want.numel == (int64_t)img.w * img.h * 3;
            for (int64_t k = 0; same && k < want.numel; k++) same = img.rgb[k] == ((int64_t *)want.data)[k];
            CHECK(same, "%s: decoded pixels differ from Pillow's", files[i]);
            dc__npy_free(&want);
        }
        dc__image_free(&img);
    }
    /* 16-bit grey: reduced to the high byte, replicated to RGB */
    dc__image img;
    dc_error err;
    dc__npy px;
    if (dc__image_load(&img, t_path(T.data, "images/grey16_24x18.png"), &err) == DC_OK &&
        load_ref_i(&px, "grey16_24x18_pixels.npy")) {
        int same = img.w == 24 && img.h == 18;
        for (int k = 0; same && k < 24 * 18; k++)
            same = img.rgb[3 * k] == (((int64_t *)px.data)[k] >> 8) &&
                   img.rgb[3 * k + 2] == img.rgb[3 * k];
        CHECK(same, "16-bit grey decoded wrongly");
        dc__npy_free(&px);
        dc__image_free(&img);
    } else {
        CHECK(0, "16-bit: %s", err.msg);
    }
    /* JPEG: decoders may differ slightly; just the size (baseline and progressive,
       which must pass the Huffman-table guard) */
    CHECK(dc__image_load(&img, t_path(T.data, "images/photo_70x52.jpg"), &err) == DC_OK && img.w == 70 &&
          img.h == 52, "jpeg: %s", err.msg);
    dc__image_free(&img);
    CHECK(dc__image_load(&img, t_path(T.data, "images/progressive_64x40.jpg"), &err) == DC_OK && img.w == 64 &&
          img.h == 40, "progressive jpeg: %s", err.msg);
    dc__image_free(&img);
}

/* DATA/images/<name>; fails the test if it cannot be loaded. */
static int load_test_image(dc__image *img, const char *name)
{
    dc_error err;
    if (dc__image_load(img, t_path(T.data, "images/%s", name), &err) == DC_OK) return 1;
    CHECK(0, "%s", err.msg);
    return 0;
}

static void resize_should_be_bit_exact_with_pillow(void)
{
    static const struct { int w, h, box; } cases[] = {{20, 14, 0}, {97, 60, 0}, {45, 10, 0}, {13, 31, 0},
                                                      {22, 15, 1}, {7, 5, 0}};
    dc__image img;
    dc_error err;
    if (!load_test_image(&img, "rgb_45x31.png")) return;
    for (int i = 0; i < 6; i++) {
        dc__image r;
        dc__npy want;
        char name[64];
        snprintf(name, sizeof name, "resize_%dx%d_%s.npy", cases[i].w, cases[i].h, cases[i].box ? "box" : "bicubic");
        if (dc__image_resize(&r, &img, cases[i].w, cases[i].h, cases[i].box, &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        if (load_ref_i(&want, name)) {
            int diff = 0;
            for (int64_t k = 0; k < want.numel; k++) diff += r.rgb[k] != ((int64_t *)want.data)[k];
            CHECK(diff == 0, "%s: %d of %lld bytes differ from Pillow", name, diff, (long long)want.numel);
            dc__npy_free(&want);
        }
        dc__image_free(&r);
    }
    dc__image_free(&img);
}

static void preprocessing_should_match_the_reference_pipelines(void)
{
    static const struct { const char *ref; int size, adm; } cases[] = {
        {"sd_150x97_to_32.npy", 32, 0}, {"sd_150x97_to_128.npy", 128, 0},
        {"adm_150x97_to_16.npy", 16, 1}, {"adm_150x97_to_40.npy", 40, 1}};
    dc__image img;
    dc_error err;
    if (!load_test_image(&img, "rgb_150x97.png")) return;
    for (int i = 0; i < 4; i++) {
        int s = cases[i].size;
        float *out = malloc(sizeof(float) * 3 * s * s);
        dc__npy want;
        dc_status st = cases[i].adm ? dc__preprocess_adm(out, &img, s, &err) : dc__preprocess_sd(out, &img, s, &err);
        if (st != DC_OK) CHECK(0, "%s", err.msg);
        else if (dc__npy_load_f32(&want, t_path(T.data, "images/%s", cases[i].ref), &err) == DC_OK) {
            /* identical pixels; only the float scaling rounds (1 ulp) */
            t_close(cases[i].ref, out, want.data, (size_t)want.numel, 1e-6, 0);
            dc__npy_free(&want);
        }
        free(out);
    }
    dc__image_free(&img);
}

static void bad_image_files_should_be_refused_by_name(void)
{
    dc__image img;
    dc_error err;
    const char *p = t_path(T.tmp, "not-an-image.png");
    FILE *f = fopen(p, "wb");
    if (f) {
        fputs("this is not a png", f);
        fclose(f);
    }
    CHECK(dc__image_load(&img, p, &err) == DC_ERR_FORMAT && strstr(err.msg, "not an image") &&
          strstr(err.msg, "not-an-image.png"), "text: %s", err.msg);
    CHECK(dc__image_load(&img, t_path(T.tmp, "absent.png"), &err) == DC_ERR_IO && strstr(err.msg, "cannot open"),
          "missing: %s", err.msg);
    /* a PNG header declaring 100000 x 100000 pixels: refused before decoding */
    static const unsigned char huge[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                                         0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    p = t_path(T.tmp, "huge.png");
    if ((f = fopen(p, "wb"))) {
        fwrite(huge, 1, sizeof huge, f);
        fclose(f);
    }
    dc_status st = dc__image_load(&img, p, &err);
    CHECK(st != DC_OK && (strstr(err.msg, "over dc's limit") || strstr(err.msg, "not an image")), "huge: %s", err.msg);
    /* truncated PNG: the first 60 bytes of a real one */
    size_t n = 0;
    unsigned char buf[4096];
    if ((f = fopen(t_path(T.data, "images/rgb_45x31.png"), "rb"))) {
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
    }
    p = t_path(T.tmp, "truncated.png");
    if (n > 60 && (f = fopen(p, "wb"))) {
        fwrite(buf, 1, 60, f);
        fclose(f);
    }
    CHECK(dc__image_load(&img, p, &err) != DC_OK && err.msg[0], "truncated png accepted");
}

static void files_that_break_stb_image_should_be_refused_first(void)
{
    /* fuzzing found these (fuzz/crashes/, docs/robustness.md): Debian's
       stb_image 2.27 reads out of bounds or uninitialised memory on them */
    static const struct { const char *file, *expect; } cases[] = {
        {"image/stb_dht_counts_over_256.jpg", "Huffman table"},
        {"image/stb_dht_after_fill_bytes.jpg", "Huffman table"}, /* fill bytes before the start marker */
        /* FF FF 00 inside a scan: one stuffed byte to stb, a bogus segment to a naive walk */
        {"image/stb_dht_hidden_by_fill_in_scan.jpg", "Huffman table"},
        {"image/stb_pnm_16bit_grey_overread.pgm", "16-bit PNM"},
        {"image/stb_pnm_header_int_overflow.pgm", "more than 9 digits"},
        {"image/valid_16bit_grey_2x2.pgm", "16-bit PNM"},
        /* an IDAT chunk claiming 2 GB (1 GB) in a file of a few hundred bytes */
        {"image/stb_png_idat_claims_2gb.png", "PNG chunk longer"},
        {"image/stb_png_idat_claims_1gb.png", "PNG chunk longer"},
        {"image-uninit/stb_jpeg_undefined_huffman_table.jpg", "does not define"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dc__image img;
        dc_error err;
        const char *p = t_path(T.data, "../../fuzz/crashes/%s", cases[i].file);
        FILE *f = fopen(p, "rb");
        if (!f) {
            CHECK(0, "missing reproducer %s", p);
            continue;
        }
        fclose(f);
        CHECK(dc__image_load(&img, p, &err) == DC_ERR_FORMAT && strstr(err.msg, cases[i].expect),
              "%s: %s", cases[i].file, err.msg);
    }
}

static void every_dht_marker_should_be_checked_within_a_bound(void)
{
    /* nn/image.c reads every FF C4 in a JPEG as stb would read a DHT there;
       a file made of nothing else must be refused after 1024 of them rather
       than cost 64 kB of reading each */
    size_t n = 2 + 4 * 4096;
    unsigned char *d = malloc(n);
    if (!d) {
        CHECK(0, "out of memory");
        return;
    }
    d[0] = 0xFF, d[1] = 0xD8;
    for (size_t i = 2; i < n; i += 4) d[i] = 0xFF, d[i + 1] = 0xC4, d[i + 2] = 0xFF, d[i + 3] = 0xFF;
    const char *why = dc__image_refusal(d, n);
    CHECK(why && strstr(why, "1024"), "%s", why ? why : "accepted");
    /* one table: a DHT length of 19 holding 16 counts that sum to 257 */
    static const unsigned char one[] = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x10, 255, 2};
    why = dc__image_refusal(one, sizeof one);
    CHECK(why && strstr(why, "more than 256"), "%s", why ? why : "accepted");
    /* 256 codes is the legal maximum */
    static const unsigned char full[] = {0xFF, 0xD8, 0xFF, 0xC4, 0x00, 0x13, 0x10, 255, 1};
    why = dc__image_refusal(full, sizeof full);
    CHECK(!why || !strstr(why, "more than 256"), "%s", why);
    free(d);
}

void suite_image(void)
{
    RUN(every_dht_marker_should_be_checked_within_a_bound);
    RUN(files_that_break_stb_image_should_be_refused_first);
    RUN(decoded_pixels_should_equal_pillows_for_every_format_and_mode);
    RUN(resize_should_be_bit_exact_with_pillow);
    RUN(preprocessing_should_match_the_reference_pipelines);
    RUN(bad_image_files_should_be_refused_by_name);
}
