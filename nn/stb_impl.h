/* nn/stb_impl.h - stb_image's implementation, compiled into nn/image.c (the
   one file that includes this) with every stb function static: dc's copy of
   stb never clashes with, or is silently replaced by, the stb_image of a
   program that embeds or links dc (Debian's libstb-dev ships it
   header-only). Only the decoders dc needs; failure reasons are
   thread-local in stb_image 2.27. Its own warnings are not ours: they are
   silenced here and nowhere else. */
#ifndef DC_NN_STB_IMPL_H
#define DC_NN_STB_IMPL_H

#ifdef STBI_INCLUDE_STB_IMAGE_H
#error "stb_image.h is already included: dc compiles its own static copy, so include dc's implementation (DC_IMPLEMENTATION) in a file that does not include stb_image.h"
#endif

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
/* stb computes NULL + 0 and calls memcpy(NULL, p, 0) for a PNG whose first
   IDAT chunk is empty (clang's UBSan flags both; no memory is touched:
   fuzz/benign/image/ has the input): those two checks are off for stb's
   functions only, so the fuzzer can go on and dc's own code keeps them. */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((no_sanitize("pointer-overflow", "nonnull-attribute"))), \
                             apply_to = function)
#endif
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
/* Zeroed allocations: stb_image 2.27 decodes a JPEG scan with a Huffman
   table the file never defined from whatever its malloc returned
   (docs/robustness.md, bug 4). nn/image.c refuses such files when its
   marker walk sees them; zeroed memory makes any it misses decode from an
   all-zero table, which stb handles without reading out of bounds. */
#include <stdlib.h>
#define STBI_MALLOC(size) calloc(1, (size))
#define STBI_REALLOC(p, size) realloc((p), (size))
#define STBI_FREE(p) free(p)
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_ONLY_PNM
#define STBI_ONLY_TGA
/* stb_image 2.27 declares stbi_set_unpremultiply_on_load_thread but defines
   it as stbi__unpremultiply_on_load_thread: one name for both, or the
   static declaration has no definition (a warning no pragma silences).
   Harmless where the two names agree. */
#define stbi_set_unpremultiply_on_load_thread stbi__unpremultiply_on_load_thread
#include <stb/stb_image.h>
#if defined(__clang__)
#pragma clang attribute pop
#endif
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#endif /* DC_NN_STB_IMPL_H */
