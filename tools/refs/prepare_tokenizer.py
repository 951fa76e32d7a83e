#!/usr/bin/env python3
"""tools/refs/prepare_tokenizer.py - the files tests/test_tokenizer.c reads, and the
generators of nn/tokenizer.c's Unicode tables and of tests/data/tokenizer.

    prepare_tokenizer.py TMPDIR [FIXTURES]      (called by tools/refs/prepare_tests.py)

writes into TMPDIR, through the real converter (tools/convert/convert_tokenizer.py):

  tokenizer_unicode.bin     what Python says about every code point, to check the
                            C tables against: 0x110000 flag bytes (the DC_TOK_* bits
                            of nn/tokenizer.h), then u32 count and, for every code
                            point whose str.lower() differs, u32 cp, u32 n, u32 x 2
  tokenizer_tiny.dcw        a synthetic byte-level vocabulary with a few merges
                            (tests that need no fixture: robustness, errors)
  tokenizer_tiny_nomerge.dcw  the same with a merge naming a token that is not in
                            the vocabulary (the engine must refuse it, naming it)
  tokenizer_tiny_novocab.dcw  the same without tokenizer.vocab
  tokenizer_sd1.dcw         tests/fixtures/clip_tokenizer as it is (pad <|endoftext|>)
  tokenizer_sd2.dcw         the same with SD 2.x's pad token '!' (id 0)
  tokenizer_short.dcw       the same with max_length 8
  tokenizer_prompts.txt     the fixture's prompts (prompts.json), one a line: hex of
                            their UTF-8 bytes (prompts hold tabs and newlines), a tab,
                            n_tokens_incl_bos_eos (at most 77), a tab, truncated (0/1)
  (the last four from the fixture)

    prepare_tokenizer.py --c-tables

prints the Unicode tables at the end of nn/tokenizer.c (from this Python's
unicodedata; paste them over the old ones when Python's Unicode version moves).

    python3-with-regex prepare_tokenizer.py --make-crosscheck FIXTURES OUT.tsv

writes tests/data/tokenizer/crosscheck.tsv: strings made to hit the corners
(HTML references, final sigma, invalid UTF-8, contractions, special tokens,
rare whitespace, long inputs) with the ids of a Python implementation of
openai/CLIP's SimpleTokenizer.encode (written here from its description:
regex, html.unescape and str.lower are Python's own; ftfy stubbed to identity
as in the fixture). It needs the `regex` package, which the test machines do
not have; that is why its output is committed. Each line: hex of the input
bytes (decoded with errors='replace' before tokenizing), a tab, the number of
BPE tokens, a tab, the ids of the whole untruncated encoding.
"""
import os
import random
import struct
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "convert"))
import convert_tokenizer  # noqa: E402  (numpy-free; dcw is imported where a file is written)

# ---------------------------------------------------------------- Unicode

# the DC_TOK_* bits of nn/tokenizer.h
LETTER, NUMBER, SPACE, PYSPACE, IGNORABLE, CASED = 1, 2, 4, 8, 16, 32
SIGMA, FINAL_SIGMA = "\u03a3", "\u03c2"


def unicode_flags(c):
    """The DC_TOK_* bits of code point c, from this Python.

    LETTER / NUMBER: general category L* / N*, what the regex package's
    \\p{L} / \\p{N} match. SPACE: the regex package's \\s (Unicode White_Space),
    which is str.isspace() without U+001C..U+001F. PYSPACE: str.isspace(),
    what str.strip() removes. IGNORABLE / CASED: the two properties str.lower()
    consults for a capital sigma (Final_Sigma); Python does not expose them,
    so they are read off its behaviour: after a cased letter, c followed by
    a capital sigma gives a final sigma when c is case-ignorable (skipped)
    or cased; after a digit, only when c is cased and not ignorable. CASED is
    set only for characters that are not ignorable, the only ones for which
    str.lower() asks.
    """
    s = chr(c)
    cat = unicodedata.category(s)
    f = 0
    if cat[0] == "L":
        f |= LETTER
    elif cat[0] == "N":
        f |= NUMBER
    if s.isspace():
        f |= PYSPACE
        if not 0x1C <= c <= 0x1F:
            f |= SPACE
    after_letter = ("A" + s + SIGMA).lower()[-1] == FINAL_SIGMA
    after_digit = ("1" + s + SIGMA).lower()[-1] == FINAL_SIGMA
    if after_digit:
        f |= CASED
    elif after_letter:
        f |= IGNORABLE
    return f


def lower_map():
    """{cp: lower-case code points} for every code point str.lower() changes."""
    out = {}
    for c in range(0x110000):
        low = chr(c).lower()
        if low != chr(c):
            out[c] = [ord(x) for x in low]
    return out


def flag_ranges():
    """[(lo, hi, flags)] of maximal runs with the same non-zero flags."""
    out, start, prev = [], 0, 0
    for c in range(0x110001):
        f = unicode_flags(c) if c < 0x110000 else -1
        if f != prev:
            if prev > 0:
                out.append((start, c - 1, prev))
            start, prev = c, f
    return out


def lower_runs(lower):
    """[(lo, hi, delta, stride)]: lower(c) = c + delta for c = lo, lo + stride, .. hi.

    Only single-character results; U+0130 (-> 'i' + U+0307) is the one
    two-character case and is written out in the C code.
    """
    runs = []
    for c in sorted(lower):
        if len(lower[c]) != 1:
            continue
        d = lower[c][0] - c
        if runs:
            lo, hi, dd, st = runs[-1]
            if dd == d and (c - hi == st or (st == 0 and c - hi in (1, 2))):
                runs[-1] = (lo, c, d, c - hi)
                continue
        runs.append((c, c, d, 0))
    return [(lo, hi, d, st or 1) for lo, hi, d, st in runs]


def c_tables():
    """C source of the tables nn/tokenizer.c ends with."""
    lower = lower_map()
    multi = {c: v for c, v in lower.items() if len(v) != 1}
    if multi != {0x130: [0x69, 0x307]}:
        raise SystemExit(f"str.lower() has new multi-character cases {multi}: update tok_lower in nn/tokenizer.c")
    fr, lr = flag_ranges(), lower_runs(lower)
    lines = [f"/* generated by tools/refs/prepare_tokenizer.py --c-tables from Python {sys.version.split()[0]}'s",
             f"   unicodedata (Unicode {unicodedata.unidata_version}): do not edit by hand */",
             f"static const tok_range tok_flag_table[{len(fr)}] = {{"]
    items = [f"{{0x{lo:x},0x{hi:x},{f}}}," for lo, hi, f in fr]
    for i in range(0, len(items), 6):
        lines.append("    " + "".join(items[i:i + 6]))
    lines += ["};", f"static const tok_case_run tok_lower_table[{len(lr)}] = {{"]
    items = [f"{{0x{lo:x},0x{hi:x},{d},{st}}}," for lo, hi, d, st in lr]
    for i in range(0, len(items), 5):
        lines.append("    " + "".join(items[i:i + 5]))
    lines.append("};")
    return "\n".join(lines)


def write_unicode_reference(path):
    lower = lower_map()
    with open(path, "wb") as f:
        f.write(bytes(unicode_flags(c) for c in range(0x110000)))
        f.write(struct.pack("<I", len(lower)))
        for c in sorted(lower):
            v = lower[c] + [0]
            f.write(struct.pack("<4I", c, len(lower[c]), v[0], v[1]))


# ---------------------------------------------------------------- model files

def write_tokenizer(path, meta, drop=()):
    from dcw import write_dcw
    meta = {k: v for k, v in meta.items() if k not in drop}
    meta["dc.family"] = "tokenizer"
    write_dcw(path, meta, [], source="tools/refs/prepare_tokenizer.py")


def tiny_folder(folder, bad_merge=False):
    """A transformers-style tokenizer folder with the 512 byte-level tokens and a few merges."""
    import json
    chars = list(convert_tokenizer.bytes_to_unicode().values())
    # "opq o" outranks "o pq", which makes its left part: a table BPE training
    # would not write, where Python's order (all of a round, then look
    # again) gives another result than merging the best pair at each step
    merges = ["c a", "ca t</w>", "d o", "do g</w>", "t h", "th e</w>", "a a", "aa a</w>",
              "p q", "opq o", "o pq"]
    if bad_merge:
        merges.append("q z</w>")        # 'qz</w>' is not in the vocabulary below
    vocab = chars + [c + "</w>" for c in chars] + \
        ["".join(m.split()) for m in merges if m != "q z</w>"] + ["<|startoftext|>", "<|endoftext|>"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def prepare(tmp, fixtures):
    import json
    os.makedirs(tmp, exist_ok=True)
    write_unicode_reference(os.path.join(tmp, "tokenizer_unicode.bin"))

    tiny = convert_tokenizer.tokenizer_meta(tiny_folder(os.path.join(tmp, "tokenizer_tiny")))
    write_tokenizer(os.path.join(tmp, "tokenizer_tiny.dcw"), tiny)
    write_tokenizer(os.path.join(tmp, "tokenizer_tiny_novocab.dcw"), tiny, drop=("tokenizer.vocab",))
    bad = dict(tiny)
    bad["tokenizer.merges"] = tiny["tokenizer.merges"] + ["q z</w>"]
    write_tokenizer(os.path.join(tmp, "tokenizer_tiny_nomerge.dcw"), bad)

    fixture = os.path.join(fixtures, "clip_tokenizer")
    if not os.path.isdir(fixture):
        return
    meta = convert_tokenizer.tokenizer_meta(fixture)
    write_tokenizer(os.path.join(tmp, "tokenizer_sd1.dcw"), meta)
    write_tokenizer(os.path.join(tmp, "tokenizer_sd2.dcw"), convert_tokenizer.tokenizer_meta(fixture, pad_token="!"))
    write_tokenizer(os.path.join(tmp, "tokenizer_short.dcw"), convert_tokenizer.tokenizer_meta(fixture, max_length=8))
    with open(os.path.join(fixture, "prompts.json"), encoding="utf-8") as f:
        prompts = json.load(f)
    with open(os.path.join(tmp, "tokenizer_prompts.txt"), "w") as f:
        for i, p in enumerate(prompts):
            assert p["index"] == i
            f.write(f"{p['prompt'].encode('utf-8').hex()}\t{p['n_tokens_incl_bos_eos']}\t{int(p['truncated'])}\n")


# ---------------------------------------------------------------- cross-check (dev only)

def merge_pair(word, pair):
    """word (a tuple or list of symbols) with every occurrence of the adjacent pair joined, left to right."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


class ReferenceTokenizer:
    """openai/CLIP's SimpleTokenizer.encode as described in its source, ftfy stubbed."""

    def __init__(self, folder):
        import regex
        meta = convert_tokenizer.tokenizer_meta(folder)
        self.encoder = {t: i for i, t in enumerate(meta["tokenizer.vocab"])}
        self.ranks = {tuple(m.split()): i for i, m in enumerate(meta["tokenizer.merges"])}
        self.byte_char = convert_tokenizer.bytes_to_unicode()
        self.regex = regex
        self.pat = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|"""
                                 r"""[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)
        self.specials = ("<|startoftext|>", "<|endoftext|>")

    def bpe(self, token):
        if token in self.specials:
            return [token]
        word = list(token[:-1]) + [token[-1] + "</w>"]
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            word = merge_pair(word, best)
        return word

    def encode(self, text):
        import html
        text = html.unescape(html.unescape(text)).strip()
        text = self.regex.sub(r"\s+", " ", text).strip().lower()
        ids = []
        for tok in self.pat.findall(text):
            tok = "".join(self.byte_char[b] for b in tok.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(tok))
        return ids


def crosscheck_inputs(rng):
    """Byte strings that exercise every stage; the generator is seeded, so the file is reproducible."""
    pieces = [
        "a", "cat", "Dog", "the", " ", "  ", "\t", "\n", "\r\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85",
        "\xa0", "\u2003", "\u3000", "\u200b", "\u180e", "\u2028", "'s", "'S", "'t", "'re", "'RE", "'ve",
        "'m", "'ll", "'LL", "'d", "'x", "'", "''", "\u017f", "'\u017f", "<|startoftext|>", "<|endoftext|>",
        "<|ENDOFTEXT|>", "<|\u017ftartoftext|>", "<|endoftext", "<", "|", ">", "!", "?!", "...", ",", "-",
        "1", "42", "3.14", "\u0663", "\u00bd", "\u2167", "\u2160", "\uff11", "\u00e9", "\u00c9", "E\u0301",
        "\u0130", "\u0131", "I", "\u00df", "\u1e9e", "\u01c5", "\u01c4", "\u03a3", "\u03c3", "\u03c2",
        "\u0391\u03a3", "\u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3", "\u03a3'", "A\u03a3.", "\u0345",
        "a\u0345b", "\u0399\u0345", "\u0410\u0411\u0412", "\u0436", "\u6771\u4eac", "\u30bf\u30ef\u30fc",
        "\ud55c\uad6d", "\U0001f436", "\u2764\ufe0f", "\U0001f468\u200d\U0001f469", "\U0001d400",
        "\U00010400", "\uff26\uff35", "\ufb01", "\u2126", "\u212a", "\u24b6", "\u00aa", "\u02b0",
        "&amp;", "&AMP;", "&amp", "&ampx", "&lt;3", "&gt", "&quot;", "&apos;", "&nbsp;", "&notin;",
        "&notit;", "&not", "&nGt;", "&acE;", "&amp;amp;", "&amp;lt;", "&#65;", "&#x41;", "&#X41",
        "&#0;", "&#13;", "&#128;", "&#129;", "&#150;", "&#x110000;", "&#xD800;", "&#1;", "&#11;",
        "&#x7f;", "&#xfdd0;", "&#x1fffe;", "&#99999999999999999999;", "&#000000065;", "&#;", "&#x;",
        "&;", "& ", "&", "&&amp;", "&\u00e9;", "&amp\u00e9", "&Eacute", "&eacute;", "&frac12",
        "&" + "a" * 40 + ";", "&CounterClockwiseContourIntegral;", "&ThickSpace;", "&NewLine;",
        "&Tab;", "&#32;", "&#x20;", "&#9;", "&#xa0;", "&#x3a3;", "&Sigma;", "x&amp;y",
    ]
    out = []
    for _ in range(140):
        n = rng.randint(1, 14)
        out.append("".join(rng.choice(pieces) for _ in range(n)).encode("utf-8"))
    bad = [b"\x80", b"\xbf", b"\xc0\x80", b"\xc1\xbf", b"\xc2", b"\xc3\x28", b"\xe0\x80\x80", b"\xe0\xa0",
           b"\xed\xa0\x80", b"\xed\x9f\xbf", b"\xef\xbf\xbd", b"\xf0\x80\x80\x80", b"\xf0\x90\x80",
           b"\xf4\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xf5\x80", b"\xff", b"\xfe\xfe", b"\xe2\x82",
           b"\xe2\x82\xac"]
    for _ in range(40):
        parts = [rng.choice(bad) if rng.random() < 0.5 else rng.choice(pieces).encode("utf-8")
                 for _ in range(rng.randint(1, 10))]
        out.append(b"".join(parts))
    for _ in range(10):
        out.append(bytes(rng.choice([b for b in range(1, 256)]) for _ in range(rng.randint(1, 60))))
    words = ["photo", "of", "a", "the", "quick", "Brown", "fox", "\u00e9t\u00e9", "\u03a3\u039f\u03a6\u039f\u03a3",
             "42", "&amp;", "it's", "\U0001f436", "\u6771\u4eac"]
    for n in (60, 74, 75, 76, 77, 120, 300):
        out.append(" ".join(rng.choice(words) for _ in range(n)).encode("utf-8"))
    out.append(("x" * 1000).encode())
    out.append(("ab" * 500).encode())
    out.append(("\u00e9" * 300).encode("utf-8"))
    return out


def make_crosscheck(fixtures, out_path):
    ref = ReferenceTokenizer(os.path.join(fixtures, "clip_tokenizer"))
    rng = random.Random(20240611)
    with open(out_path, "w") as f:
        for raw in crosscheck_inputs(rng):
            ids = ref.encode(raw.decode("utf-8", errors="replace"))
            f.write(f"{raw.hex()}\t{len(ids)}\t{' '.join(map(str, ids))}\n")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--c-tables":
        print(c_tables())
    elif len(sys.argv) == 4 and sys.argv[1] == "--make-crosscheck":
        make_crosscheck(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 2:
        prepare(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests", "fixtures"))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
