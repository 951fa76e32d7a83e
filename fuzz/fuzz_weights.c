/* fuzz/fuzz_weights.c - libFuzzer target: the .dcw loader on any bytes.

   The loader (nn/weights.c) promises to validate every size, offset, kind
   and shape before a pointer into the mapping is used, and the model
   builders (DiT, VAE, CLIP, tokenizer) promise to refuse any metadata or
   tensor that does not fit their config. This target holds them to it:
   for each input it opens the file, walks every lookup the rest of dc
   makes (typed metadata getters, string arrays, tensor lookup, row decode),
   builds a tokenizer when the file has one, and loads it as a model
   (dc_model_load: every family builder) and prints its info.

   A fuzzer cannot forge the checksum, so by default the harness fixes up
   the file-size field and the checksum trailer of each input (rounded down
   to a multiple of 8 bytes) so that mutations reach the parser. Inputs whose
   length is not a multiple of 8 are written as they are, which keeps the
   size and checksum refusals covered too.

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../nn/nn.h"

#define FUZZ_DCW_MIN 80  /* header + checksum trailer */

static void wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Every lookup the engine makes, on every entry the file declares. */
static void fuzz_walk(const dc__weights *w)
{
    dc_error err;
    char key[256], buf[64];
    for (int i = 0; i < w->n_meta; i++) {
        const dc__meta *m = &w->meta[i];
        memcpy(key, m->key, (size_t)m->key_len);
        key[m->key_len] = 0;
        if (dc__meta_find(w, key) == NULL && !memchr(key, 0, (size_t)m->key_len)) abort();
        int64_t iv;
        double fv, arr[4];
        int64_t iarr[4];
        uint32_t n;
        switch (m->kind) {
        case DC_META_INT: dc__meta_int(w, key, &iv, &err); break;
        case DC_META_FLOAT: dc__meta_float(w, key, &fv, &err); break;
        case DC_META_STR: dc__meta_str(w, key, buf, sizeof buf, &err); break;
        case DC_META_INTS: dc__meta_ints(w, key, iarr, 4, &n, &err); break;
        case DC_META_FLOATS: dc__meta_floats(w, key, arr, 4, &n, &err); break;
        case DC_META_STRS:
            for (uint32_t k = 0; k < m->count && k < 64; k++) {
                const char *s;
                uint32_t len;
                if (dc__meta_strs_at(w, key, k, &s, &len, &err) == DC_OK && len) {
                    /* the string must lie inside the mapping */
                    volatile char last = s[len - 1];
                    (void)last;
                }
            }
            break;
        }
        /* asking for the wrong kind must be a clean error */
        dc__meta_int(w, key, &iv, &err);
        dc__meta_str(w, key, buf, sizeof buf, &err);
    }
    for (int i = 0; i < w->n_tensors; i++) {
        const dc__tensor *t = &w->tensors[i];
        memcpy(key, t->name, (size_t)t->name_len);
        key[t->name_len] = 0;
        const dc__tensor *got;
        if (!memchr(key, 0, (size_t)t->name_len) &&
            (dc__tensor_get(w, key, t->ndim, t->shape, &got, &err) != DC_OK || got->offset != t->offset))
            abort(); /* every tensor the table lists must be found again by name */
        /* decode the first and the last row: reads the data (and q8 scales) at both ends */
        int64_t cols = t->numel / t->shape[0];
        if (cols > (1 << 16)) continue;
        float *row = malloc(sizeof(float) * (size_t)cols);
        if (!row) abort();
        dc__decode_rows(row, t, 0, 1);
        dc__decode_rows(row, t, t->shape[0] - 1, t->shape[0]);
        free(row);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t *copy;
    static size_t copy_cap;
    if (size > (8u << 20)) return 0; /* the seeds are tens of kB; keep runs fast */
    const uint8_t *file = data;
    if (size >= FUZZ_DCW_MIN && size % 8 == 0) {
        /* fix up size and checksum (see the top comment) */
        if (size > copy_cap) {
            free(copy);
            if (!(copy = malloc(size))) abort();
            copy_cap = size;
        }
        memcpy(copy, data, size);
        wr64(copy + 16, size);
        uint64_t s1, s2;
        dc__checksum(copy, size - 16, &s1, &s2);
        wr64(copy + size - 16, s1);
        wr64(copy + size - 8, s2);
        file = copy;
    }
    const char *path = fuzz_file(file, size);

    dc_error err;
    dc__weights w;
    if (dc__weights_open(&w, path, 1, &err) != DC_OK) {
        fuzz_check_msg(err.msg);
        return 0;
    }
    fuzz_walk(&w);
    if (dc__meta_find(&w, "tokenizer.vocab")) {
        dc__tokenizer tok;
        if (dc__tokenizer_build(&tok, &w, &err) == DC_OK) {
            int64_t ids[DC_TOKENIZER_MAX_LENGTH];
            int n, cut;
            if (dc__tokenize(&tok, "a photo of a cat, &amp; \xce\xa3\xce\xa3 don't 123", ids, &n, &cut,
                             &err) == DC_OK)
                for (int i = 0; i < tok.max_length; i++)
                    if (ids[i] < 0 || ids[i] >= tok.n_vocab) abort();
            dc__tokenizer_free(&tok);
        } else {
            fuzz_check_msg(err.msg);
        }
    }
    dc__weights_close(&w);

    /* the whole model: family builders look up and shape-check every tensor */
    dc_model *m = NULL;
    dc_load_opts opts = {1, DC_COMPUTE_F32};
    if (dc_model_load(&m, path, &opts, &err) == DC_OK) {
        dc_model_print_info(m, fuzz_devnull(), 1);
        dc_ctx *c = NULL;
        if (dc_ctx_new(&c, m, &err) == DC_OK) {
            /* class-conditional models: the class names in the metadata */
            dc_classes *cl = NULL;
            if (!strcmp(dc_model_family(m), "dit") &&
                dc_classes_new(&cl, c, NULL, 0, NULL, &err) == DC_OK) {
                for (int i = 0; i < dc_classes_count(cl); i++)
                    if (!dc_classes_name(cl, i)) abort();
                dc_classes_free(cl);
            }
            dc_ctx_free(c);
        }
        dc_model_free(m);
    } else {
        fuzz_check_msg(err.msg);
    }
    return 0;
}
