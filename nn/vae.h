/* nn/vae.h - the Stable Diffusion VAE encoder (nn/vae.c), included by nn/nn.h.

   AutoencoderKL's encoder + quant_conv, any size (SD 1.x/2.x, sd-vae-ft-*,
   DiT's VAE, and the small ones dc ships): image [n, 3, h, w] in [-1, 1] ->
   latent mean and std [n, latent_channels, h/f, w/f], f = 2^(blocks - 1).
   The classifier uses mean * scaling_factor; the encoder does not scale.

   Weights come from a .dcw made by tools/convert/convert_vae.py: tensor names are
   prefix + diffusers names (prefix "vae." in dc's files), metadata keys
   prefix + in_channels, latent_channels, block_out_channels,
   layers_per_block, norm_num_groups, scaling_factor, sample_size.

       dc__vae vae;
       dc__runner r = {0};
       if (dc__vae_build(&vae, &w, "vae.", &err) != DC_OK) ...
       dc__vae_encode(&vae, &r, mean, std, image, n, h, w, &err);
       dc__runner_free(&r);

   The model is read-only after build (pointers into the mapped file), so
   threads may share it, each with its own runner. */
#ifndef DC_NN_VAE_H
#define DC_NN_VAE_H

#define DC_VAE_MAX_BLOCKS 8  /* down blocks: at most 7 downsamplers (f = 128) */
#define DC_VAE_MAX_LAYERS 8  /* resnets per down block */

/* ResnetBlock2D: GN+SiLU, conv3x3, GN+SiLU, conv3x3, plus the input
   (through a 1x1 conv_shortcut when the width changes) */
typedef struct {
    int cin, cout;
    const dc__tensor *norm1_w, *norm1_b;    /* [cin] */
    const dc__tensor *conv1_w, *conv1_b;    /* [cout, cin, 3, 3], [cout] */
    const dc__tensor *norm2_w, *norm2_b;    /* [cout] */
    const dc__tensor *conv2_w, *conv2_b;    /* [cout, cout, 3, 3], [cout] */
    const dc__tensor *short_w, *short_b;    /* [cout, cin, 1, 1], [cout]; NULL if cin == cout */
} dc__vae_resnet;

typedef struct {
    /* hyper-parameters (metadata) */
    int in_ch, latent_ch, blocks, layers, groups, sample_size;
    int ch[DC_VAE_MAX_BLOCKS];              /* block_out_channels */
    float scaling_factor;                   /* for the caller: latent = mean * this */
    /* weights: pointers into the mapped .dcw */
    const dc__tensor *conv_in_w, *conv_in_b;            /* [ch0, in_ch, 3, 3] */
    dc__vae_resnet down[DC_VAE_MAX_BLOCKS][DC_VAE_MAX_LAYERS];
    const dc__tensor *down_w[DC_VAE_MAX_BLOCKS], *down_b[DC_VAE_MAX_BLOCKS]; /* [c, c, 3, 3]; none on the last block */
    dc__vae_resnet mid[2];
    const dc__tensor *attn_norm_w, *attn_norm_b;        /* [C], C = ch[blocks-1] */
    const dc__tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b; /* [C, C], [C] */
    const dc__tensor *norm_out_w, *norm_out_b;          /* [C] */
    const dc__tensor *conv_out_w, *conv_out_b;          /* [2L, C, 3, 3] */
    const dc__tensor *quant_w, *quant_b;                /* [2L, 2L, 1, 1] */
    size_t decode_floats;                   /* largest f16/q8 weight (runner scratch) */
} dc__vae;

/* Reads prefix + metadata and finds every tensor with the shape it implies;
   a missing or mis-shaped tensor, or inconsistent metadata, is an error
   naming it. prefix is "vae." in dc's files. */
dc_status dc__vae_build(dc__vae *m, const dc__weights *w, const char *prefix, dc_error *err);

/* image [n, in_ch, h, w] (values in [-1, 1]) -> mean [n, latent_ch, h/f, w/f]
   and, if std_or_null is not NULL, std = exp(0.5 * clamp(logvar, -30, 20))
   of the same shape; f = 2^(blocks - 1). h and w must be positive multiples
   of f (DC_ERR_INVALID otherwise, saying which). Images are encoded one at
   a time, so the runner's arena is sized for one image whatever n is. */
dc_status dc__vae_encode(const dc__vae *m, dc__runner *r, float *mean, float *std_or_null,
                         const float *image, int n, int h, int w, dc_error *err);

/* Bytes of activations (the runner's arena) dc__vae_encode needs for one
   h x w image with the current thread count; 0 if h, w are invalid or the
   size overflows. For planning and for the memory figures in the docs. */
size_t dc__vae_arena_bytes(const dc__vae *m, int h, int w);

#endif
