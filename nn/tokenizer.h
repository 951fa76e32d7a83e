/* nn/tokenizer.h - declarations for nn/tokenizer.c (included by nn/nn.h). */
#ifndef DC_NN_TOKENIZER_H
#define DC_NN_TOKENIZER_H
#endif
