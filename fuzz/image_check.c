/* fuzz/image_check.c - decodes image files with dc's loader, outside libFuzzer.

   Some decoder bugs read uninitialised memory (a JPEG scan that uses a
   Huffman table the file never defined): whether they crash depends on
   what the heap held before, so the fuzzer's reproducer does not crash
   on its own. Under valgrind they show every time:

     make build/fuzz/image_check
     valgrind --error-exitcode=1 build/fuzz/image_check fuzz/crashes/image-uninit/FILE

   Prints one line per file: its size, or dc's error. */
#include "../nn/nn.h"

int main(int argc, char **argv)
{
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        dc__image img;
        dc_error err;
        if (dc__image_load(&img, argv[i], &err) != DC_OK) {
            printf("%s: %s\n", argv[i], err.msg);
            rc = 1;
            continue;
        }
        unsigned sum = 0; /* touch every byte, so valgrind sees any that are undefined */
        for (size_t k = 0; k < (size_t)img.w * img.h * 3; k++) sum += img.rgb[k];
        printf("%s: %d x %d, pixel sum %u\n", argv[i], img.w, img.h, sum);
        dc__image_free(&img);
    }
    return rc;
}
