/* nn/unet.h - declarations for nn/unet.c (included by nn/nn.h). */
#ifndef DC_NN_UNET_H
#define DC_NN_UNET_H
#endif
