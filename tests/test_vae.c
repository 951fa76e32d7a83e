/* tests/test_vae.c - the VAE encoder (nn/vae.c) against torch references
   written from diffusers' structure (tools/refs/make_vae_refs.py, float64), for
   files with the new attention names, the old ones real SD VAE files carry,
   and CompVis names; f32, f16 and q8 weights; image sizes it must refuse;
   and the arena size at SD's 256 and 512 px. The .dcw files are written by
   tools/refs/prepare_vae.py through tools/convert/convert_vae.py. */
#include "test.h"

#include <math.h>
#include <stdlib.h>

/* f32 against the float64 reference. tests/data/vae/<case>/case.json records
   the torch fp32-vs-fp64 deviation: mean 1.1e-6 and 1.4e-6 abs (|mean| up
   to 3.5), std 6.1e-7 and 7.7e-7 relative. The tolerances are 10x that,
   rounded up, as for the golden fixtures. */
#define VAE_TOL_MEAN 2e-5   /* absolute */
#define VAE_TOL_STD 1e-5    /* relative */
/* f16 / q8 weights, new_names case (|mean| <= 1.5, std in [0.4, 3]):
   measured max abs error of the mean 1.3e-3 (f16) and 3.3e-2 (q8, per-row
   int8), max rel error of std 6.5e-4 (f16) and 1.1e-2 (q8); the bounds
   leave about 3x headroom, so a decoding bug (errors of order 1) cannot
   pass. */
#define VAE_F16_TOL_MEAN 4e-3
#define VAE_F16_TOL_STD 2e-3
#define VAE_Q8_TOL_MEAN 1e-1
#define VAE_Q8_TOL_STD 3.5e-2
/* int8 compute (weights per output row, activations per pixel, exact int32
   sums; nn/q8.h), from the f32 and from the q8 file alike: max abs error of
   the mean 5.8e-2, max rel error of std 2.4e-2, 1.75x and 2.2x the q8
   weights' own; the bounds leave 2x headroom. */
#define VAE_INT8_TOL_MEAN 1.2e-1
#define VAE_INT8_TOL_STD 5e-2

typedef struct {
    dc__weights w;
    dc__vae m;
    int ok;
} vae_model;

/* int8: pack the matrices for int8 compute, as dc_model_load does */
static int vae_open_compute(vae_model *vm, const char *file, int int8)
{
    dc_error err;
    memset(vm, 0, sizeof *vm);
    if (!t_weights(&vm->w, t_path(T.tmp, "%s", file))) return 0;
    if ((int8 && t_int8_begin(&vm->w, &err) != DC_OK) ||
        dc__vae_build(&vm->m, &vm->w, "vae.", &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        dc__weights_close(&vm->w);
        return 0;
    }
    return vm->ok = 1;
}

static int vae_open(vae_model *vm, const char *file) { return vae_open_compute(vm, file, 0); }

static void vae_close(vae_model *vm)
{
    if (vm->ok) dc__weights_close(&vm->w);
    vm->ok = 0;
}

/* Encodes refs/<ref>/image.npy with model file `file`; compares mean and std
   with the reference (mean: atol tm; std: rtol ts). */
static void vae_compare_compute(const char *file, const char *ref, double tm, double ts, const char *label,
                                int int8)
{
    vae_model vm;
    dc__npy img = {0}, mean = {0}, std = {0};
    dc__runner r = {0};
    dc_error err;
    float *got_m = NULL, *got_s = NULL;
    if (!vae_open_compute(&vm, file, int8)) return;
    dc__runner_use_int8(&r, &vm.w);
    if (int8) { /* int8 really runs: every matrix packed */
        int packed, kept;
        size_t bytes;
        dc__int8_count(&vm.w, &packed, &kept, &bytes);
        CHECK(packed > 0 && kept == 0, "%s: %d matrices packed, %d kept f32", label, packed, kept);
    }
    if (!t_npy(&img, "vae/%s/image", ref) || !t_npy(&mean, "vae/%s/mean", ref) ||
        !t_npy(&std, "vae/%s/std", ref))
        goto done;
    CHECK(img.ndim == 4 && img.shape[1] == vm.m.in_ch && mean.ndim == 4 &&
          mean.shape[1] == vm.m.latent_ch && mean.numel == std.numel, "%s: reference shapes", label);
    int n = (int)img.shape[0], h = (int)img.shape[2], w = (int)img.shape[3];
    got_m = malloc(sizeof(float) * (size_t)mean.numel);
    got_s = malloc(sizeof(float) * (size_t)std.numel);
    if (!got_m || !got_s) {
        CHECK(0, "out of memory");
        goto done;
    }
    if (dc__vae_encode(&vm.m, &r, got_m, got_s, img.data, n, h, w, &err) != DC_OK) {
        CHECK(0, "%s: %s", label, err.msg);
        goto done;
    }
    char name[128];
    snprintf(name, sizeof name, "%s mean", label);
    t_close(name, got_m, mean.data, (size_t)mean.numel, tm, 0);
    snprintf(name, sizeof name, "%s std", label);
    t_close(name, got_s, std.data, (size_t)std.numel, 0, ts);
done:
    free(got_m);
    free(got_s);
    dc__runner_free(&r);
    dc__npy_free(&img);
    dc__npy_free(&mean);
    dc__npy_free(&std);
    vae_close(&vm);
}

static void vae_compare(const char *file, const char *ref, double tm, double ts, const char *label)
{
    vae_compare_compute(file, ref, tm, ts, label, 0);
}

static void vae_should_match_torch_with_new_attention_names(void)
{
    vae_compare("vae_new_names_f32.dcw", "new_names", VAE_TOL_MEAN, VAE_TOL_STD,
                "new names, 3 blocks, batch 2, 16x16");
}

static void vae_should_match_torch_with_old_attention_names_and_clamp_logvar(void)
{
    /* two logvar channels sit far outside [-30, 20]: their std must be
       exactly exp(10) and exp(-15) (the reference's std spans 3.1e-7..2.2e4) */
    vae_compare("vae_old_names_f32.dcw", "old_names", VAE_TOL_MEAN, VAE_TOL_STD,
                "old names, 2 blocks, 24x32");
}

static void vae_should_read_compvis_names_as_the_same_model(void)
{
    vae_compare("vae_compvis_names_f32.dcw", "new_names", VAE_TOL_MEAN, VAE_TOL_STD,
                "CompVis names");
}

static void vae_should_stay_close_with_f16_and_q8_weights(void)
{
    vae_compare("vae_new_names_f16.dcw", "new_names", VAE_F16_TOL_MEAN, VAE_F16_TOL_STD,
                "f16 weights");
    vae_compare("vae_new_names_q8.dcw", "new_names", VAE_Q8_TOL_MEAN, VAE_Q8_TOL_STD,
                "q8 weights");
}

static void vae_should_stay_close_in_int8(void)
{
    NEED_INT8();
    vae_compare_compute("vae_new_names_f32.dcw", "new_names", VAE_INT8_TOL_MEAN, VAE_INT8_TOL_STD,
                        "int8 compute", 1);
    vae_compare_compute("vae_new_names_q8.dcw", "new_names", VAE_INT8_TOL_MEAN, VAE_INT8_TOL_STD,
                        "q8 weights, int8 compute", 1);
}

static void vae_should_give_the_same_mean_without_std(void)
{
    vae_model vm;
    dc__npy img = {0};
    dc__runner r = {0};
    dc_error err;
    if (!vae_open(&vm, "vae_new_names_f32.dcw")) return;
    if (t_npy(&img, "vae/new_names/image")) {
        int n = (int)img.shape[0], h = (int)img.shape[2], w = (int)img.shape[3];
        size_t lat = (size_t)n * vm.m.latent_ch * (h / 4) * (w / 4);
        float *a = calloc(lat, sizeof(float)), *s = calloc(lat, sizeof(float)),
              *b = calloc(lat, sizeof(float));
        if (a && s && b && dc__vae_encode(&vm.m, &r, a, s, img.data, n, h, w, &err) == DC_OK &&
            dc__vae_encode(&vm.m, &r, b, NULL, img.data, n, h, w, &err) == DC_OK) {
            CHECK(!memcmp(a, b, lat * sizeof(float)), "mean differs when std is not asked for");
            /* the second image alone gives the second half of the batch */
            size_t one = lat / 2;
            CHECK(dc__vae_encode(&vm.m, &r, b, NULL, (const float *)img.data + 3 * h * w, 1, h, w,
                                 &err) == DC_OK, "%s", err.msg);
            CHECK(!memcmp(a + one, b, one * sizeof(float)), "image 2 alone differs from batch of 2");
        } else {
            CHECK(0, "encode: %s", err.msg);
        }
        free(a);
        free(s);
        free(b);
    }
    dc__npy_free(&img);
    dc__runner_free(&r);
    vae_close(&vm);
}

static void vae_should_refuse_image_sizes_it_cannot_halve(void)
{
    vae_model vm;
    dc__runner r = {0};
    dc_error err;
    if (!vae_open(&vm, "vae_new_names_f32.dcw")) return; /* f = 4 */
    float img[3 * 16 * 18] = {0}, out[4 * 4 * 5 * 2];
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 1, 16, 18, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "16x18") && strstr(err.msg, "multiple of 4"),
          "16x18: %s", err.msg);
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 1, 6, 8, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "multiple of 4"),
          "6x8: %s", err.msg);
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 1, 0, 8, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "out of range"),
          "0x8: %s", err.msg);
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 1, 1 << 20, 4, &err) == DC_ERR_INVALID,
          "huge: %s", err.msg);
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 0, 16, 16, &err) == DC_ERR_INVALID &&
              strstr(err.msg, "n >= 1"),
          "n = 0: %s", err.msg);
    CHECK(dc__vae_arena_bytes(&vm.m, 16, 18) == 0, "arena bytes of a bad size");
    /* and a good size still works after the refusals */
    CHECK(dc__vae_encode(&vm.m, &r, out, NULL, img, 1, 16, 16, &err) == DC_OK, "%s", err.msg);
    dc__runner_free(&r);
    vae_close(&vm);
}

static void vae_should_name_what_a_file_lacks(void)
{
    vae_model vm;
    dc__vae m2;
    dc_error err;
    if (!vae_open(&vm, "vae_new_names_f32.dcw")) return;
    CHECK(dc__vae_build(&m2, &vm.w, "unet.", &err) != DC_OK && strstr(err.msg, "unet.in_channels"),
          "wrong prefix: %s", err.msg);
    /* a DiT file is not a VAE */
    dc__weights w2;
    if (dc__weights_open(&w2, t_path(T.tmp, "test.dcw"), 1, &err) == DC_OK) {
        CHECK(dc__vae_build(&m2, &w2, "vae.", &err) != DC_OK && strstr(err.msg, "vae."),
              "other file: %s", err.msg);
        dc__weights_close(&w2);
    }
    vae_close(&vm);
}

/* SD's VAE (block_out_channels 128, 256, 512, 512): the arena for one image
   is three of the largest maps (128 x h x w floats) plus im2col tiles, at
   any batch size. Prints the figures for the docs. */
static void vae_arena_should_hold_three_full_size_maps_and_little_more(void)
{
    dc__vae m;
    memset(&m, 0, sizeof m);
    m.in_ch = 3, m.latent_ch = 4, m.blocks = 4, m.layers = 2, m.groups = 32;
    m.ch[0] = 128, m.ch[1] = 256, m.ch[2] = 512, m.ch[3] = 512;
    int sizes[2] = {256, 512};
    for (int i = 0; i < 2; i++) {
        int s = sizes[i];
        size_t bytes = dc__vae_arena_bytes(&m, s, s);
        size_t map = (size_t)4 * 128 * s * s;
        /* im2col: one 4608 x 128 tile per thread (cin 512, 3x3) */
        size_t cols = (size_t)dc__num_threads() * 512 * 9 * 128 * 4;
        printf("  SD VAE, %d px, batch 1: arena %.1f MB (%zu bytes; 3 maps = %.1f MB, im2col %.1f MB, "
               "%d threads)\n", s, bytes / 1e6, bytes, 3 * map / 1e6, cols / 1e6, dc__num_threads());
        CHECK(bytes >= 3 * map && bytes <= 3 * map + cols + 1024, "%d px: %zu bytes", s, bytes);
    }
}

void suite_vae(void)
{
    RUN(vae_should_match_torch_with_new_attention_names);
    RUN(vae_should_match_torch_with_old_attention_names_and_clamp_logvar);
    RUN(vae_should_read_compvis_names_as_the_same_model);
    RUN(vae_should_stay_close_with_f16_and_q8_weights);
    RUN(vae_should_stay_close_in_int8);
    RUN(vae_should_give_the_same_mean_without_std);
    RUN(vae_should_refuse_image_sizes_it_cannot_halve);
    RUN(vae_should_name_what_a_file_lacks);
    RUN(vae_arena_should_hold_three_full_size_maps_and_little_more);
}
