/* nn/unet.h - the Stable Diffusion UNet (nn/unet.c), included by nn/nn.h.

   diffusers' UNet2DConditionModel as SD 1.x and 2.x use it, any size the
   config describes: noisy latent [n, in_ch, h, w], timesteps [n] (floats),
   text context [n, ctx_len, cross_dim] -> prediction [n, out_ch, h, w]
   (eps or v, whatever the model was trained for).

     emb = MLP(sinusoid(t))                          time embedding [n, Td]
     x   = conv_in(sample)                           skip 0
     down blocks: resnets (+ a transformer after each in CrossAttn blocks),
                  then a stride-2 conv; every output is kept as a skip
     mid: resnet, transformer, resnet
     up blocks:   concat(x, skip) -> resnet (-> transformer), layers + 1
                  times, then nearest 2x + conv
     out = conv_out(SiLU(GroupNorm(x)))

   Weights come from a .dcw made by tools/convert/convert_unet.py: tensor names are
   prefix + diffusers names (prefix "unet." in dc's files), metadata keys
   prefix + the config fields that tool lists.

       dc__unet unet;
       dc__runner r = {0};
       if (dc__unet_build(&unet, &w, "unet.", &err) != DC_OK) ...
       dc__unet_forward(&unet, &r, out, sample, t, context, n, h, w, 77, &err);
       dc__runner_free(&r);

   As the DiT (nn/dit.h), the built model only points into the mapped file
   and allocates nothing: read-only, shared by threads that each own a
   runner, and there is nothing to free. */
#ifndef DC_NN_UNET_H
#define DC_NN_UNET_H

#define DC_UNET_MAX_BLOCKS 6    /* down (and up) blocks: at most 5 downsamplers */
#define DC_UNET_MAX_LAYERS 4    /* resnets per down block; up blocks have one more */
#define DC_UNET_MAX_RESNETS (DC_UNET_MAX_BLOCKS * (2 * DC_UNET_MAX_LAYERS + 1) + 2)
#define DC_UNET_MAX_TRANSFORMERS DC_UNET_MAX_RESNETS
#define DC_UNET_MAX_TBLOCKS 160 /* BasicTransformerBlocks in all (SD: 16) */

/* ResnetBlock2D: GN+SiLU, conv3x3, + time_emb_proj(SiLU(emb)), GN+SiLU,
   conv3x3, plus the input (through a 1x1 conv_shortcut when cin != cout) */
typedef struct {
    int cin, cout;
    const dc__tensor *norm1_w, *norm1_b;    /* [cin] */
    const dc__tensor *conv1_w, *conv1_b;    /* [cout, cin, 3, 3], [cout] */
    const dc__tensor *temb_w, *temb_b;      /* [cout, Td], [cout] */
    const dc__tensor *norm2_w, *norm2_b;    /* [cout] */
    const dc__tensor *conv2_w, *conv2_b;    /* [cout, cout, 3, 3], [cout] */
    const dc__tensor *short_w, *short_b;    /* [cout, cin, 1, 1], [cout]; NULL if cin == cout */
} dc__unet_resnet;

/* BasicTransformerBlock of width D: self-attention, cross-attention, GEGLU
   feed-forward, each after a LayerNorm and with a residual */
typedef struct {
    const dc__tensor *norm1_w, *norm1_b;    /* [D] */
    const dc__tensor *q1, *k1, *v1;         /* [D, D], no bias */
    const dc__tensor *o1_w, *o1_b;          /* [D, D], [D] */
    const dc__tensor *norm2_w, *norm2_b;    /* [D] */
    const dc__tensor *q2;                   /* [D, D] */
    const dc__tensor *k2, *v2;              /* [D, cross_dim]: from the context */
    const dc__tensor *o2_w, *o2_b;          /* [D, D], [D] */
    const dc__tensor *norm3_w, *norm3_b;    /* [D] */
    const dc__tensor *ff1_w, *ff1_b;        /* [8D, D]: GEGLU value half | gate half */
    const dc__tensor *ff2_w, *ff2_b;        /* [D, 4D], [D] */
} dc__unet_tblock;

/* Transformer2DModel on c channels: GroupNorm(eps 1e-6), proj_in to width
   inner = heads * (c / heads), `layers` blocks, proj_out, + the input */
typedef struct {
    int c, heads, dh, inner, layers;
    int first;                              /* its blocks: tblocks[first .. first + layers) */
    const dc__tensor *norm_w, *norm_b;      /* [c] */
    const dc__tensor *proj_in_w, *proj_in_b;   /* [inner, c] (linear) or [inner, c, 1, 1], [inner] */
    const dc__tensor *proj_out_w, *proj_out_b; /* [c, inner] or [c, inner, 1, 1], [c] */
} dc__unet_transformer;

typedef struct {
    int cross;                              /* CrossAttn*Block2D: a transformer after each resnet */
    int layers;                             /* resnets (up blocks: layers_per_block + 1) */
    int cout;
    int resnet0, attn0;                     /* its first resnet / transformer in the pools */
    const dc__tensor *resample_w, *resample_b; /* downsampler (stride 2) or upsampler conv
                                                  [cout, cout, 3, 3]; NULL in the last block */
} dc__unet_block;

typedef struct {
    /* hyper-parameters (metadata) */
    int in_ch, out_ch, blocks, groups, cross_dim, temb_dim, sample_size;
    int linear_proj;                        /* use_linear_projection: proj_in/out are linears */
    int upcast_attention;                   /* accepted; dc always computes attention in f32 */
    int flip_sin_to_cos, center_input;
    float freq_shift, norm_eps, mid_scale;  /* mid_scale: mid_block_scale_factor */
    int ch[DC_UNET_MAX_BLOCKS];             /* block_out_channels */
    int heads[DC_UNET_MAX_BLOCKS];          /* heads per down block (diffusers' rule) */
    /* weights: pointers into the mapped .dcw */
    const dc__tensor *conv_in_w, *conv_in_b;        /* [ch0, in_ch, 3, 3] */
    const dc__tensor *t1_w, *t1_b, *t2_w, *t2_b;    /* [Td, ch0], [Td, Td] */
    const dc__tensor *norm_out_w, *norm_out_b;      /* [ch0] */
    const dc__tensor *conv_out_w, *conv_out_b;      /* [out_ch, ch0, 3, 3] */
    dc__unet_block down[DC_UNET_MAX_BLOCKS], up[DC_UNET_MAX_BLOCKS];
    int mid_resnet0, mid_attn;              /* mid block: resnets mid_resnet0, +1; transformer */
    int n_resnets, n_transformers, n_tblocks;
    dc__unet_resnet resnets[DC_UNET_MAX_RESNETS];
    dc__unet_transformer transformers[DC_UNET_MAX_TRANSFORMERS];
    dc__unet_tblock tblocks[DC_UNET_MAX_TBLOCKS];
    size_t decode_floats;                   /* f16/q8 decode scratch (runner), in floats */
} dc__unet;

/* Reads prefix + metadata and finds every tensor with the shape the config
   implies; a missing or mis-shaped tensor, or inconsistent metadata, is an
   error naming it. prefix is "unet." in dc's files. */
dc_status dc__unet_build(dc__unet *m, const dc__weights *w, const char *prefix, dc_error *err);

/* out [n, out_ch, h, w] = UNet(sample [n, in_ch, h, w], timesteps [n],
   context [n, ctx_len, cross_dim]); each sample has its own timestep and
   context. h and w must be positive multiples of 2^(blocks - 1)
   (DC_ERR_INVALID otherwise, saying which). All n samples go through each
   layer together (one sgemm over n * tokens rows where the layout allows). */
dc_status dc__unet_forward(const dc__unet *m, dc__runner *r, float *out, const float *sample,
                           const float *timesteps, const float *context, int n, int h, int w,
                           int ctx_len, dc_error *err);

/* Bytes of activations (the runner's arena) dc__unet_forward needs for
   these sizes with the current thread count; 0 if they are invalid or the
   size overflows. For planning and for the memory figures in the docs. */
size_t dc__unet_arena_bytes(const dc__unet *m, int n, int h, int w, int ctx_len);

#endif
