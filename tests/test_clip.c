/* tests/test_clip.c - (being written) */
#include "test.h"

void suite_clip(void) {}
