/* nn/clip.h - declarations for nn/clip.c (included by nn/nn.h). */
#ifndef DC_NN_CLIP_H
#define DC_NN_CLIP_H
#endif
