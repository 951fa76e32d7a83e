/* nn/clip.c - (being written) */
#include "nn.h"
