/* tests/test_tokenizer.c - (being written) */
#include "test.h"

void suite_tokenizer(void) {}
