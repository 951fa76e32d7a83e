/* nn/model.h - what a loaded model and a context hold, shared by the
   classifier (dc.c), model loading (nn/model.c) and component runs
   (nn/forward.c). dc.h keeps both types opaque; this header opens them
   to the library's own files only. */
#ifndef DC_MODEL_H
#define DC_MODEL_H

#include "nn.h"

/* The validated .dcw mapping and the networks its metadata describes;
   read-only after dc_model_load, so threads may share it. */
struct dc_model {
    dc__weights w;      /* the mapping; everything below points into it */
    char family[32];    /* metadata dc.family */
    dc__dit *dit;       /* family "dit": the class-conditional denoiser */
    dc__vae *vae;       /* the image encoder, when the file has one ("vae." tensors) */
    dc__clip *clip;     /* the text encoder, when the file has one ("text." tensors) */
    dc__tokenizer *tok; /* the prompt tokenizer, when the file has tokenizer.* metadata */
    dc__unet *unet;     /* the text-conditional denoiser ("unet." tensors) */
};

/* One thread's working memory for one model. */
struct dc_ctx {
    const dc_model *model;
    dc__runner runner;  /* activations and weight-decode scratch */
};

#endif /* DC_MODEL_H */
