/* tools/driver/stb_zlib.c - stb_image's zlib inflater, for `dc eval`'s
   gzipped IDX files. The driver compiles its own copy, as any program that
   uses stb_image next to dc does: the library's stb_image is static inside
   it and exports nothing. Only the inflater: no image decoder. Debian's
   stb/stb_image.h lies in a system include directory, whose warnings gcc
   and clang do not report, so no pragma is needed here. */
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_ZLIB
#define STBI_SUPPORT_ZLIB
#include <stb/stb_image.h>
