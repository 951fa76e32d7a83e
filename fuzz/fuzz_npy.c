/* fuzz/fuzz_npy.c - libFuzzer target: the .npy reader on any bytes.

   nn/npy.c parses a Python-dict header by hand (descr, fortran_order,
   shape) and trusts nothing in it: every length, dimension and the data
   size are checked against the file. This target feeds it arbitrary files
   through both entry points (dc__npy_load and the public
   dc_tensor_load_npy), and for every file it accepts checks a property:
   writing the array back with dc__npy_save and reading that again gives the
   same dtype, shape and bytes.

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../nn/nn.h"

static int npy_item(int dtype)
{
    return dtype == DC_NPY_F32 || dtype == DC_NPY_I32 ? 4 : 8;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    const char *path = fuzz_file(data, size);
    dc_error err;
    dc__npy a;
    if (dc__npy_load(&a, path, &err) != DC_OK) {
        fuzz_check_msg(err.msg);
    } else {
        /* the shape must account for the data exactly */
        int64_t numel = 1;
        for (int i = 0; i < a.ndim; i++) numel *= a.shape[i];
        if (numel != a.numel || (size_t)numel * (size_t)npy_item(a.dtype) > size) abort();
        /* round trip through the writer, into a second memfd */
        const char *out = fuzz_file_slot(1, NULL, 0);
        if (dc__npy_save(out, a.dtype, a.ndim, a.shape, a.data, &err) != DC_OK) abort();
        dc__npy b;
        if (dc__npy_load(&b, out, &err) != DC_OK) {
            fprintf(stderr, "round trip: %s\n", err.msg);
            abort();
        }
        if (b.dtype != a.dtype || b.ndim != a.ndim || memcmp(b.shape, a.shape, sizeof a.shape) ||
            memcmp(b.data, a.data, (size_t)a.numel * (size_t)npy_item(a.dtype)))
            abort();
        dc__npy_free(&b);
        dc__npy_free(&a);
    }
    /* the public loader: converts int32 to int64, refuses float64 */
    dc_tensor t;
    if (dc_tensor_load_npy(&t, path, &err) == DC_OK) {
        if (!t.f32 == !t.i64) abort();
        dc_tensor_free(&t);
    } else {
        fuzz_check_msg(err.msg);
    }
    return 0;
}
