/* nn/dit.h - DiT, the class-conditional diffusion transformer (nn/dit.c),
   included by nn/nn.h.

   Any size the dit.* metadata describes (DiT-XL/2 at 256 and 512 px, the
   small one dc ships): latent x [n, in_ch, S, S], timesteps t [n] (floats),
   class ids y [n] (num_classes = the null class) -> [n, out_ch, S, S]; with
   learned sigma out_ch = 2 * in_ch and the first in_ch channels are the
   noise prediction.

   Tensor names are the original checkpoint's (DiT-XL-2-256x256.pt), which
   are dc's canonical DiT names (no prefix); tools/convert/convert.py writes them
   and the metadata.

       dc__dit dit;
       dc__runner r = {0};
       if (dc__dit_build(&dit, &w, &err) != DC_OK) ...
       dc__dit_forward(&dit, &r, out, x, t, y, n, &err);
       dc__runner_free(&r);

   The model is read-only after build (pointers into the mapped file), so
   threads may share it, each with its own runner. It holds no allocation:
   there is nothing to free. */
#ifndef DC_NN_DIT_H
#define DC_NN_DIT_H

#define DC_DIT_MAX_DEPTH 64

/* One DiT block of width D, adaLN-Zero: attention and MLP, each after a
   modulated LayerNorm and added back through a gate */
typedef struct {
    const dc__tensor *qkv_w, *qkv_b;    /* [3D, D], [3D]: q | k | v, heads inside each */
    const dc__tensor *proj_w, *proj_b;  /* [D, D], [D] */
    const dc__tensor *fc1_w, *fc1_b;    /* [Dm, D], [Dm] */
    const dc__tensor *fc2_w, *fc2_b;    /* [D, Dm], [D] */
    const dc__tensor *mod_w, *mod_b;    /* [6D, D], [6D]: adaLN-Zero modulation */
} dc__dit_block;

typedef struct {
    /* hyper-parameters (dit.* metadata) */
    int input_size, patch, in_ch, out_ch, hidden, depth, heads, mlp_hidden;
    int num_classes, learn_sigma, tokens;
    /* weights: pointers into the mapped .dcw */
    const dc__tensor *pos_embed;               /* [1, T, D] fixed 2-D sin-cos */
    const dc__tensor *patch_w, *patch_b;       /* [D, C, p, p], [D] */
    const dc__tensor *t0_w, *t0_b, *t2_w, *t2_b; /* timestep MLP: [D, 256], [D, D] */
    const dc__tensor *label_table;             /* [num_classes (+1 null), D] */
    const dc__tensor *final_mod_w, *final_mod_b; /* [2D, D] */
    const dc__tensor *final_w, *final_b;       /* [p*p*out_ch, D] */
    dc__dit_block blocks[DC_DIT_MAX_DEPTH];
    size_t decode_floats;                      /* f16/q8 decode scratch (runner), in floats */
} dc__dit;

/* Reads dit.* metadata and finds every tensor with the shape it implies;
   a missing or mis-shaped tensor, or a config that does not hold together,
   is an error naming it. */
dc_status dc__dit_build(dc__dit *m, const dc__weights *w, dc_error *err);

/* out [n, out_ch, S, S] = DiT(x [n, in_ch, S, S], t [n], y [n]), S =
   input_size; a class id outside the label table is DC_ERR_INVALID. All n
   samples go through each matrix product together (n * T token rows). */
dc_status dc__dit_forward(const dc__dit *m, dc__runner *r, float *out, const float *x,
                          const float *t, const int64_t *y, int n, dc_error *err);

#endif
