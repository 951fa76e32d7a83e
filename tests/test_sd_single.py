#!/usr/bin/env python3
"""tests/test_sd_single.py - tests of tools/convert/convert_sd_single.py, the converter
of the original single-file SD checkpoints (CompVis / ldm names).

Two kinds of check:

  - full size, shapes only: fake SD 1.5 and SD 2.1 single-file state dicts
    are built from the real key lists (tests/fixtures/key_lists), the
    UNet's CompVis names made with the inverse of the converter's table, the
    VAE's and the text encoder's with independent inverses written here
    (CompVis VAE names, OpenCLIP's fused blocks). Every tensor is a
    zero-stride view of one float, so nothing of the 4 GB is allocated.
    Every CompVis name must map to exactly one diffusers name with the
    listed shape, and the parameter counts must equal summary.json's.
  - end to end, small models: the golden UNet fixture unet_sd1 (SD 1.x
    style) and tests/data/unet/sd2_linear (SD 2.x style), a small VAE and
    text encoder, laid out once as a diffusers pipeline folder and once as a
    single file (.safetensors, and a torch .ckpt whose UNet is in the EMA
    copy while model.diffusion_model.* holds other values); all are
    converted by tools/convert/convert.py, and the .dcw files must hold the same
    metadata and tensors, and `dc forward` (unet, text, vae) must give
    bit-identical outputs.

Plain asserts, run by tools/convert/testing.py: "ok   name" / "FAIL name:
reason" / "skip name: reason" per test, then "N passed, M failed, K skipped".

usage: test_sd_single.py [--fixtures DIR] [--dc PATH_TO_dc]
  (defaults tests/fixtures and build/release/dc; torch is needed for
  the .ckpt case and is Debian's python3-torch)
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import types
import zipfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = os.path.join(ROOT, "tools", "convert")
sys.path.insert(0, TOOLS)
import convert  # noqa: E402
import convert_sd_single as sds  # noqa: E402
import convert_unet  # noqa: E402
from dcw import read_dcw  # noqa: E402
from safetensors_np import open_safetensors, write_safetensors  # noqa: E402
import testing  # noqa: E402
from testing import test  # noqa: E402


def arg(flag, default):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else default


FIXTURES = os.path.abspath(arg("--fixtures", os.path.join(ROOT, "tests", "fixtures")))
DC = os.path.abspath(arg("--dc", os.path.join(ROOT, "build", "release", "dc")))
KEY_LISTS = os.path.join(FIXTURES, "key_lists")
TOKENIZER = os.path.join(FIXTURES, "clip_tokenizer")
TMP = tempfile.mkdtemp(prefix="dc_sd_single_")


def need(path, what):
    assert os.path.exists(path), f"{what} ({path}) missing: it is part of the repository (tests/fixtures)"


# pickle opcodes (protocol 2) for write_torch_file
PICKLE_TYPES = {np.float32: "FloatStorage", np.float64: "DoubleStorage", np.float16: "HalfStorage",
                np.int64: "LongStorage", np.int32: "IntStorage"}


def write_torch_file(path, obj):
    """A torch.save() file (PyTorch >= 1.6) of a dict of str keys and int,
    str, dict or numpy values, written without torch, in the layout torch
    writes: an uncompressed zip of archive/data.pkl (a protocol-2 pickle in
    which each tensor is torch._utils._rebuild_tensor_v2 of a storage named
    by a persistent id), archive/data/<key> (each storage's bytes) and
    archive/version. For the .ckpt case where torch is not installed."""
    storages = []

    def text(s):
        b = s.encode("utf-8")
        return b"X" + len(b).to_bytes(4, "little") + b

    def integer(i):
        return b"J" + int(i).to_bytes(4, "little", signed=True)

    def ints(xs):
        return b"(" + b"".join(integer(x) for x in xs) + b"t" if len(xs) else b")"

    def value(v):
        if isinstance(v, dict):
            return b"}(" + b"".join(value(k) + value(x) for k, x in v.items()) + b"u"
        if isinstance(v, str):
            return text(v)
        if isinstance(v, (int, np.integer)):
            return integer(v)
        a = np.ascontiguousarray(v)
        key = str(len(storages))
        storages.append(a.tobytes())
        stride = [int(np.prod(a.shape[i + 1:])) for i in range(a.ndim)]
        storage = (b"(" + text("storage") + b"ctorch\n" + PICKLE_TYPES[a.dtype.type].encode() + b"\n" +
                   text(key) + text("cpu") + integer(a.size) + b"tQ")
        return (b"ctorch._utils\n_rebuild_tensor_v2\n(" + storage + integer(0) + ints(a.shape) + ints(stride) +
                b"\x89ccollections\nOrderedDict\n)RtR")

    pkl = b"\x80\x02" + value(obj) + b"."
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("archive/data.pkl", pkl)
        for key, raw in enumerate(storages):
            zf.writestr(f"archive/data/{key}", raw)
        zf.writestr("archive/version", "3\n")


def key_list(name):
    need(KEY_LISTS, "the key lists")
    with open(os.path.join(KEY_LISTS, name + ".json"), encoding="utf-8") as f:
        d = json.load(f)
    return d, {k: tuple(s) for k, s in d["keys"]}


def summary(name):
    with open(os.path.join(KEY_LISTS, "summary.json"), encoding="utf-8") as f:
        return json.load(f)[name]


def fake(shape):
    """A read-only array of this shape that allocates one float."""
    return np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), tuple(shape), [0] * len(shape),
                                           writeable=False)


def is_fake(a):
    return isinstance(a, np.ndarray) and a.ndim > 0 and all(st == 0 for st in a.strides)


def numel(shape):
    return int(np.prod(shape, dtype=np.int64))


def quiet(fn, *a, **k):
    """fn's result and what it wrote to stderr (the converter's notes)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out = fn(*a, **k)
    return out, err.getvalue()


def refuses(fn, *words):
    """fn() must stop with SystemExit whose message holds every word."""
    try:
        quiet(fn)
    except SystemExit as e:
        for w in words:
            assert w in str(e), f"message {str(e)!r} lacks {w!r}"
        return str(e)
    raise AssertionError(f"no error (wanted one mentioning {words})")


# ---------------------------------------------------------------- CompVis names made here

def compvis_unet(tensors, cfg, prefix=sds.UNET_PREFIX):
    """{CompVis name: tensor} from {diffusers name: tensor}: the inverse of the converter's table."""
    inv = {d: c for c, d in sds.unet_name_table(convert_unet.normalise_config(cfg)).items()}
    assert len(inv) == len(tensors), (len(inv), len(tensors))
    return {prefix + inv[d]: t for d, t in tensors.items()}


def compvis_vae_name(name, n_blocks):
    """The CompVis (ldm AutoencoderKL) name of a diffusers >= 0.15 VAE tensor;
    written independently of tools/convert/convert_vae.py's forward mapping."""
    p = name.split(".")
    attn = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}
    if p[0] in ("quant_conv", "post_quant_conv") or p[1] in ("conv_in", "conv_out"):
        return name
    if p[1] == "conv_norm_out":
        return f"{p[0]}.norm_out.{p[-1]}"
    if p[1] == "mid_block" and p[2] == "resnets":
        return f"{p[0]}.mid.block_{int(p[3]) + 1}.{'.'.join(p[4:])}"
    if p[1] == "mid_block" and p[2] == "attentions":
        return f"{p[0]}.mid.attn_1.{attn[p[4]]}.{p[-1]}"
    if p[1] in ("down_blocks", "up_blocks"):
        # the decoder's up blocks run from the deepest level: CompVis numbers them by level
        i = int(p[2]) if p[1] == "down_blocks" else n_blocks - 1 - int(p[2])
        side = "down" if p[1] == "down_blocks" else "up"
        if p[3] == "resnets":
            leaf = "nin_shortcut" if p[5] == "conv_shortcut" else p[5]
            return f"{p[0]}.{side}.{i}.block.{p[4]}.{leaf}.{p[-1]}"
        if p[3] in ("downsamplers", "upsamplers"):
            return f"{p[0]}.{side}.{i}.{'downsample' if side == 'down' else 'upsample'}.conv.{p[-1]}"
    raise AssertionError(f"no CompVis name for {name}")


def compvis_vae(tensors, n_blocks):
    """first_stage_model.* tensors; attention projections become 1x1 convs as in ldm."""
    out = {}
    for name, t in tensors.items():
        cv = "first_stage_model." + compvis_vae_name(name, n_blocks)
        if ".attn_1." in cv and cv.endswith("weight") and ".norm." not in cv:
            t = np.asarray(t).reshape(tuple(t.shape) + (1, 1))     # a view: fakes stay fakes
        out[cv] = t
    return out


def openclip_text(tensors, n_layers, hidden, extra_block):
    """cond_stage_model.model.* (SD 2.x) from transformers CLIPTextModel names:
    q, k, v fused into in_proj, one more block (SD 2.x skips the last one),
    the projection and temperature the text encoder does not use.
    extra_block(layer_name) -> the tensor for that name in the extra block."""
    m, t = "cond_stage_model.model.", "text_model."
    out = {m + "token_embedding.weight": tensors[t + "embeddings.token_embedding.weight"],
           m + "positional_embedding": tensors[t + "embeddings.position_embedding.weight"],
           m + "ln_final.weight": tensors[t + "final_layer_norm.weight"],
           m + "ln_final.bias": tensors[t + "final_layer_norm.bias"],
           m + "text_projection": fake((hidden, hidden)), m + "logit_scale": np.array(4.6, np.float32)}
    names = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
             "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
    for i in range(n_layers + 1):
        get = (lambda k: tensors[f"{t}encoder.layers.{i}.{k}"]) if i < n_layers else extra_block
        b = f"{m}transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            parts = [get(f"self_attn.{p}_proj.{kind}") for p in "qkv"]
            if all(is_fake(x) for x in parts):                 # shapes only: do not allocate
                out[b + "attn.in_proj_" + kind] = fake((3 * parts[0].shape[0],) + tuple(parts[0].shape[1:]))
            else:
                out[b + "attn.in_proj_" + kind] = np.concatenate([np.asarray(x) for x in parts])
            for oc, hf in names.items():
                out[b + oc + "." + kind] = get(f"{hf}.{kind}")
    return out


def betas_scaled_linear(n=1000, start=0.00085, end=0.012):
    return (np.linspace(start ** 0.5, end ** 0.5, n, dtype=np.float64) ** 2).astype(np.float32)


def options(**kw):
    base = dict(tokenizer=TOKENIZER, prediction_type=None, config_unet=None, config_vae=None, config_text=None)
    base.update(kw)
    return types.SimpleNamespace(**base)


# ---------------------------------------------------------------- full size, shapes only

def full_size_fake(version):
    """(single-file {name: fake}, key lists) for SD 1.5 ("1") or SD 2.1 ("2")."""
    unet_d, unet_keys = key_list("sd15_unet" if version == "1" else "sd21_unet")
    vae_d, vae_keys = key_list("sd_vae")
    text_d, text_keys = key_list("clip_vit_l14_text" if version == "1" else "openclip_vit_h14_text_sd2")
    ldm = sds.LDM_SD1 if version == "1" else sds.LDM_SD2
    ckpt = compvis_unet({k: fake(s) for k, s in unet_keys.items()}, sds.ldm_to_diffusers_unet_config(ldm))
    ckpt.update(compvis_vae({k: fake(s) for k, s in vae_keys.items()}, len(vae_d["config"]["block_out_channels"])))
    text = {k: fake(s) for k, s in text_keys.items()}
    if version == "1":
        ckpt.update({"cond_stage_model.transformer." + k: v for k, v in text.items()})
        ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(77)[None]
    else:
        cfg = text_d["config"]
        layer0 = lambda k: text["text_model.encoder.layers.0." + k]  # noqa: E731
        ckpt.update(openclip_text(text, cfg["num_hidden_layers"], cfg["hidden_size"], layer0))
    ckpt["betas"] = betas_scaled_linear()
    ckpt["alphas_cumprod"] = np.cumprod(1 - ckpt["betas"].astype(np.float64)).astype(np.float32)
    return ckpt, dict(unet=unet_keys, vae=vae_keys, text=text_keys)


@test
def ldm_inference_configs_should_give_the_released_diffusers_unets():
    for ldm, name in ((sds.LDM_SD1, "sd15_unet"), (sds.LDM_SD2, "sd21_unet")):
        d, keys = key_list(name)
        ours = convert_unet.normalise_config(sds.ldm_to_diffusers_unet_config(ldm))
        theirs = convert_unet.normalise_config(d["config"])
        for k in ("block_out_channels", "layers_per_block", "heads", "cross_attention_dim", "use_linear_projection",
                  "down_block_types", "up_block_types", "transformer_layers_per_block", "norm_num_groups"):
            assert ours[k] == theirs[k], (name, k, ours[k], theirs[k])
        assert convert_unet.expected_shapes(ours) == keys, name


@test
def unet_name_table_should_map_every_compvis_name_to_one_real_diffusers_name():
    for ldm, name in ((sds.LDM_SD1, "sd15_unet"), (sds.LDM_SD2, "sd21_unet")):
        _, keys = key_list(name)
        table = sds.unet_name_table(convert_unet.normalise_config(sds.ldm_to_diffusers_unet_config(ldm)))
        assert sorted(table.values()) == sorted(keys), name                # onto the real names, each once
        assert len(set(table)) == len(table) == summary(name)["num_tensors"]
        assert all(not cv.startswith(("down_blocks", "up_blocks", "mid_block")) for cv in table)
        # spot checks against the names in the released .ckpt files (ldm's
        # ResBlock / time_embed / out Sequentials: which index is which layer)
        spots = {"time_embed.0.weight": "time_embedding.linear_1.weight",
                 "time_embed.2.bias": "time_embedding.linear_2.bias",
                 "input_blocks.0.0.weight": "conv_in.weight",
                 "input_blocks.1.0.in_layers.0.weight": "down_blocks.0.resnets.0.norm1.weight",
                 "input_blocks.1.0.in_layers.2.weight": "down_blocks.0.resnets.0.conv1.weight",
                 "input_blocks.1.0.emb_layers.1.weight": "down_blocks.0.resnets.0.time_emb_proj.weight",
                 "input_blocks.1.0.out_layers.0.bias": "down_blocks.0.resnets.0.norm2.bias",
                 "input_blocks.1.0.out_layers.3.weight": "down_blocks.0.resnets.0.conv2.weight",
                 "input_blocks.11.0.out_layers.3.bias": "down_blocks.3.resnets.1.conv2.bias",
                 "middle_block.2.emb_layers.1.weight": "mid_block.resnets.1.time_emb_proj.weight",
                 "output_blocks.8.2.conv.weight": "up_blocks.2.upsamplers.0.conv.weight",
                 "output_blocks.9.0.in_layers.2.weight": "up_blocks.3.resnets.0.conv1.weight",
                 "out.0.weight": "conv_norm_out.weight", "out.2.weight": "conv_out.weight"}
        for cv, d in spots.items():
            assert table[cv] == d, (cv, table.get(cv), d)
        assert table["input_blocks.3.0.op.weight"] == "down_blocks.0.downsamplers.0.conv.weight"
        assert table["output_blocks.2.1.conv.weight"] == "up_blocks.0.upsamplers.0.conv.weight"
        assert table["output_blocks.5.2.conv.weight"] == "up_blocks.1.upsamplers.0.conv.weight"
        assert table["middle_block.1.proj_in.weight"] == "mid_block.attentions.0.proj_in.weight"
        assert table["input_blocks.4.0.skip_connection.bias"] == "down_blocks.1.resnets.0.conv_shortcut.bias"
        assert table["output_blocks.11.1.transformer_blocks.0.ff.net.0.proj.weight"] == \
            "up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj.weight"
        ema = {sds.ema_name(cv) for cv in table}
        assert len(ema) == len(table) and "model_ema.diffusion_modelinput_blocks00weight" in ema


def check_full_size(version):
    ckpt, keys = full_size_fake(version)
    (meta, named), notes = quiet(sds.sd_single_from_tensors, ckpt, options(), f"v{version}-fake.safetensors")
    got = {}
    for name, t in named:
        assert name not in got, f"{name} twice"
        got[name] = tuple(np.shape(t))
    parts = {"unet.": {}, "vae.": {}, "text.": {}}
    for name, shape in got.items():
        head = name.split(".")[0] + "."
        assert head in parts, name
        parts[head][name[len(head):]] = shape
    assert parts["unet."] == keys["unet"], "UNet names/shapes differ from the key list"
    assert parts["text."] == keys["text"], "text encoder names/shapes differ from the key list"
    enc = {k: s for k, s in keys["vae"].items() if k.startswith(("encoder.", "quant_conv."))}
    assert parts["vae."] == enc, "VAE encoder names/shapes differ from the key list"
    unet_name = "sd15_unet" if version == "1" else "sd21_unet"
    text_name = "clip_vit_l14_text" if version == "1" else "openclip_vit_h14_text_sd2"
    assert sum(map(numel, parts["unet."].values())) == summary(unet_name)["total_parameters"]
    assert sum(map(numel, parts["text."].values())) == summary(text_name)["total_parameters"]
    vae_all = sum(numel(t.shape) for k, t in ckpt.items() if k.startswith("first_stage_model."))
    assert vae_all == summary("sd_vae")["total_parameters"], "the fake's VAE (decoder included) is not SD's"
    assert sum(map(numel, parts["vae."].values())) == sum(map(numel, enc.values()))
    # every UNet tensor of the file went somewhere
    n_unet = sum(1 for k in ckpt if k.startswith(sds.UNET_PREFIX))
    assert n_unet == len(parts["unet."]) == summary(unet_name)["num_tensors"]
    return meta, notes


@test
def sd15_single_file_should_convert_to_the_real_names_and_shapes():
    meta, notes = check_full_size("1")
    assert meta["tokenizer.pad_id"] == 49407 and meta["clip.act"] == "quick_gelu"
    assert meta["unet.use_linear_projection"] == 0 and meta["unet.attention_head_dim"] == [8] * 4
    sched = {k: v for k, v in meta.items() if k.startswith("schedule.")}
    assert sched == quiet(convert.sd_schedule, "/nonexistent")[0], sched   # the diffusers path's defaults
    assert "v_prediction" not in notes


@test
def sd21_single_file_should_convert_openclip_and_pad_with_exclamation_marks():
    meta, notes = check_full_size("2")
    assert meta["tokenizer.pad_id"] == 0 and meta["clip.act"] == "gelu" and meta["clip.num_layers"] == 23
    assert meta["unet.use_linear_projection"] == 1 and meta["unet.attention_head_dim"] == [5, 10, 20, 20]
    assert meta["schedule.prediction_type"] == "epsilon" and "--prediction-type v_prediction" in notes


@test
def ema_weights_should_be_used_for_the_unet_when_present():
    ckpt, _ = full_size_fake("1")
    plain = {k: v for k, v in ckpt.items() if k.startswith(sds.UNET_PREFIX)}
    ema = {sds.ema_name(k[len(sds.UNET_PREFIX):]): fake(v.shape) for k, v in plain.items()}
    ckpt.update(ema)
    ckpt["model_ema.decay"] = np.array(0.9999, np.float32)
    ckpt["model_ema.num_updates"] = np.array(470000, np.int32)
    (meta, named), notes = quiet(sds.sd_single_from_tensors, ckpt, options(), "v1-5-pruned.ckpt")
    ema_ids = {id(v) for v in ema.values()}
    unet = [t for n, t in named if n.startswith("unet.")]
    assert len(unet) == len(ema) and all(id(t) in ema_ids for t in unet), "a UNet tensor is not the EMA one"
    assert "EMA" in notes, notes
    # an EMA copy that lacks a tensor is refused, not mixed with the non-EMA weights
    del ckpt[sds.ema_name("out.2.bias")]
    refuses(lambda: sds.sd_single_from_tensors(ckpt, options(), "x.ckpt"), "model_ema", "lacks 1")


@test
def conversion_should_refuse_what_it_cannot_convert_and_say_why():
    ckpt, _ = full_size_fake("1")
    refuses(lambda: sds.sd_single_from_tensors(ckpt, options(tokenizer=None), "m.safetensors"),
            "--tokenizer", "vocab.json", "bpe_simple_vocab_16e6.txt.gz")
    bad = dict(ckpt)
    bad["model.diffusion_model.input_blocks.1.1.transformer_blocks.1.norm1.weight"] = fake((320,))
    refuses(lambda: sds.sd_single_from_tensors(bad, options(), "m.safetensors"),
            "input_blocks.1.1.transformer_blocks.1.norm1.weight", "--config-unet")
    bad = {k: v for k, v in ckpt.items() if not k.startswith("cond_stage_model.")}
    refuses(lambda: sds.sd_single_from_tensors(bad, options(), "m.safetensors"), "not a Stable Diffusion")
    bad = {k: v for k, v in ckpt.items() if not k.startswith("first_stage_model.")}
    refuses(lambda: sds.sd_single_from_tensors(bad, options(), "m.safetensors"), "first_stage_model")
    bad = {k: v for k, v in ckpt.items() if ".encoder.layers.11." not in k}   # an 11-layer text encoder
    refuses(lambda: sds.sd_single_from_tensors(bad, options(), "m.safetensors"), "11 layers", "--config-text")
    bad = dict(ckpt, betas=np.linspace(1e-4, 0.02, 1000).astype(np.float32) ** 3)
    refuses(lambda: sds.sd_single_from_tensors(bad, options(), "m.safetensors"), "betas")
    refuses(lambda: sds.sd_single_from_tensors(ckpt, options(prediction_type="x0"), "m.safetensors"), "x0")


@test
def a_linear_betas_buffer_should_be_written_as_a_linear_schedule():
    ckpt, _ = full_size_fake("1")
    ckpt["betas"] = np.linspace(1e-4, 0.02, 1000).astype(np.float32)
    (meta, _), notes = quiet(sds.sd_single_from_tensors, ckpt, options(prediction_type="v_prediction"), "m.ckpt")
    assert meta["schedule.beta_schedule"] == "linear" and abs(meta["schedule.beta_end"] - 0.02) < 1e-9
    assert meta["schedule.prediction_type"] == "v_prediction" and "betas" in notes


@test
def clips_bpe_file_should_serve_as_the_tokenizer_with_sds_padding():
    need(TOKENIZER, "the CLIP tokenizer fixture")
    import gzip
    bpe = os.path.join(TMP, "bpe_simple_vocab_16e6.txt.gz")
    with open(os.path.join(TOKENIZER, "merges.txt"), encoding="utf-8") as f:
        merges = f.read()
    with gzip.open(bpe, "wt", encoding="utf-8") as g:
        g.write(merges)             # the same header line and merges as openai's file
    folder = quiet(sds.tokenizer_meta, TOKENIZER, "sd1", "m")[0]
    for layout, pad in (("sd1", 49407), ("sd2", 0)):
        meta = quiet(sds.tokenizer_meta, bpe, layout, "m")[0]
        assert meta["tokenizer.vocab"] == folder["tokenizer.vocab"], "vocabulary rebuilt from the merges differs"
        assert meta["tokenizer.merges"] == folder["tokenizer.merges"]
        assert meta["tokenizer.pad_id"] == pad and meta["tokenizer.eos_id"] == 49407, (layout, meta["tokenizer.pad_id"])


# ---------------------------------------------------------------- end to end, small models

def tiny_clip(vocab, hidden, layers, heads, inter, act, seed):
    """(config, {transformers name: array}) of a small random CLIP text model."""
    rng = np.random.default_rng(seed)
    t = {}

    def w(name, *shape, scale=None):
        t[name] = (rng.standard_normal(shape) * (scale or 1 / np.sqrt(shape[-1]))).astype(np.float32)

    p = "text_model."
    w(p + "embeddings.token_embedding.weight", vocab, hidden, scale=0.5)
    w(p + "embeddings.position_embedding.weight", 77, hidden, scale=0.5)
    for i in range(layers):
        q = f"{p}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w(q + f"self_attn.{proj}.weight", hidden, hidden)
            w(q + f"self_attn.{proj}.bias", hidden, scale=0.05)
        w(q + "mlp.fc1.weight", inter, hidden)
        w(q + "mlp.fc1.bias", inter, scale=0.05)
        w(q + "mlp.fc2.weight", hidden, inter)
        w(q + "mlp.fc2.bias", hidden, scale=0.05)
        for n in ("layer_norm1", "layer_norm2"):
            t[q + n + ".weight"] = (1 + rng.standard_normal(hidden) * 0.1).astype(np.float32)
            w(q + n + ".bias", hidden, scale=0.05)
    t[p + "final_layer_norm.weight"] = (1 + rng.standard_normal(hidden) * 0.1).astype(np.float32)
    w(p + "final_layer_norm.bias", hidden, scale=0.05)
    cfg = {"architectures": ["CLIPTextModel"], "hidden_size": hidden, "intermediate_size": inter,
           "num_attention_heads": heads, "num_hidden_layers": layers, "max_position_embeddings": 77,
           "vocab_size": vocab, "hidden_act": act, "layer_norm_eps": 1e-5}
    return cfg, t


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def pipeline_folder(folder, unet_dir, text_cfg, text, pad):
    """A diffusers pipeline folder: the reference layout."""
    vae_dir = os.path.join(ROOT, "tests", "data", "vae", "new_names")
    shutil.copytree(TOKENIZER, os.path.join(folder, "tokenizer"),
                    ignore=shutil.ignore_patterns("*.npy", "case.json", "prompts.json"))
    with open(os.path.join(folder, "tokenizer", "tokenizer_config.json"), encoding="utf-8") as f:
        tc = json.load(f)
    write_json(os.path.join(folder, "tokenizer", "tokenizer_config.json"), dict(tc, pad_token=pad))
    write_json(os.path.join(folder, "text_encoder", "config.json"), text_cfg)
    write_safetensors(os.path.join(folder, "text_encoder", "model.safetensors"), text)
    os.makedirs(os.path.join(folder, "vae"))
    for n in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(os.path.join(vae_dir, n), os.path.join(folder, "vae", n))
    os.makedirs(os.path.join(folder, "unet"))
    for n in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(os.path.join(unet_dir, n), os.path.join(folder, "unet", n))
    write_json(os.path.join(folder, "scheduler", "scheduler_config.json"),
               {"_class_name": "PNDMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
                "beta_end": 0.012, "num_train_timesteps": 1000, "prediction_type": "epsilon"})
    write_json(os.path.join(folder, "model_index.json"), {"_class_name": "StableDiffusionPipeline"})


def single_file_tensors(unet_dir, text, layout, text_layers, text_hidden):
    """The same model as pipeline_folder's, as a CompVis single-file state dict."""
    with open(os.path.join(unet_dir, "config.json"), encoding="utf-8") as f:
        ucfg = json.load(f)
    unet = {k: np.array(v) for k, v in open_safetensors(os.path.join(unet_dir,
                                                                     "diffusion_pytorch_model.safetensors")).items()}
    ckpt = compvis_unet(unet, ucfg)
    vae = open_safetensors(os.path.join(ROOT, "tests", "data", "vae", "compvis_names", "vae.safetensors"))
    ckpt.update({k: np.array(v) for k, v in vae.items()})
    ckpt["first_stage_model.decoder.conv_in.weight"] = np.ones((16, 4, 3, 3), np.float32)  # skipped
    ckpt["first_stage_model.post_quant_conv.weight"] = np.ones((4, 4, 1, 1), np.float32)
    if layout == "sd1":
        ckpt.update({"cond_stage_model.transformer." + k: v for k, v in text.items()})
        ckpt["cond_stage_model.transformer.text_model.embeddings.position_ids"] = np.arange(77)[None]
    else:
        rng = np.random.default_rng(3)
        extra = lambda k: (rng.standard_normal(text["text_model.encoder.layers.0." + k].shape) * 9  # noqa: E731
                           ).astype(np.float32)   # a block SD 2.x never runs: must not reach the output
        ckpt.update(openclip_text(text, text_layers, text_hidden, extra))
        ckpt["cond_stage_model.model.text_projection"] = np.ones((text_hidden, text_hidden), np.float32)
    ckpt["betas"] = betas_scaled_linear()
    ckpt["alphas_cumprod"] = np.cumprod(1 - ckpt["betas"].astype(np.float64)).astype(np.float32)
    return ckpt


def run(*args):
    r = subprocess.run(list(args), capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(args)} failed:\n{r.stdout}{r.stderr}"
    return r


def convert_cli(src, out, *extra):
    return run(sys.executable, os.path.join(TOOLS, "convert.py"), src, "--family", "sd", "-o", out, *extra)


def same_dcw(a, b):
    """The two .dcw files hold the same metadata (but dc.source) and the same tensors
    (the order may differ: the text encoder's follows its source file's)."""
    ma, ta = read_dcw(a)
    mb, tb = read_dcw(b)
    ma.pop("dc.source"), mb.pop("dc.source")
    assert ma == mb, f"metadata differ: {sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))}"
    assert sorted(ta) == sorted(tb), f"tensor names differ: {sorted(set(ta) ^ set(tb))[:6]}"
    for name in ta:
        assert ta[name][0] == tb[name][0], f"{name}: dtype {ta[name][0]} vs {tb[name][0]}"
        assert np.array_equal(ta[name][1], tb[name][1]), f"{name}: values differ"


def dc_forward(model, component, *inputs):
    out = os.path.join(TMP, f"out_{os.path.basename(model)}_{component}.npy")
    run(DC, "forward", "-m", model, component, *inputs, "-o", out)
    return np.load(out)


def forward_all(model, unet_dir, text_vocab):
    """dc forward unet, text and vae outputs of one model file."""
    ids = os.path.join(TMP, "ids.npy")
    if not os.path.exists(ids):
        rng = np.random.default_rng(1)
        np.save(ids, np.concatenate([np.full((2, 1), 49406), rng.integers(0, 49406, (2, 76))], axis=1))
    inputs = [os.path.join(unet_dir, f + ".npy") for f in ("sample", "timesteps", "encoder_hidden_states")]
    image = os.path.join(ROOT, "tests", "data", "vae", "new_names", "image.npy")
    return {"unet": dc_forward(model, "unet", *inputs), "text": dc_forward(model, "text", ids),
            "vae": dc_forward(model, "vae", image)}


def end_to_end(tag, unet_dir, layout, text_hidden, text_heads, text_layers, act, pad):
    need(unet_dir, "the small UNet")
    need(TOKENIZER, "the CLIP tokenizer fixture")
    assert os.path.exists(DC), f"{DC} not built (make, or --dc PATH)"
    work = os.path.join(TMP, tag)
    text_cfg, text = tiny_clip(49408, text_hidden, text_layers, text_heads, 2 * text_hidden, act, seed=5)
    folder = os.path.join(work, "pipeline")
    pipeline_folder(folder, unet_dir, text_cfg, text, pad)
    ref = os.path.join(work, "ref.dcw")
    convert_cli(folder, ref)

    ckpt = single_file_tensors(unet_dir, text, layout, text_layers, text_hidden)
    st = os.path.join(work, f"{tag}.safetensors")
    write_safetensors(st, ckpt)
    configs = ["--tokenizer", TOKENIZER, "--config-unet", os.path.join(folder, "unet", "config.json"),
               "--config-vae", os.path.join(folder, "vae", "config.json"),
               "--config-text", os.path.join(folder, "text_encoder", "config.json")]
    out_st = os.path.join(work, "from_safetensors.dcw")
    r = convert_cli(st, out_st, *configs)
    same_dcw(ref, out_st)
    want = forward_all(ref, unet_dir, 49408)
    got = forward_all(out_st, unet_dir, 49408)
    for k in want:
        assert np.array_equal(want[k], got[k]), f"{tag} .safetensors: dc forward {k} differs"
    # and the UNet is the reference's: its torch (float64) output, to tests/test_unet.c's
    # UNET_FIXTURE_TOL (10x the fixture's measured fp32-vs-fp64 deviation)
    ref_out = np.load(os.path.join(unet_dir, "out_sample.npy"))
    err = float(np.abs(got["unet"] - ref_out).max())
    assert err <= 2e-5, f"UNet output vs torch: max abs err {err}"
    return work, folder, ckpt, configs, ref, want, r.stderr, err


@test
def sd1_single_files_should_convert_to_the_same_model_as_the_pipeline_folder():
    unet_dir = os.path.join(FIXTURES, "unet_sd1")
    work, folder, ckpt, configs, ref, want, notes, err = end_to_end("sd1", unet_dir, "sd1", 32, 2, 2,
                                                                    "quick_gelu", "<|endoftext|>")
    # q8 too: the same quantised tensors both ways
    refq, outq = os.path.join(work, "ref_q8.dcw"), os.path.join(work, "from_safetensors_q8.dcw")
    convert_cli(folder, refq, "--dtype", "q8")
    convert_cli(os.path.join(work, "sd1.safetensors"), outq, "--dtype", "q8", *configs)
    same_dcw(refq, outq)
    print(f"     sd1 .safetensors: dcw identical (f32 and q8), dc forward unet/text/vae bit-identical; "
          f"UNet vs torch max abs err {err:.2e}")
    # a torch .ckpt: {"state_dict": ...} with the UNet's EMA copy, and other
    # values (which must not be used) under model.diffusion_model.*; written
    # by torch.save where torch is installed, else by write_torch_file
    sd = {}
    for k, v in ckpt.items():
        v = np.ascontiguousarray(v)
        if k.startswith(sds.UNET_PREFIX):
            sd[sds.ema_name(k[len(sds.UNET_PREFIX):])] = v
            sd[k] = v + np.float32(1.0)                     # the non-EMA weights differ
        else:
            sd[k] = v
    sd["model_ema.decay"] = np.array(0.9999, np.float32)
    sd["model_ema.num_updates"] = np.array(1234, np.int32)
    path = os.path.join(work, "sd1.ckpt")
    obj = {"state_dict": sd, "global_step": 1234, "epoch": 2, "pytorch-lightning_version": "1.4.2"}
    try:
        import torch
    except ImportError:
        write_torch_file(path, obj)
    else:
        obj["state_dict"] = {k: torch.from_numpy(v) for k, v in sd.items()}
        torch.save(obj, path)
    out = os.path.join(work, "from_ckpt.dcw")
    r = convert_cli(path, out, *configs)
    assert "EMA" in r.stderr, r.stderr
    same_dcw(ref, out)
    got = forward_all(out, unet_dir, 49408)
    for k in want:
        assert np.array_equal(want[k], got[k]), f"sd1 .ckpt: dc forward {k} differs"
    print("     sd1 .ckpt (EMA): dcw identical, dc forward bit-identical")


@test
def sd2_single_files_should_convert_to_the_same_model_as_the_pipeline_folder():
    unet_dir = os.path.join(ROOT, "tests", "data", "unet", "sd2_linear")
    _, _, _, _, ref, _, notes, err = end_to_end("sd2", unet_dir, "sd2", 12, 2, 2, "gelu", "!")
    meta, _ = read_dcw(ref)
    assert meta["tokenizer.pad_id"] == 0
    assert "v_prediction" in notes
    print(f"     sd2 .safetensors (OpenCLIP, linear proj): dcw identical, dc forward bit-identical; "
          f"UNet vs torch max abs err {err:.2e}")


@test
def convert_without_a_tokenizer_should_say_what_to_pass():
    path = os.path.join(TMP, "no_tokenizer.safetensors")
    write_safetensors(path, {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight":
                             np.zeros((4, 4), np.float32)})
    r = subprocess.run([sys.executable, os.path.join(TOOLS, "convert.py"), path, "--family", "sd", "-o",
                        os.path.join(TMP, "x.dcw")], capture_output=True, text=True)
    assert r.returncode != 0 and "--tokenizer" in r.stderr and "no tokenizer" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(TMP, "x.dcw"))


if __name__ == "__main__":
    testing.run(TMP)
