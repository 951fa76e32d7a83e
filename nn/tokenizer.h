/* nn/tokenizer.h - CLIP's byte-level BPE tokenizer (nn/tokenizer.c), which
   turns a Stable Diffusion prompt into the 77 token ids its text encoder
   reads. Included by nn/nn.h.

   It does what openai/CLIP's simple_tokenizer.py does (ftfy left out, as
   in the golden fixture tests/fixtures/clip_tokenizer):

     text -> html.unescape twice, strip -> whitespace runs to one space
          -> str.lower() -> CLIP's regex split into words -> bytes of each
          word -> BPE merges by rank ('</w>' on the last byte) -> ids
     ids = bos, the first max_length-2 tokens, eos, then pad_id up to max_length

   The vocabulary and merges come from the model file's metadata (written by
   tools/convert/convert_tokenizer.py):

     tokenizer.vocab              string array, index = id
     tokenizer.merges             string array "left right", rank order
     tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id, tokenizer.max_length (ints)
     tokenizer.html_entity_names, tokenizer.html_entity_values  (string arrays)

   Usage:
     dc__tokenizer tok;
     if (dc__tokenizer_build(&tok, &weights, &err) != DC_OK) ...  // err names the key
     int64_t ids[DC_TOKENIZER_MAX_LENGTH]; int n, cut;
     dc__tokenize(&tok, "a photo of a cat", ids, &n, &cut, &err);
     dc__tokenizer_free(&tok);

   The tokenizer owns copies of everything it needs (the weights may be
   closed after build), is read-only after build and may be shared by
   threads; dc__tokenize allocates its scratch per call and frees it.

   Exact where it can be: the Unicode tables (letters, numbers, white space,
   lower case, the Final_Sigma rule of str.lower) are generated from Python
   3.11's unicodedata (Unicode 14.0), so characters assigned later count as
   symbols; invalid UTF-8 is read as Python's bytes.decode('utf-8',
   'replace') reads it (one U+FFFD per maximal invalid subpart); only the
   first DC_TOKENIZER_MAX_TEXT bytes of a prompt are read. */
#ifndef DC_NN_TOKENIZER_H
#define DC_NN_TOKENIZER_H

/* Ids per prompt: tokenizer.max_length may be smaller, never larger. */
#define DC_TOKENIZER_MAX_LENGTH 77
/* Bytes of a prompt that are read (75 tokens take about 400); the rest is
   ignored and the prompt counts as truncated. Bounds time and memory for
   any input (a few MB of scratch at most). */
#define DC_TOKENIZER_MAX_TEXT (64 * 1024)

typedef struct {
    int32_t left, right;    /* token ids; left = -1: empty slot */
    int32_t rank;           /* line of the merge: lower merges first */
    int32_t merged;         /* id of left+right */
} dc__tok_merge;

typedef struct {
    uint32_t name_off;      /* into names */
    uint8_t name_len;       /* 1..33 ASCII bytes, ';' included when the name has it */
    uint8_t n_values;       /* 1 or 2 code points */
    uint32_t value[2];
} dc__tok_entity;

typedef struct {
    int n_vocab;                /* ids are in [0, n_vocab) */
    int bos_id, eos_id, pad_id; /* <|startoftext|>, <|endoftext|>, what pads */
    int max_length;             /* ids per prompt, 2..DC_TOKENIZER_MAX_LENGTH */
    int n_merges;
    /* the vocabulary with the byte-level mapping undone: token id i is the
       raw bytes bytes[off[i] .. off[i+1]), plus '</w>' when eow[i] is 1;
       eow[i] is 2 for the few tokens that are not byte-level strings (none in
       CLIP's vocabulary), which BPE can never produce */
    uint8_t *bytes;             /* [off[n_vocab]] */
    uint32_t *off;              /* [n_vocab + 1] */
    uint8_t *eow;               /* [n_vocab] */
    int32_t *vocab_slots;       /* [vocab_mask + 1] open addressing: id or -1 */
    uint32_t vocab_mask;
    int32_t byte_id[256][2];    /* the token of one byte, without / with '</w>' */
    dc__tok_merge *merge_slots; /* [merge_mask + 1] open addressing on (left, right) */
    uint32_t merge_mask;
    /* HTML named character references (Python's html.entities.html5) */
    dc__tok_entity *entities;   /* [n_entities] */
    int n_entities;
    char *entity_names;         /* the names, concatenated */
    int32_t *entity_slots;      /* [entity_mask + 1] open addressing: index or -1 */
    uint32_t entity_mask;
} dc__tokenizer;

/* Reads tokenizer.* metadata and builds the lookup tables. Every key is
   required; a vocabulary lacking a byte token, a duplicate token, a merge
   whose parts or result are not in the vocabulary, or ids out of range are
   errors naming the key and the entry. On error t is left freed. */
dc_status dc__tokenizer_build(dc__tokenizer *t, const dc__weights *w, dc_error *err);
void dc__tokenizer_free(dc__tokenizer *t);   /* NULL-safe, and safe after a failed build */

/* Tokenizes text (a NUL-terminated string of any bytes) into
   ids[0 .. t->max_length): bos, the first max_length-2 BPE tokens, eos,
   pad_id after it. *n_tokens (may be NULL) gets the number of BPE tokens
   before truncation (bos and eos not counted), so callers can warn about
   prompts over max_length-2 tokens; it counts the first
   DC_TOKENIZER_MAX_TEXT bytes only. *truncated (may be NULL) is 1 when
   tokens were dropped or the text was longer than DC_TOKENIZER_MAX_TEXT.
   Errors: DC_ERR_INVALID for NULL text, DC_ERR_NOMEM. */
dc_status dc__tokenize(const dc__tokenizer *t, const char *text, int64_t *ids, int *n_tokens,
                       int *truncated, dc_error *err);

/* Token id's raw bytes and whether it ends a word ('</w>'): for printing
   tokens (dc tokenize). A token that is not a byte-level string has no
   bytes (len 0). DC_ERR_INVALID for an id out of range. */
dc_status dc__tokenizer_piece(const dc__tokenizer *t, int64_t id, const uint8_t **bytes,
                              int *len, int *eow, dc_error *err);

/* ---- the Unicode data behind it, exposed for tests/test_tokenizer.c ---- */
enum {
    DC_TOK_LETTER = 1,          /* \p{L} */
    DC_TOK_NUMBER = 2,          /* \p{N} */
    DC_TOK_SPACE = 4,           /* the regex package's \s (Unicode White_Space) */
    DC_TOK_PYSPACE = 8,         /* str.isspace(): \s plus U+001C..U+001F */
    DC_TOK_IGNORABLE = 16,      /* Case_Ignorable (Final_Sigma skips these) */
    DC_TOK_CASED = 32           /* Cased, given only where not ignorable */
};
int dc__tok_unicode_flags(uint32_t c);
/* str.lower() of one code point: writes 1 or 2 code points, returns how many. */
int dc__tok_lower(uint32_t c, uint32_t out[2]);

#endif
