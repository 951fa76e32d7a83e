/* fuzz/fuzz_tokenizer.c - libFuzzer target: CLIP's BPE tokenizer on any text.

   dc__tokenize (nn/tokenizer.c) takes whatever bytes a user types as a
   class name or prompt: invalid UTF-8, HTML character references, NULs,
   64 kB of one character. For every input it must return ids laid out as
   CLIP's are (bos, BPE tokens, eos, then pad), every id inside the
   vocabulary, and a token count that agrees with the truncation flag.

   The tokenizer comes from a .dcw written by tools/refs/prepare_tokenizer.py:
   $DC_FUZZ_TOKENIZER, else build/fuzz/tmp/tokenizer_sd1.dcw (CLIP's real
   49408-token vocabulary, made from tests/fixtures/clip_tokenizer), else
   build/fuzz/tmp/tokenizer_tiny.dcw (a synthetic byte-level one).

   Build and run: make fuzz (fuzz/Makefile.inc). */
#include "fuzz_util.h"
#include "../nn/nn.h"

static dc__tokenizer fuzz_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *cands[] = {getenv("DC_FUZZ_TOKENIZER"), "build/fuzz/tmp/tokenizer_sd1.dcw",
                           "build/fuzz/tmp/tokenizer_tiny.dcw"};
    for (int i = 0; i < 3; i++) {
        if (!cands[i]) continue;
        dc_error err;
        dc__weights w;
        if (dc__weights_open(&w, cands[i], 1, &err) != DC_OK) {
            if (i == 0) fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
            continue;
        }
        dc_status st = dc__tokenizer_build(&fuzz_tok, &w, &err);
        dc__weights_close(&w);
        if (st != DC_OK) {
            fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
            abort();
        }
        fprintf(stderr, "fuzz_tokenizer: %s (%d tokens, %d merges)\n", cands[i], fuzz_tok.n_vocab,
                fuzz_tok.n_merges);
        return 0;
    }
    fprintf(stderr, "fuzz_tokenizer: no tokenizer .dcw found; run tools/refs/prepare_tokenizer.py "
            "build/fuzz/tmp tests/fixtures or set DC_FUZZ_TOKENIZER\n");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * DC_TOKENIZER_MAX_TEXT) return 0;
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = 0;
    const dc__tokenizer *t = &fuzz_tok;
    int64_t ids[DC_TOKENIZER_MAX_LENGTH];
    int n = -1, cut = -1;
    dc_error err;
    if (dc__tokenize(t, text, ids, &n, &cut, &err) != DC_OK) {
        fprintf(stderr, "tokenize failed: %s\n", err.msg);
        abort(); /* only NULL arguments and out-of-memory may fail */
    }
    int L = t->max_length, body = n < L - 2 ? n : L - 2;
    if (n < 0 || (cut != 0 && cut != 1) || (n > L - 2 && !cut)) abort();
    if (strlen(text) <= DC_TOKENIZER_MAX_TEXT && cut != (n > L - 2)) abort();
    if (ids[0] != t->bos_id || ids[body + 1] != t->eos_id) abort();
    for (int i = 0; i < L; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab) abort();
        if (i > body + 1 && ids[i] != t->pad_id) abort();
        const uint8_t *bytes;
        int plen, eow;
        if (dc__tokenizer_piece(t, ids[i], &bytes, &plen, &eow, &err) != DC_OK || plen < 0) abort();
    }
    free(text);
    return 0;
}
