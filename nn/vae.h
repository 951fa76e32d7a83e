/* nn/vae.h - declarations for nn/vae.c (included by nn/nn.h). */
#ifndef DC_NN_VAE_H
#define DC_NN_VAE_H
#endif
