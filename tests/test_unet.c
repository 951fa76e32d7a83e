/* tests/test_unet.c - (being written) */
#include "test.h"

void suite_unet(void) {}
