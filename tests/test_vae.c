/* tests/test_vae.c - (being written) */
#include "test.h"

void suite_vae(void) {}
