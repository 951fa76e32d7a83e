/* tools/driver/stb_zlib.c - stb_image's zlib inflater, for `dc eval`'s
   gzipped IDX files. The driver compiles its own copy, as any program that
   uses stb_image next to dc does: the library's stb_image is static inside
   it and exports nothing. Only the inflater: no image decoder. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_ZLIB
#define STBI_SUPPORT_ZLIB
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
