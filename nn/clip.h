/* nn/clip.h - the CLIP text transformer (nn/clip.c), Stable Diffusion's
   text encoder: transformers' CLIPTextModel, any size.

   SD 1.x uses CLIP ViT-L/14's text tower (12 layers, width 768,
   quick_gelu); SD 2.x uses OpenCLIP ViT-H's as exported to HF format
   (23 layers, width 1024, exact gelu). Both read the same `clip.*`
   metadata and tensor names (tools/convert/convert_clip.py):

     <prefix>text_model.embeddings.token_embedding.weight     [vocab, D]
     <prefix>text_model.embeddings.position_embedding.weight  [max_positions, D]
     <prefix>text_model.encoder.layers.<i>.{layer_norm1,layer_norm2}.{weight,bias}   [D]
     <prefix>text_model.encoder.layers.<i>.self_attn.{q,k,v,out}_proj.{weight,bias} [D, D], [D]
     <prefix>text_model.encoder.layers.<i>.mlp.fc1.{weight,bias}  [Dm, D], [Dm]
     <prefix>text_model.encoder.layers.<i>.mlp.fc2.{weight,bias}  [D, Dm], [D]
     <prefix>text_model.final_layer_norm.{weight,bias}         [D]

   with prefix "text." in dc's model files. Included by nn/nn.h. */
#ifndef DC_NN_CLIP_H
#define DC_NN_CLIP_H

#define DC_CLIP_MAX_LAYERS 64

/* What dc__clip_forward returns (its `penultimate` argument). */
enum {
    DC_CLIP_LAST = 0,             /* last_hidden_state: final_layer_norm(layer N-1's output)
                                     (SD 1.x; SD 2.x, whose HF export already drops the
                                     24th OpenCLIP layer) */
    DC_CLIP_PENULTIMATE = 1,      /* hidden_states[-2]: layer N-2's output, no final norm
                                     (the embeddings themselves when N = 1) */
    DC_CLIP_PENULTIMATE_NORMED = 2 /* final_layer_norm(hidden_states[-2]): diffusers'
                                     clip_skip=1 ("clip skip 2" in UIs) */
};

typedef struct {
    const dc__tensor *ln1_w, *ln1_b;    /* [D], [D]  before attention */
    const dc__tensor *q_w, *q_b;        /* [D, D], [D]  heads inside: head h = rows h*dh.. */
    const dc__tensor *k_w, *k_b;        /* [D, D], [D] */
    const dc__tensor *v_w, *v_b;        /* [D, D], [D] */
    const dc__tensor *o_w, *o_b;        /* [D, D], [D]  out_proj */
    const dc__tensor *ln2_w, *ln2_b;    /* [D], [D]  before the MLP */
    const dc__tensor *fc1_w, *fc1_b;    /* [Dm, D], [Dm] */
    const dc__tensor *fc2_w, *fc2_b;    /* [D, Dm], [D] */
} dc__clip_layer;

typedef struct {
    /* config (clip.* metadata) */
    int hidden;         /* D */
    int intermediate;   /* Dm, the MLP width */
    int heads;          /* D % heads == 0; head_dim = D / heads */
    int layers;         /* N */
    int max_positions;  /* longest sequence (77 for SD) */
    int vocab;          /* token ids are in [0, vocab) */
    int act;            /* DC_ACT_QUICK_GELU or DC_ACT_GELU */
    float eps;          /* layer norm epsilon */
    /* weights: pointers into the mapped file; f32, f16 or q8 for 2-D ones */
    const dc__tensor *tok_emb;          /* [vocab, D] */
    const dc__tensor *pos_emb;          /* [max_positions, D] */
    const dc__tensor *final_w, *final_b; /* [D], [D]  final_layer_norm */
    dc__clip_layer layer[DC_CLIP_MAX_LAYERS];
    size_t decode_floats;               /* largest non-f32 projection (weight scratch) */
} dc__clip;

/* Reads clip.* metadata and finds every tensor under `prefix` ("text.")
   with the shape the config implies; a missing or mis-shaped tensor, or
   a config that does not hold together, is an error naming it. m points
   into w afterwards: keep w open while m is used. */
dc_status dc__clip_build(dc__clip *m, const dc__weights *w, const char *prefix, dc_error *err);

/* out [n, seq_len, D] = the hidden state `penultimate` selects (DC_CLIP_*)
   for ids [n, seq_len] (1 <= seq_len <= max_positions). Causal attention,
   no padding mask, as Stable Diffusion calls the encoder: padding tokens
   take part like any other token. All n prompts go through each matrix
   product together. An id outside [0, vocab) is DC_ERR_INVALID naming the
   prompt, the position and the id. */
dc_status dc__clip_forward(const dc__clip *m, dc__runner *r, float *out, const int64_t *ids,
                           int n, int seq_len, int penultimate, dc_error *err);

/* pooled [n, D] = last [n, seq_len, D] (DC_CLIP_LAST's output) at each
   prompt's end-of-text token, which transformers 4.35 finds as
   argmax(ids) (the first position of the largest id) for the SD 1.x and
   2.x configs (eos_token_id 2 in their config.json): the EOS token 49407
   is the largest id in CLIP's vocabulary. */
void dc__clip_pool(float *pooled, const float *last, const int64_t *ids, int n, int seq_len,
                   int hidden);

#endif
