/* nn/tokenizer.c - (being written) */
#include "nn.h"
