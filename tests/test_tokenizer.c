/* tests/test_tokenizer.c - CLIP's BPE tokenizer (nn/tokenizer.c) against
   the golden fixture made with openai/CLIP's simple_tokenizer
   (tests/fixtures/clip_tokenizer: 40 prompts, SD 1.x and SD 2.x
   padding, exact ids), against a Python implementation of the same on
   strings built to hit the corners (tests/data/tokenizer/crosscheck.tsv:
   HTML references, final sigma, invalid UTF-8, contractions, rare white
   space, long inputs), and its Unicode tables against Python for every
   code point. Also: truncation, empty prompts, hostile input (invalid
   UTF-8, a megabyte of random bytes, one huge word), sharing between
   threads, and the errors of a bad tokenizer file. Model files are written
   by tools/refs/prepare_tokenizer.py. */
#include "test.h"

#include <stdlib.h>
#include <time.h>

typedef struct {
    dc__weights w;
    dc__tokenizer t;
    int ok;
} tok_model;

/* Opens TMP/<name> and builds its tokenizer; fails the test if it cannot. */
static int tt_load(tok_model *m, const char *name)
{
    dc_error err;
    memset(m, 0, sizeof *m);
    if (!t_weights(&m->w, t_path(T.tmp, "%s", name))) return 0;
    if (dc__tokenizer_build(&m->t, &m->w, &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
        dc__weights_close(&m->w);
        return 0;
    }
    m->ok = 1;
    return 1;
}

static void tt_unload(tok_model *m)
{
    if (!m->ok) return;
    dc__tokenizer_free(&m->t);
    dc__weights_close(&m->w);
    m->ok = 0;
}

static int tt_have_fixture(void)
{
    return t_readable(t_path(T.fixtures, "clip_tokenizer/ids_sd1.npy"));
}

/* Hex text -> bytes (NUL-terminated, malloc'ed); NULL if it is not hex. */
static char *tt_unhex(const char *s, size_t n)
{
    char *out = malloc(n / 2 + 1);
    if (!out || n % 2) {
        free(out);
        return NULL;
    }
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        char two[3] = {s[2 * i], s[2 * i + 1], 0};
        if (sscanf(two, "%2x", &v) != 1) {
            free(out);
            return NULL;
        }
        out[i] = (char)v;
    }
    out[n / 2] = 0;
    return out;
}

/* Checks ids[0..L) = bos, want[0..min(n, L-2)), eos, pad...; prints the
   first difference. */
static int tt_check_ids(const dc__tokenizer *t, const int64_t *ids, const int64_t *want, int n,
                        const char *label)
{
    int L = t->max_length, kept = n < L - 2 ? n : L - 2;
    for (int i = 0; i < L; i++) {
        int64_t w = i == 0 ? t->bos_id : i <= kept ? want[i - 1] : i == kept + 1 ? t->eos_id : t->pad_id;
        if (ids[i] != w) {
            CHECK(0, "%s: id %d is %lld, want %lld", label, i, (long long)ids[i], (long long)w);
            return 0;
        }
    }
    return 1;
}

/* ---- Unicode tables ---- */

static void tokenizer_unicode_tables_should_match_python_for_every_code_point(void)
{
    size_t size;
    unsigned char *ref = (unsigned char *)t_read_file(t_path(T.tmp, "tokenizer_unicode.bin"), &size);
    if (!ref || size < 0x110000 + 4) {
        CHECK(0, "tokenizer_unicode.bin missing or short (run tools/refs/prepare_tests.py)");
        free(ref);
        return;
    }
    int bad_flags = 0, bad_lower = 0, changed = 0;
    for (uint32_t c = 0; c < 0x110000; c++) {
        int f = dc__tok_unicode_flags(c);
        if (f != ref[c] && bad_flags++ < 5)
            CHECK(0, "U+%04X: flags %d, Python says %d", (unsigned)c, f, ref[c]);
    }
    /* lower case: the listed code points, and every other one maps to itself */
    const unsigned char *p = ref + 0x110000;
    uint32_t count = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    CHECK(size == 0x110000 + 4 + 16ull * count, "tokenizer_unicode.bin: bad size");
    unsigned char *listed = calloc(0x110000, 1);
    for (uint32_t k = 0; listed && size == 0x110000 + 4 + 16ull * count && k < count; k++) {
        uint32_t v[4];
        for (int j = 0; j < 4; j++) {
            const unsigned char *q = p + 4 + 16 * k + 4 * j;
            v[j] = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        }
        uint32_t got[2] = {0, 0};
        int n = v[0] < 0x110000 ? dc__tok_lower(v[0], got) : 0;
        if (v[0] < 0x110000) listed[v[0]] = 1;
        if ((n != (int)v[1] || got[0] != v[2] || (n == 2 && got[1] != v[3])) && bad_lower++ < 5)
            CHECK(0, "lower(U+%04X) = U+%04X (%d), Python says U+%04X (%u)", (unsigned)v[0],
                  (unsigned)got[0], n, (unsigned)v[2], (unsigned)v[1]);
        changed++;
    }
    for (uint32_t c = 0; listed && c < 0x110000; c++) {
        uint32_t got[2];
        if (!listed[c] && (dc__tok_lower(c, got) != 1 || got[0] != c) && bad_lower++ < 5)
            CHECK(0, "lower(U+%04X) = U+%04X, Python leaves it", (unsigned)c, (unsigned)got[0]);
    }
    printf("  1114112 code points: %d flag and %d lower-case differences (%d lower-case "
           "mappings)\n", bad_flags, bad_lower, changed);
    CHECK(!bad_flags && !bad_lower, "Unicode tables differ from Python");
    free(listed);
    free(ref);
}

/* ---- the golden fixture ---- */

static void tt_fixture(const char *model, const char *ids_file, const char *label)
{
    NEED(tt_have_fixture(), "tests/fixtures/clip_tokenizer missing (part of the repository)");
    tok_model m;
    dc__npy want = {0};
    dc_error err;
    char *prompts = t_read_file(t_path(T.tmp, "tokenizer_prompts.txt"), NULL);
    CHECK(prompts != NULL, "tokenizer_prompts.txt missing (run tools/refs/prepare_tests.py)");
    if (!prompts || !tt_load(&m, model)) {
        free(prompts);
        return;
    }
    if (dc__npy_load(&want, t_path(T.fixtures, "clip_tokenizer/%s", ids_file), &err) != DC_OK) {
        CHECK(0, "%s", err.msg);
    } else if (want.dtype != DC_NPY_I64 || want.ndim != 2 || want.shape[1] != 77) {
        CHECK(0, "%s: expected int64 [n, 77]", ids_file);
    } else {
        const int64_t *w = want.data;
        int rows = 0, exact = 0;
        char *line = prompts;
        for (int r = 0; r < want.shape[0] && *line; r++) {
            char *nl = strchr(line, '\n');
            char *tab = strchr(line, '\t');
            int want_n = -1, want_cut = -1;   /* the fixture's count includes bos and eos */
            if (!tab || (nl && tab > nl) || sscanf(tab, "%d %d", &want_n, &want_cut) != 2) tab = NULL;
            char *text = tab ? tt_unhex(line, (size_t)(tab - line)) : NULL;
            int64_t ids[DC_TOKENIZER_MAX_LENGTH];
            int n, cut;
            rows++;
            if (!text || dc__tokenize(&m.t, text, ids, &n, &cut, &err) != DC_OK) {
                CHECK(0, "row %d: %s", r, text ? err.msg : "malformed line");
            } else {
                int same = !memcmp(ids, w + 77 * r, sizeof ids);
                exact += same;
                CHECK(same, "%s row %d (\"%.40s\"): ids differ from the fixture", label, r, text);
                CHECK(cut == want_cut && (cut ? n > 75 : n == want_n - 2),
                      "row %d: n_tokens %d, truncated %d; the fixture says %d with bos and eos, "
                      "truncated %d", r, n, cut, want_n, want_cut);
            }
            free(text);
            line = nl ? nl + 1 : line + strlen(line);
        }
        printf("  %s: %d of %d prompts exactly equal (77 ids each)\n", label, exact, rows);
        CHECK(rows == want.shape[0], "%d prompts for %lld rows", rows, (long long)want.shape[0]);
    }
    dc__npy_free(&want);
    free(prompts);
    tt_unload(&m);
}

static void tokenizer_should_match_the_fixture_with_sd1_padding(void)
{
    tt_fixture("tokenizer_sd1.dcw", "ids_sd1.npy", "SD 1.x (pad <|endoftext|>)");
}

static void tokenizer_should_match_the_fixture_with_sd2_padding(void)
{
    tt_fixture("tokenizer_sd2.dcw", "ids_sd2.npy", "SD 2.x (pad '!' = 0)");
}

/* ---- the Python cross-check ---- */

static void tokenizer_should_match_python_on_corner_cases(void)
{
    NEED(tt_have_fixture(), "tests/fixtures/clip_tokenizer missing (part of the repository)");
    char *file = t_read_file(t_path(T.data, "tokenizer/crosscheck.tsv"), NULL);
    tok_model m;
    CHECK(file != NULL, "tests/data/tokenizer/crosscheck.tsv missing");
    if (!file || !tt_load(&m, "tokenizer_sd1.dcw")) {
        free(file);
        return;
    }
    int cases = 0, exact = 0, truncated_cases = 0;
    int64_t *want = malloc(sizeof *want * 100000);
    for (char *line = file; want && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        char *tab = strchr(line, '\t');
        char *text = tab ? tt_unhex(line, (size_t)(tab - line)) : NULL;
        char *p = tab ? tab + 1 : NULL;
        long want_n = p ? strtol(p, &p, 10) : -1;
        int nw = 0;
        while (p && *p && nw < 100000) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p) break;
            want[nw++] = v;
            p = q;
        }
        cases++;
        int64_t ids[DC_TOKENIZER_MAX_LENGTH];
        int n = -1, cut = -1;
        dc_error err;
        if (!text || want_n != nw) {
            CHECK(0, "crosscheck.tsv line %d is malformed", cases);
        } else if (dc__tokenize(&m.t, text, ids, &n, &cut, &err) != DC_OK) {
            CHECK(0, "case %d: %s", cases, err.msg);
        } else {
            int ok = tt_check_ids(&m.t, ids, want, nw, "crosscheck");
            CHECK(n == nw && cut == (nw > 75), "case %d: n_tokens %d (want %d), truncated %d", cases,
                  n, nw, cut);
            if (!ok || n != nw) printf("  case %d input (hex): %.*s\n", cases, (int)(tab - line), line);
            exact += ok && n == nw;
            truncated_cases += nw > 75;
        }
        free(text);
        line = nl ? nl + 1 : line + strlen(line);
    }
    printf("  %d of %d strings give Python's ids and token count (%d of them truncated)\n", exact,
           cases, truncated_cases);
    CHECK(cases >= 200, "only %d cases read", cases);
    free(want);
    free(file);
    tt_unload(&m);
}

/* ---- behaviour ---- */

static int32_t tt_piece_id(const dc__tokenizer *t, const char *raw, int eow)
{
    for (int id = 0; id < t->n_vocab; id++) {
        const uint8_t *b;
        int len, e;
        dc_error err;
        if (dc__tokenizer_piece(t, id, &b, &len, &e, &err) == DC_OK && e == eow &&
            len == (int)strlen(raw) && !memcmp(b, raw, (size_t)len))
            return id;
    }
    return -1;
}

static void tokenizer_should_merge_by_rank_and_leave_overlaps_unmerged(void)
{
    tok_model m;
    if (!tt_load(&m, "tokenizer_tiny.dcw")) return;
    dc_error err;
    int64_t ids[DC_TOKENIZER_MAX_LENGTH];
    int n, cut;
    /* tiny merges: c a, ca t</w>, d o, do g</w>, t h, th e</w>, a a, aa a</w>,
       p q, opq o, o pq */
    struct { const char *text; const char *pieces[6]; int eow[6]; } cases[] = {
        {"The CAT", {"the", "cat"}, {1, 1}},
        {"dog's", {"dog", "'", "s"}, {1, 0, 1}},    /* 's is a word; no merge joins it */
        {"aaa", {"aaa"}, {1}},
        {"aaaa", {"aa", "a", "a"}, {0, 0, 1}},      /* a a a a</w>: (a,a) merges at 0 and 2 */
        {"aaaaa", {"aa", "aaa"}, {0, 1}},
        {"ca", {"c", "a"}, {0, 1}},                  /* 'a</w>' is not 'a': no merge */
        /* p q, then the round of (o, pq) makes opq opq z</w> before the
           better-ranked (opq, o) may be looked at: it never gets the chance */
        {"opqopqz", {"opq", "opq", "z"}, {0, 0, 1}},
    };
    /* "aaaaa" = a a a a a</w>: the round of (a,a) merges positions 0-1 and
       2-3 (not 1-2), giving aa aa a</w>, then (aa, a</w>) merges. */
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int64_t want[6];
        int nw = 0;
        for (; nw < 6 && cases[c].pieces[nw]; nw++) {
            want[nw] = tt_piece_id(&m.t, cases[c].pieces[nw], cases[c].eow[nw]);
            CHECK(want[nw] >= 0, "no token '%s'", cases[c].pieces[nw]);
        }
        if (dc__tokenize(&m.t, cases[c].text, ids, &n, &cut, &err) != DC_OK) {
            CHECK(0, "%s", err.msg);
            continue;
        }
        tt_check_ids(&m.t, ids, want, nw, cases[c].text);
        CHECK(n == nw && !cut, "\"%s\": %d tokens, want %d", cases[c].text, n, nw);
    }
    tt_unload(&m);
}

static void tokenizer_should_give_bos_eos_and_padding_for_empty_prompts(void)
{
    tok_model m;
    if (!tt_load(&m, "tokenizer_tiny.dcw")) return;
    const char *texts[] = {"", " ", " \t\r\n\x0b\x0c\x1c\x1f ", "\xc2\xa0\xe3\x80\x80", "&#32;&nbsp;"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        int64_t ids[DC_TOKENIZER_MAX_LENGTH];
        int n = -1, cut = -1;
        dc_error err;
        CHECK(dc__tokenize(&m.t, texts[i], ids, &n, &cut, &err) == DC_OK, "%s", err.msg);
        CHECK(n == 0 && cut == 0, "text %zu: n_tokens %d, truncated %d", i, n, cut);
        tt_check_ids(&m.t, ids, NULL, 0, "empty");
    }
    tt_unload(&m);
}

static void tokenizer_should_keep_the_end_token_last_when_truncating(void)
{
    tok_model m;
    if (!tt_load(&m, "tokenizer_tiny.dcw")) return;
    /* 100 words "cat" -> 100 tokens: bos, 75 x cat</w>, eos */
    char text[500] = "";
    for (int i = 0; i < 100; i++) strcat(text, "cat ");
    int64_t ids[DC_TOKENIZER_MAX_LENGTH], want[100];
    int n, cut;
    dc_error err;
    int32_t cat = tt_piece_id(&m.t, "cat", 1);
    for (int i = 0; i < 100; i++) want[i] = cat;
    CHECK(dc__tokenize(&m.t, text, ids, &n, &cut, &err) == DC_OK, "%s", err.msg);
    CHECK(n == 100 && cut == 1, "n_tokens %d, truncated %d", n, cut);
    tt_check_ids(&m.t, ids, want, 100, "100 tokens");
    CHECK(ids[76] == m.t.eos_id, "position 76 holds %lld", (long long)ids[76]);
    /* exactly 75 tokens fit; 76 do not */
    text[75 * 4] = 0;
    CHECK(dc__tokenize(&m.t, text, ids, &n, &cut, &err) == DC_OK && n == 75 && !cut &&
              ids[75] == cat && ids[76] == m.t.eos_id,
          "75 tokens: n %d, truncated %d", n, cut);
    strcpy(text + 75 * 4, "cat");
    CHECK(dc__tokenize(&m.t, text, ids, &n, &cut, &err) == DC_OK && n == 76 && cut &&
              ids[76] == m.t.eos_id,
          "76 tokens: n %d, truncated %d", n, cut);
    tt_unload(&m);

    /* a shorter context (max_length 8): 6 tokens kept, nothing written past 8 */
    if (!tt_have_fixture()) return;
    if (!tt_load(&m, "tokenizer_short.dcw")) return;
    int64_t guard[DC_TOKENIZER_MAX_LENGTH];
    for (int i = 0; i < DC_TOKENIZER_MAX_LENGTH; i++) guard[i] = -7;
    CHECK(m.t.max_length == 8, "max_length %d", m.t.max_length);
    CHECK(dc__tokenize(&m.t, "a photo of a golden retriever, by a lake", guard, &n, &cut, &err) ==
              DC_OK, "%s", err.msg);
    CHECK(n == 10 && cut == 1 && guard[0] == m.t.bos_id && guard[7] == m.t.eos_id &&
              guard[8] == -7 && guard[76] == -7,
          "max_length 8: n %d, truncated %d, ids[7] %lld, ids[8] %lld", n, cut, (long long)guard[7],
          (long long)guard[8]);
    tt_unload(&m);
}

/* xorshift: the same bytes on every machine */
static uint32_t tt_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void tt_hostile(const char *model)
{
    tok_model m;
    if (!tt_load(&m, model)) return;
    size_t big = 1 << 20;
    char *text = malloc(big + 1);
    uint32_t seed = 12345;
    int64_t ids[DC_TOKENIZER_MAX_LENGTH];
    int n, cut;
    dc_error err;
    const char *invalid[] = {"\x80", "\xc0\x80", "\xed\xa0\x80 cat", "\xf4\x90\x80\x80", "\xe2\x82",
                             "caf\xc3", "\xff\xfe\xfd", "&#xD800;&#0;&#x110000;&#99999999999999999999",
                             "&&&&;;;##&#x;&#;&", "\xcc\x85\xcd\x85\xcd\x85"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++) {
        CHECK(dc__tokenize(&m.t, invalid[i], ids, &n, &cut, &err) == DC_OK, "%s", err.msg);
        for (int k = 0; k < m.t.max_length; k++)
            CHECK(ids[k] >= 0 && ids[k] < m.t.n_vocab, "invalid input %zu: id %lld", i, (long long)ids[k]);
    }
    /* inputs of 1 MB: random non-NUL bytes, one huge word, invalid bytes, spaces, words */
    for (int kind = 0; text && kind < 5; kind++) {
        for (size_t i = 0; i < big; i++) {
            uint32_t r = tt_rand(&seed);
            text[i] = kind == 0 ? (char)(1 + r % 255) : kind == 1 ? 'x' : kind == 2 ? (char)0xff
                    : kind == 3 ? ' ' : "a photo of a cat "[i % 17];
        }
        text[big] = 0;
        clock_t t0 = clock();
        dc_status st = dc__tokenize(&m.t, text, ids, &n, &cut, &err);
        double ms = 1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK(st == DC_OK, "%s", err.msg);
        int in_range = 1;
        for (int k = 0; k < m.t.max_length; k++) in_range &= ids[k] >= 0 && ids[k] < m.t.n_vocab;
        CHECK(in_range && ids[0] == m.t.bos_id, "kind %d: ids out of range", kind);
        CHECK(cut == 1 && (kind == 3 ? n == 0 : n > 0), "kind %d: n_tokens %d, truncated %d", kind, n, cut);
        printf("  %s, 1 MB of %s: %d tokens (in the first %d KB), %.0f ms\n", model,
               (const char *[]){"random bytes", "'x'", "0xff", "spaces", "words"}[kind], n,
               DC_TOKENIZER_MAX_TEXT / 1024, ms);
    }
    free(text);
    tt_unload(&m);
}

static void tokenizer_should_survive_invalid_utf8_and_megabytes_of_junk(void)
{
    tt_hostile("tokenizer_tiny.dcw");
    if (tt_have_fixture()) tt_hostile("tokenizer_sd1.dcw");
}

static void tokenizer_should_give_the_same_ids_from_many_threads(void)
{
    NEED(tt_have_fixture(), "tests/fixtures/clip_tokenizer missing (part of the repository)");
    tok_model m;
    clock_t t0 = clock();
    if (!tt_load(&m, "tokenizer_sd1.dcw")) return;
    printf("  open + build (49408 tokens, 48894 merges): %.1f ms\n",
           1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC);
    enum { N = 4000 };
    static const char *words[] = {"a photo of a", "tabby", "golden retriever", "Abyssinian",
                                  "jack-o'-lantern", "crème brûlée", "東京", "&amp;", "Σ",
                                  "highly detailed", "8k", "the", "dog's"};
    char (*texts)[160] = malloc(sizeof *texts * N);
    int64_t (*serial)[DC_TOKENIZER_MAX_LENGTH] = malloc(sizeof *serial * N);
    int64_t (*par)[DC_TOKENIZER_MAX_LENGTH] = malloc(sizeof *par * N);
    uint32_t seed = 777;
    int bad = 0;
    for (int i = 0; texts && i < N; i++) {
        texts[i][0] = 0;
        for (int w = 0; w < 1 + (int)(tt_rand(&seed) % 8); w++) {
            strcat(texts[i], words[tt_rand(&seed) % (sizeof words / sizeof *words)]);
            strcat(texts[i], " ");
        }
    }
    if (!texts || !serial || !par) goto done;
    t0 = clock();
    for (int i = 0; i < N; i++) {
        dc_error err;
        bad += dc__tokenize(&m.t, texts[i], serial[i], NULL, NULL, &err) != DC_OK;
    }
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    printf("  %d prompts in %.3f s (%.1f us each)\n", N, s, 1e6 * s / N);
#pragma omp parallel for schedule(dynamic, 16) reduction(+ : bad)
    for (int i = 0; i < N; i++) {
        dc_error err;
        bad += dc__tokenize(&m.t, texts[i], par[i], NULL, NULL, &err) != DC_OK;
    }
    CHECK(!bad, "%d calls failed", bad);
    CHECK(!memcmp(serial, par, sizeof *par * N), "threads gave other ids than one thread");
    /* and a prompt is always tokenized the same way */
    CHECK(serial[0][0] == m.t.bos_id, "no bos");
done:
    free(texts);
    free(serial);
    free(par);
    tt_unload(&m);
}

/* ---- errors ---- */

/* Building the tokenizer of TMP/<file> fails with status want and a
   message holding both expected parts. */
static void tokenizer_build_should_fail(const char *file, dc_status want, const char *part1, const char *part2)
{
    dc__weights w;
    dc__tokenizer t;
    dc_error err;
    if (!t_weights(&w, t_path(T.tmp, "%s", file))) return;
    dc_status st = dc__tokenizer_build(&t, &w, &err);
    printf("  %s\n", err.msg);
    CHECK(st == want && strstr(err.msg, part1) && strstr(err.msg, part2), "status %d: %s", st, err.msg);
    dc__tokenizer_free(&t);     /* safe after a failed build */
    dc__weights_close(&w);
}

static void tokenizer_should_name_a_missing_vocabulary(void)
{
    tokenizer_build_should_fail("tokenizer_tiny_novocab.dcw", DC_ERR_MISSING, "'tokenizer.vocab' is missing", "");
}

static void tokenizer_should_refuse_a_merge_outside_the_vocabulary(void)
{
    tokenizer_build_should_fail("tokenizer_tiny_nomerge.dcw", DC_ERR_FORMAT, "'q z</w>'", "not in tokenizer.vocab");
}

static void tokenizer_should_refuse_null_arguments_and_bad_ids(void)
{
    tok_model m;
    if (!tt_load(&m, "tokenizer_tiny.dcw")) return;
    int64_t ids[DC_TOKENIZER_MAX_LENGTH];
    dc_error err;
    const uint8_t *b;
    int len, eow;
    CHECK(dc__tokenize(&m.t, NULL, ids, NULL, NULL, &err) == DC_ERR_INVALID, "NULL text accepted");
    CHECK(dc__tokenizer_piece(&m.t, m.t.n_vocab, &b, &len, &eow, &err) == DC_ERR_INVALID,
          "id n_vocab accepted");
    CHECK(dc__tokenizer_piece(&m.t, m.t.eos_id, &b, &len, &eow, &err) == DC_OK && len == 13 &&
              !memcmp(b, "<|endoftext|>", 13) && !eow,
          "eos piece");
    tt_unload(&m);
}

void suite_tokenizer(void)
{
    RUN(tokenizer_unicode_tables_should_match_python_for_every_code_point);
    RUN(tokenizer_should_match_the_fixture_with_sd1_padding);
    RUN(tokenizer_should_match_the_fixture_with_sd2_padding);
    RUN(tokenizer_should_match_python_on_corner_cases);
    RUN(tokenizer_should_merge_by_rank_and_leave_overlaps_unmerged);
    RUN(tokenizer_should_give_bos_eos_and_padding_for_empty_prompts);
    RUN(tokenizer_should_keep_the_end_token_last_when_truncating);
    RUN(tokenizer_should_survive_invalid_utf8_and_megabytes_of_junk);
    RUN(tokenizer_should_give_the_same_ids_from_many_threads);
    RUN(tokenizer_should_name_a_missing_vocabulary);
    RUN(tokenizer_should_refuse_a_merge_outside_the_vocabulary);
    RUN(tokenizer_should_refuse_null_arguments_and_bad_ids);
}
