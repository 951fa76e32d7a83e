#!/usr/bin/env python3
"""tools/convert/convert_tokenizer.py - Stable Diffusion's CLIP tokenizer files to
dc's tokenizer.* metadata (read by nn/tokenizer.c).

The engine reads everything from one .dcw file, so a model file carries
its tokenizer as metadata:

    tokenizer.vocab              string array, index = token id (49408 for CLIP),
                                 byte-level strings as in vocab.json ('</w>' ends a word)
    tokenizer.merges             string array "left right", in rank order (48894 for CLIP)
    tokenizer.bos_id             int, <|startoftext|> (49406)
    tokenizer.eos_id             int, <|endoftext|> (49407)
    tokenizer.pad_id             int, what fills ids after the end token:
                                 49407 (SD 1.x, pad '<|endoftext|>') or 0 (SD 2.x, pad '!')
    tokenizer.max_length         int, ids per prompt (77)
    tokenizer.html_entity_names  string array: Python's html.entities.html5 keys
    tokenizer.html_entity_values string array: their values (1 or 2 characters)

The entity table is there because CLIP's cleanup runs html.unescape twice on
every prompt, and the C side should decode named references exactly as
Python does without carrying a 2,231-entry table in its source.

Sources:
  - a transformers tokenizer folder (diffusers' tokenizer/): vocab.json,
    merges.txt, and tokenizer_config.json and/or special_tokens_map.json
    for the special tokens (pad '!' in SD 2.x) and model_max_length;
  - openai/CLIP's or open_clip's bpe_simple_vocab_16e6.txt(.gz), which
    holds the merges only: the vocabulary is built from them as CLIP's
    SimpleTokenizer does (256 byte characters, the same with '</w>', the
    48894 merges joined, then the two special tokens).

    tokenizer_meta(src, pad_token=None, max_length=None) -> dict of the keys above

From the command line, convert.py SRC --family tokenizer writes a .dcw
with those keys and no tensors (for tests and for `dc tokenize`). Needs no
numpy.
"""
import gzip
import html.entities
import json
import os

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_MERGES = 49152 - 256 - 2      # how many merges CLIP reads from its bpe file
DEFAULT_MAX_LENGTH = 77


def bytes_to_unicode():
    """CLIP's (and GPT-2's) byte -> printable character table, as a dict.

    Printable Latin-1 bytes stand for themselves; the others (controls,
    space, 0x7f-0xa0, 0xad) get the characters from U+0100 on, in byte
    order. The dict's order is CLIP's: the printable bytes first, then the
    others, which is also the order of the first 256 vocabulary entries.
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _token_text(value, what):
    """A special token from a tokenizer config: a string or an AddedToken dict."""
    if isinstance(value, dict):
        value = value.get("content")
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what}: expected a token string, got {value!r}")
    return value


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _folder_tokens(folder):
    """(vocab list, merges list, config dict) from a transformers tokenizer folder."""
    vocab_path, merges_path = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    for p in (vocab_path, merges_path):
        if not os.path.isfile(p):
            raise ValueError(f"{folder}: no {os.path.basename(p)} (expected a CLIP tokenizer folder)")
    ids = _read_json(vocab_path)
    if not isinstance(ids, dict) or not ids:
        raise ValueError(f"{vocab_path}: expected a JSON object of token -> id")
    vocab = [None] * len(ids)
    for tok, i in ids.items():
        if not isinstance(i, int) or not 0 <= i < len(ids) or vocab[i] is not None:
            raise ValueError(f"{vocab_path}: ids must be 0..{len(ids) - 1}, each once ({tok!r} has {i!r})")
        vocab[i] = tok
    with open(merges_path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    merges = [ln for ln in lines if ln.strip()]
    config = {}
    # special_tokens_map.json wins over tokenizer_config.json, as in transformers
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            config.update({k: v for k, v in _read_json(p).items() if v is not None})
    return vocab, merges, config


def _bpe_file_tokens(path):
    """(vocab list, merges list, config dict) from CLIP's bpe_simple_vocab_16e6.txt(.gz)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = lines[1:CLIP_MERGES + 1]           # line 0 is the version header
    if len(merges) != CLIP_MERGES or not all(merges):
        raise ValueError(f"{path}: expected at least {CLIP_MERGES} merges after the header line")
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + ["".join(m.split()) for m in merges] + [CLIP_BOS, CLIP_EOS]
    return vocab, merges, {}


def tokenizer_meta(src, pad_token=None, max_length=None):
    """The tokenizer.* metadata for a tokenizer folder or a CLIP bpe file (see the module doc).

    pad_token / max_length override what the folder's configs say.
    """
    if os.path.isdir(src):
        vocab, merges, config = _folder_tokens(src)
    elif os.path.isfile(src):
        vocab, merges, config = _bpe_file_tokens(src)
    else:
        raise ValueError(f"{src}: no such file or folder")
    index = {tok: i for i, tok in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError(f"{src}: the vocabulary holds a token twice")

    def token_id(key, default, override=None):
        tok = override if override is not None else _token_text(config.get(key, default), f"{src}: {key}")
        if tok not in index:
            raise ValueError(f"{src}: {key} {tok!r} is not in the vocabulary")
        return index[tok]

    for m in merges:
        parts = m.split(" ")
        if len(parts) != 2 or not all(parts):
            raise ValueError(f"{src}: merge {m!r} is not two tokens separated by one space")
    bos = token_id("bos_token", CLIP_BOS)
    eos = token_id("eos_token", CLIP_EOS)
    pad = token_id("pad_token", CLIP_EOS, pad_token)
    if max_length is not None and not 2 <= max_length <= DEFAULT_MAX_LENGTH:
        raise ValueError(f"max_length {max_length}: dc takes 2..{DEFAULT_MAX_LENGTH} ids per prompt")
    if max_length is None:
        max_length = config.get("model_max_length", DEFAULT_MAX_LENGTH)
        # transformers writes a huge sentinel when the length is unknown
        if not isinstance(max_length, int) or not 2 <= max_length <= DEFAULT_MAX_LENGTH:
            max_length = DEFAULT_MAX_LENGTH
    names = sorted(html.entities.html5)
    return {
        "tokenizer.vocab": vocab,
        "tokenizer.merges": merges,
        "tokenizer.bos_id": bos,
        "tokenizer.eos_id": eos,
        "tokenizer.pad_id": pad,
        "tokenizer.max_length": int(max_length),
        "tokenizer.html_entity_names": names,
        "tokenizer.html_entity_values": [html.entities.html5[n] for n in names],
    }

