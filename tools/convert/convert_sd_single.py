#!/usr/bin/env python3
"""tools/convert/convert_sd_single.py - the original single-file Stable Diffusion
checkpoints (CompVis / ldm key names: v1-5-pruned-emaonly.safetensors,
sd-v1-4.ckpt, v2-1_512-ema-pruned.ckpt, ...) into one .dcw, the same file
`convert.py PIPELINE_FOLDER --family sd` makes from a diffusers folder.

    convert.py MODEL.safetensors|MODEL.ckpt --family sd --tokenizer DIR|bpe_simple_vocab_16e6.txt.gz
               [--prediction-type epsilon|v_prediction] [--config-unet JSON]
               [--config-vae JSON] [--config-text JSON] -o OUT.dcw

What a single file holds, and where each part goes:

  model.diffusion_model.*   the UNet, ldm's openaimodel.UNetModel names
                            (input_blocks.N.M, middle_block, output_blocks,
                            time_embed, out): renamed here to diffusers'
                            names with UNET_* below, then tools/convert/convert_unet.py
  model_ema.*               ldm's LitEma copy of the UNet: the same tensors
                            under the parameter names with every '.' removed
                            ("model_ema.diffusion_modelinput_blocks00weight");
                            used instead of model.diffusion_model.* when present
  first_stage_model.*       the VAE, CompVis names: tools/convert/convert_vae.py reads them
  cond_stage_model.*        the text encoder: transformer.text_model.* (SD 1.x,
                            CLIP ViT-L/14) or model.* (SD 2.x, OpenCLIP ViT-H):
                            tools/convert/convert_clip.py's clip_text_from_checkpoint
  betas, alphas_cumprod...  the DDPM schedule buffers: betas, when present, are
                            checked against the schedule written to the file

SD 1.x or 2.x is told by the text encoder's names. The UNet's architecture
is not in the file: it comes from the ldm inference configs (LDM_SD1 =
v1-inference.yaml, LDM_SD2 = v2-inference.yaml), turned into the diffusers
config convert_unet.py checks every tensor against; --config-unet (a
diffusers UNet2DConditionModel config.json) replaces it, e.g. for smaller
models. The text encoder's config is SD's released one (--config-text to
replace it), the VAE's is inferred from its shapes (--config-vae). The file
holds no tokenizer: --tokenizer names CLIP's (the pad token is forced to
"!" for SD 2.x and to the end token for SD 1.x, as the released pipelines
pad). Nothing tells an SD 2.x 768-v checkpoint from a 512 eps one: pass
--prediction-type v_prediction for the 768-v files.

The UNet name table is written once, in unet_name_table(): a function of
the (normalised diffusers) config, so the same code covers SD 1.x (conv
proj_in, 8 heads), SD 2.x (linear proj_in, 64-channel heads) and any
smaller UNet of the same family. tests/test_sd_single.py checks it against
the real SD 1.5 / 2.1 key lists and end to end on small models.

    sd_single_file(path, args) -> (meta, iterator of (canonical name, array))
    sd_single_from_tensors(tensors, options, origin) -> the same, from {name: array}
    ldm_to_diffusers_unet_config(ldm) -> a diffusers UNet config dict
    unet_name_table(cfg) -> {CompVis name: diffusers name}, cfg from convert_unet.normalise_config

Needs numpy alone (torch .ckpt files are read by tools/convert/torch_pt.py).
"""
import itertools
import json
import os
import sys
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import convert_clip  # noqa: E402
import convert_tokenizer  # noqa: E402
import convert_unet  # noqa: E402
import convert_vae  # noqa: E402
from dcw import source_name  # noqa: E402
from safetensors_np import open_safetensors  # noqa: E402
from torch_pt import load_state_dict  # noqa: E402

UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model."
EMA_BOOKKEEPING = {"model_ema.decay", "model_ema.num_updates"}   # LitEma's own buffers
# LatentDiffusion's registered schedule buffers (ldm/models/diffusion/ddpm.py)
SCHEDULE_BUFFERS = {"betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
                    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
                    "posterior_mean_coef1", "posterior_mean_coef2", "logvar"}

# ---------------------------------------------------------------- the UNet's config

# The UNetModel arguments of the official inference configs
# (configs/stable-diffusion/v1-inference.yaml, v2-inference.yaml and
# v2-inference-v.yaml; the 768-v model differs only in its 96x96 latent and
# its v target). ldm's attention_resolutions are downsampling factors: a
# level whose factor 2**level is listed has transformers.
LDM_SD1 = dict(in_channels=4, out_channels=4, model_channels=320, channel_mult=[1, 2, 4, 4],
               num_res_blocks=2, attention_resolutions=[4, 2, 1], num_heads=8, num_head_channels=-1,
               transformer_depth=1, context_dim=768, use_linear_in_transformer=False)
LDM_SD2 = dict(LDM_SD1, num_heads=-1, num_head_channels=64, context_dim=1024, use_linear_in_transformer=True)


def ldm_to_diffusers_unet_config(ldm, sample_size=64):
    """A diffusers UNet2DConditionModel config (as diffusers' conversion
    script writes it) from ldm's UNetModel arguments. sample_size: the
    latent side the model was trained at (512 px / 8; 96 for 768-v), which
    the yaml files do not hold (their image_size is marked unused)."""
    ch = [ldm["model_channels"] * m for m in ldm["channel_mult"]]
    cross = [2 ** i in ldm["attention_resolutions"] for i in range(len(ch))]
    if ldm["num_head_channels"] > 0:
        # heads of a fixed width: diffusers' legacy "attention_head_dim" then
        # holds the NUMBER of heads per block (SD 2.x: [5, 10, 20, 20])
        heads = [c // ldm["num_head_channels"] for c in ch]
    else:
        heads = ldm["num_heads"]
    return {"_class_name": "UNet2DConditionModel", "sample_size": sample_size,
            "in_channels": ldm["in_channels"], "out_channels": ldm["out_channels"],
            "block_out_channels": ch, "layers_per_block": ldm["num_res_blocks"],
            "down_block_types": ["CrossAttnDownBlock2D" if c else "DownBlock2D" for c in cross],
            "up_block_types": ["CrossAttnUpBlock2D" if c else "UpBlock2D" for c in cross[::-1]],
            "attention_head_dim": heads, "cross_attention_dim": ldm["context_dim"],
            "transformer_layers_per_block": ldm["transformer_depth"],
            "use_linear_projection": ldm["use_linear_in_transformer"],
            "norm_num_groups": 32, "norm_eps": 1e-5, "flip_sin_to_cos": True, "freq_shift": 0,
            "act_fn": "silu", "mid_block_scale_factor": 1, "center_input_sample": False}


# ---------------------------------------------------------------- the UNet's names

# ResBlock (ldm) -> ResnetBlock2D (diffusers): ldm numbers the layers of
# nn.Sequentials: in_layers = [GroupNorm, SiLU, conv], emb_layers = [SiLU,
# linear], out_layers = [GroupNorm, SiLU, Dropout, conv]
UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
# top-level modules: time_embed = [linear, SiLU, linear], out = [GroupNorm, SiLU, conv]
UNET_TOP = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
            "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}
# SpatialTransformer (ldm) and Transformer2DModel (diffusers) share their
# inner names (norm, proj_in, transformer_blocks.K.attn1.to_q, ..., proj_out)


def unet_module_table(cfg):
    """[(diffusers module, CompVis module, kind)] in forward order, kind
    "resnet" (inner names per UNET_RESNET), "transformer" (inner names
    equal) or "leaf" (weight/bias directly). cfg: convert_unet.normalise_config's.

    ldm keeps three flat lists: input_blocks (conv_in, then per level the
    resnets, each with its transformer at index 1, then the downsampler as
    its own entry), middle_block (resnet, transformer, resnet) and
    output_blocks (per level, layers + 1 entries of resnet [, transformer]
    [, upsampler after the last one])."""
    B = len(cfg["block_out_channels"])
    layers = cfg["layers_per_block"]
    table = [("conv_in", UNET_TOP["conv_in"], "leaf"),
             ("time_embedding.linear_1", UNET_TOP["time_embedding.linear_1"], "leaf"),
             ("time_embedding.linear_2", UNET_TOP["time_embedding.linear_2"], "leaf")]
    k = 1
    for i in range(B):
        cross = cfg["down_block_types"][i] == "CrossAttnDownBlock2D"
        for j in range(layers[i]):
            table.append((f"down_blocks.{i}.resnets.{j}", f"input_blocks.{k}.0", "resnet"))
            if cross:
                table.append((f"down_blocks.{i}.attentions.{j}", f"input_blocks.{k}.1", "transformer"))
            k += 1
        if i < B - 1:
            table.append((f"down_blocks.{i}.downsamplers.0.conv", f"input_blocks.{k}.0.op", "leaf"))
            k += 1
    table += [("mid_block.resnets.0", "middle_block.0", "resnet"),
              ("mid_block.attentions.0", "middle_block.1", "transformer"),
              ("mid_block.resnets.1", "middle_block.2", "resnet")]
    k = 0
    rlayers = layers[::-1]
    for i in range(B):
        cross = cfg["up_block_types"][i] == "CrossAttnUpBlock2D"
        n = rlayers[i] + 1
        for j in range(n):
            table.append((f"up_blocks.{i}.resnets.{j}", f"output_blocks.{k}.0", "resnet"))
            if cross:
                table.append((f"up_blocks.{i}.attentions.{j}", f"output_blocks.{k}.1", "transformer"))
            if j == n - 1 and i < B - 1:   # Upsample follows the block's last resnet [+ transformer]
                table.append((f"up_blocks.{i}.upsamplers.0.conv", f"output_blocks.{k}.{2 if cross else 1}.conv",
                              "leaf"))
            k += 1
    table += [("conv_norm_out", UNET_TOP["conv_norm_out"], "leaf"), ("conv_out", UNET_TOP["conv_out"], "leaf")]
    return table


def unet_name_table(cfg):
    """{CompVis name (after model.diffusion_model.): diffusers name} for every
    tensor of the UNet cfg describes (normalised config), in forward order.
    The one place that knows both namings; its inverse makes test files."""
    modules = {d: (c, kind) for d, c, kind in unet_module_table(cfg)}
    out = {}
    for name in convert_unet.expected_shapes(cfg):
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):       # the longest module that owns the tensor
            head = ".".join(parts[:cut])
            if head in modules:
                break
        else:
            raise AssertionError(f"no CompVis module for {name}")   # the table above is incomplete
        compvis, kind = modules[head]
        rest = parts[cut:]
        if kind == "resnet":
            rest = UNET_RESNET[rest[0]].split(".") + rest[1:]
        cv = ".".join(compvis.split(".") + rest)
        if cv in out:
            raise AssertionError(f"{cv} named twice ({out[cv]}, {name})")
        out[cv] = name
    return out


def ema_name(compvis):
    """LitEma's buffer name for a UNet tensor: the parameter name under
    LatentDiffusion.model (DiffusionWrapper: "diffusion_model." + name) with
    its dots removed, under "model_ema."."""
    return EMA_PREFIX + ("diffusion_model." + compvis).replace(".", "")


# ---------------------------------------------------------------- reading

def note(msg):
    print(f"convert: {msg}", file=sys.stderr)


def fail(origin, msg):
    raise SystemExit(f"convert: {origin}: {msg}")


def read_checkpoint(path):
    """{name: array} of a single-file checkpoint: .safetensors (memory-mapped)
    or a torch .ckpt/.pt/.pth zip (its "state_dict", read without torch)."""
    if path.endswith(".safetensors"):
        try:
            return open_safetensors(path)
        except ValueError as e:
            raise SystemExit(f"convert: {e}") from None
    if path.endswith((".ckpt", ".pt", ".pth")):
        return load_state_dict(path)
    fail(path, "expected a .safetensors or .ckpt single-file checkpoint, or a diffusers pipeline folder")


def read_json(path, what):
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"convert: {what} {path}: {e}") from None


def schedule_meta(tensors, prediction_type, origin):
    """schedule.* metadata: SD's training schedule (tools/convert/convert.py's
    sd_schedule defaults: scaled_linear 0.00085..0.012 over 1000 steps).
    A checkpoint's betas buffer, when present, must be that schedule (or a
    linear one), with its own end points."""
    pred = prediction_type or "epsilon"
    if pred not in ("epsilon", "v_prediction"):
        fail(origin, f"--prediction-type {pred!r} (dc knows epsilon and v_prediction)")
    meta = {"schedule.beta_schedule": "scaled_linear", "schedule.beta_start": 0.00085,
            "schedule.beta_end": 0.012, "schedule.num_train_timesteps": 1000, "schedule.prediction_type": pred}
    if "betas" in tensors:
        b = np.asarray(tensors["betas"], dtype=np.float64).reshape(-1)
        if b.size < 2 or not np.all(b > 0):
            fail(origin, f"betas buffer of {b.size} values is not a noise schedule")
        n = b.size
        scaled = np.linspace(np.sqrt(b[0]), np.sqrt(b[-1]), n) ** 2
        linear = np.linspace(b[0], b[-1], n)
        # the buffer is float32 (or f16 in pruned files): agree to its precision
        tol = 1e-5 if np.dtype(tensors["betas"].dtype).itemsize >= 4 else 2e-3
        if np.allclose(b, scaled, rtol=tol, atol=0):
            kind = "scaled_linear"
        elif np.allclose(b, linear, rtol=tol, atol=0):
            kind = "linear"
        else:
            fail(origin, "the betas buffer is neither a linear nor a scaled_linear schedule (dc knows those two)")
        start, end = float(np.float32(b[0])), float(np.float32(b[-1]))
        if kind != "scaled_linear" or n != 1000 or not np.isclose(start, 0.00085, rtol=tol) or \
                not np.isclose(end, 0.012, rtol=tol):
            note(f"{origin}: the betas buffer says {kind} {start:g}..{end:g} over {n} steps (not SD's usual "
                 "scaled_linear 0.00085..0.012 over 1000): using it")
            meta.update({"schedule.beta_schedule": kind, "schedule.beta_start": start,
                         "schedule.beta_end": end, "schedule.num_train_timesteps": int(n)})
    return meta


def tokenizer_meta(src, layout, origin):
    """tokenizer.* metadata from --tokenizer, with SD's pad convention for the layout."""
    if not src:
        fail(origin, "a single-file checkpoint holds no tokenizer: pass --tokenizer DIR (a CLIP tokenizer "
             "folder with vocab.json and merges.txt, e.g. the tokenizer/ folder of the diffusers release of "
             "this model, or openai/clip-vit-large-patch14) or --tokenizer bpe_simple_vocab_16e6.txt.gz "
             "(from openai/CLIP or open_clip)")
    # SD 1.x pads with the end token, SD 2.x (open_clip's tokenizer) with "!" (id 0)
    pad = "!" if layout == "sd2" else convert_tokenizer.CLIP_EOS
    try:
        meta = convert_tokenizer.tokenizer_meta(src, pad_token=pad)
        if os.path.isdir(src):
            own = convert_tokenizer.tokenizer_meta(src)["tokenizer.pad_id"]
            if own != meta["tokenizer.pad_id"]:
                note(f"{src}: its pad token (id {own}) is not SD {layout[-1]}.x's; padding with {pad!r} "
                     f"(id {meta['tokenizer.pad_id']}) as the released SD {layout[-1]}.x pipelines do")
    except ValueError as e:
        raise SystemExit(f"convert: --tokenizer {e}") from None
    return meta


def text_config(tensors, layout, given, origin):
    """The CLIPTextConfig for the text encoder: the given one, or SD's
    released one after checking that the checkpoint has its sizes."""
    if given is not None:
        return given
    cfg = convert_clip.SD1_TEXT_CONFIG if layout == "sd1" else convert_clip.SD2_TEXT_CONFIG
    if layout == "sd1":
        head = convert_clip.SD1_PREFIX + "text_model."
        emb = tensors[head + "embeddings.token_embedding.weight"]
        layers = {n.split(".")[5] for n in tensors if n.startswith(head + "encoder.layers.")}
        n_layers = len(layers)
    else:
        emb = tensors[convert_clip.SD2_PREFIX + "token_embedding.weight"]
        blocks = {n.split(".")[4] for n in tensors if n.startswith(convert_clip.SD2_PREFIX + "transformer.resblocks.")}
        n_layers = len(blocks) - 1     # SD 2.x runs all but the last block
    want = (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"])
    got = (int(emb.shape[0]), int(emb.shape[1]), n_layers)
    if got != want:
        fail(origin, f"the text encoder has vocabulary {got[0]}, width {got[1]} and {got[2]} layers, not SD "
             f"{layout[-1]}.x's {want[0]}, {want[1]} and {want[2]}: pass its config with --config-text JSON")
    return cfg


def unet_tensors(tensors, cfg, origin):
    """{diffusers name: array} of the UNet: model_ema.* when the file has the
    EMA copy, else model.diffusion_model.*. Unknown names are an error."""
    table = unet_name_table(cfg)
    plain = {n[len(UNET_PREFIX):]: t for n, t in tensors.items() if n.startswith(UNET_PREFIX)}
    ema = {n: t for n, t in tensors.items() if n.startswith(EMA_PREFIX) and n not in EMA_BOOKKEEPING}
    unknown = sorted(UNET_PREFIX + n for n in plain if n not in table)
    by_ema = {ema_name(cv): cv for cv in table}
    if len(by_ema) != len(table):   # removing dots must not merge two names
        fail(origin, "two UNet tensors share one EMA name: the name table is ambiguous")
    unknown += sorted(n for n in ema if n not in by_ema)
    if unknown:
        fail(origin, f"UNet tensors this config does not have: {', '.join(unknown[:8])}"
             f"{' ...' if len(unknown) > 8 else ''} ({len(unknown)} in all; a different architecture? "
             "pass its diffusers config with --config-unet)")
    if ema:
        missing = [n for n in by_ema if n not in ema]
        if missing:
            fail(origin, f"the EMA copy (model_ema.*) lacks {len(missing)} UNet tensors, e.g. {missing[0]}")
        note(f"{origin}: using the EMA weights (model_ema.*) for the UNet"
             + (f"; its {len(plain)} non-EMA tensors (model.diffusion_model.*) are ignored" if plain else ""))
        return {table[by_ema[n]]: t for n, t in ema.items()}
    if not plain:
        fail(origin, "no UNet tensors (model.diffusion_model.* or model_ema.*)")
    return {table[n]: t for n, t in plain.items()}


# ---------------------------------------------------------------- conversion

def sd_single_from_tensors(tensors, options, origin="checkpoint"):
    """(meta, iterator of (canonical name, array)) from a single-file state
    dict {name: array}. options: an object with tokenizer, prediction_type,
    config_unet, config_vae, config_text (dicts here, or None), as
    sd_single_file builds from convert.py's arguments. Arrays stay lazy."""
    opt = lambda key: getattr(options, key, None)  # noqa: E731
    layout = convert_clip.checkpoint_layout(tensors)
    if layout is None:
        fail(origin, f"no CLIP text encoder ({convert_clip.SD1_PREFIX}text_model.* for SD 1.x, "
             f"{convert_clip.SD2_PREFIX}* for SD 2.x): not a Stable Diffusion 1.x/2.x single-file checkpoint")
    version = layout[-1]
    known = (UNET_PREFIX, EMA_PREFIX, VAE_PREFIX, TEXT_PREFIX)
    other = sorted(n for n in tensors if not n.startswith(known) and n not in SCHEDULE_BUFFERS)
    if other:
        note(f"{origin}: skipping {len(other)} tensors outside the UNet, VAE and text encoder: "
             f"{', '.join(other[:6])}{' ...' if len(other) > 6 else ''}")

    meta = schedule_meta(tensors, opt("prediction_type"), origin)
    if layout == "sd2" and not opt("prediction_type"):
        note(f"{origin}: SD {version}.x: writing prediction_type epsilon (the 512 base models); the 768-v "
             "checkpoints (v2-0_768, v2-1_768) predict v: convert those with --prediction-type v_prediction"
             + (" (this file's name says 768)" if "768" in os.path.basename(origin) else ""))
    meta.update(tokenizer_meta(opt("tokenizer"), layout, origin))

    # text encoder
    tcfg = text_config(tensors, layout, opt("config_text"), origin)
    text = {n: t for n, t in tensors.items() if n.startswith(TEXT_PREFIX)}
    tmeta, tnamed = convert_clip.clip_text_from_checkpoint(text, tcfg, "text.", origin)
    # VAE
    vae = {n: t for n, t in tensors.items() if n.startswith(VAE_PREFIX)}
    if not vae:
        fail(origin, "no VAE tensors (first_stage_model.*)")
    vcfg = opt("config_vae")
    vmeta, vnamed = convert_vae.vae_encoder_from_tensors(vae, vcfg, origin, "vae.", quiet=vcfg is None)
    if vcfg is None:
        note(f"{origin}: VAE config from its shapes: block_out_channels {vmeta['vae.block_out_channels']}, "
             f"layers_per_block {vmeta['vae.layers_per_block']}, and SD's norm_num_groups 32 and scaling "
             "factor 0.18215 (--config-vae JSON to say otherwise)")
    # UNet
    ucfg_raw = opt("config_unet") or ldm_to_diffusers_unet_config(LDM_SD1 if layout == "sd1" else LDM_SD2)
    ucfg = convert_unet.normalise_config(ucfg_raw, f"{origin} (UNet config)")
    umeta, unamed = convert_unet.unet_from_tensors(unet_tensors(tensors, ucfg, origin), ucfg_raw, origin, "unet.")
    if umeta["unet.cross_attention_dim"] != tmeta["clip.hidden_size"]:
        fail(origin, f"the UNet attends to a {umeta['unet.cross_attention_dim']}-wide context but the text "
             f"encoder is {tmeta['clip.hidden_size']} wide")

    for m in (tmeta, vmeta, umeta):
        m.pop("dc.source", None)
        meta.update(m)
    meta["dc.source"] = f"{source_name(origin)} (SD {version}.x single file)"
    # the order convert.py's pipeline-folder path writes: text, VAE, UNet
    return meta, itertools.chain(tnamed, vnamed, unamed)


def sd_single_file(src, args):
    """convert.py's --family sd for a file: (meta, iterator of (canonical name, array)).
    args: convert.py's parsed arguments (tokenizer, prediction_type, and
    config_unet / config_vae / config_text as JSON paths; absent ones are None)."""
    if not os.path.isfile(src):
        fail(src, "no such file")
    options = types.SimpleNamespace(
        tokenizer=getattr(args, "tokenizer", None), prediction_type=getattr(args, "prediction_type", None),
        config_unet=read_json(getattr(args, "config_unet", None), "--config-unet"),
        config_vae=read_json(getattr(args, "config_vae", None), "--config-vae"),
        config_text=read_json(getattr(args, "config_text", None), "--config-text"))
    if not options.tokenizer:    # say so before reading gigabytes
        tokenizer_meta(None, None, src)
    return sd_single_from_tensors(read_checkpoint(src), options, src)

