/* nn/vae.c - (being written) */
#include "nn.h"
