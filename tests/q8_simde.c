/* tests/q8_simde.c - the x86 int8 variants (nn/q8_avx512vnni.c,
   nn/q8_avxvnni.c, nn/q8_avx2.c) compiled a second time through SIMDe's
   portable C, as dc__q8_*_simde, so that their packing, tiles and index
   arithmetic are tested on a CPU without the unit (tests/test_q8.c). Only
   the compiler's choice of instructions differs from the native build.
   Linked into the test runner only, never into libdc; a file of its own
   since it must not share a translation unit with <immintrin.h>. Without
   SIMDe (libsimde-dev) the getters return NULL and the tests say so. */
#include "../nn/nn.h"
#include "../nn/q8.h"

const dc__q8variant *dc__q8_avx512vnni_simde(void);
const dc__q8variant *dc__q8_avxvnni_simde(void);
const dc__q8variant *dc__q8_avx2_simde(void);

#if defined(__has_include)
#if __has_include(<simde/x86/avx512.h>)
#define DC_Q8_SIMDE
#endif
#endif

#ifdef DC_Q8_SIMDE
#include "../nn/q8_avx512vnni.c"
#include "../nn/q8_avxvnni.c"
#include "../nn/q8_avx2.c"
#else
const dc__q8variant *dc__q8_avx512vnni_simde(void) { return NULL; }
const dc__q8variant *dc__q8_avxvnni_simde(void) { return NULL; }
const dc__q8variant *dc__q8_avx2_simde(void) { return NULL; }
#endif
