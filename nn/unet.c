/* nn/unet.c - (being written) */
#include "nn.h"
