/* nn/stb_impl.c - the one place stb_image's implementation is compiled
   (Debian's libstb-dev ships it header-only). Its own warnings are not
   ours: they are silenced here and nowhere else. Only the decoders dc
   needs; failure reasons are thread-local in stb_image 2.27. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
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
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
