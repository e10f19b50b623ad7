"""Paper 000's RVM backbone from DeepMind's JAX checkpoint (`.npz`): the frozen ViT as a
transformers `ViTModel` folder (an encoder like any other) and the frozen RVM core as ours.

The reference converts the `.npz` into its PyTorch layout (`scripts_support/load_rvm_ckpt.py`:
`cls_token`, `patch_embedding.Conv_0.*`, `encoder.layers.{i}.*`, `encoder.LayerNorm_0.*`,
`rvm_core.*`) and builds `RVMViTEncoder` + `GatedTransformerCore` from it
(`models/rvm_modules/rvm_wrapper.py`). `npz_to_reference` makes that layout (the fixtures check
it key by key against the reference converter's output); `vit_state` maps it onto transformers'
ViT, which is the same network:

- patch 16 Conv2d with bias; [CLS | patches], the class token without a position;
- the position table is MAE's 1-D sin/cos over the raster of a 16 x 16 grid (computed in float64,
  stored in float32), resized bicubically (align_corners=False) for any other grid, which is what
  `ViTModel(..., interpolate_pos_encoding=True)` does with its table; we store it as the table's
  patch rows, with a zero row for the class token;
- pre-norm blocks (LayerNorm eps 1e-6, q/k/v/out with bias, MLP D -> 4D -> D with erf GELU), a
  final LayerNorm; all tokens out; pixels are uint8 / 255 with no mean or std (RVM's ZERO_ONE).

`convert(npz, out, size)` writes FOLDER (config.json, model.safetensors, preprocessor_config.json:
`--encoder FOLDER` loads it through transformers) and FOLDER/rvm_core.safetensors + rvm.json (the
frozen core, under our `rvm` core's names; its `output_norm` has no JAX counterpart and is left at
ones/zeros, as the reference leaves it until a task checkpoint brings it). Only arrays are read
from the `.npz` (no pickles).
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from stillmotion.errors import UsageError

#: DeepMind's released sizes: ViT width, blocks, heads; core blocks and heads
SIZES = {"base": {"dim": 768, "vit_layers": 12, "vit_heads": 12, "core_layers": 4, "core_heads": 12},
         "large": {"dim": 1024, "vit_layers": 24, "vit_heads": 16, "core_layers": 4, "core_heads": 16}}
#: parts of a released `.npz` the reference's converter does not read (the MAE decoder's side)
UNUSED = ("decoder/", "mask_token", "delta_embedder/", "detokenizer/", "decoder_embedder/")
GRID = 16  # the position table's native grid (256 px at patch 16)
EPS = 1e-6
CORE_FILE, INFO_FILE = "rvm_core.safetensors", "rvm.json"


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a JAX `.npz` checkpoint, read without unpickling anything."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: RVM checkpoint not found")
    what = "give the file DeepMind released (e.g. pretrain_rvm_large16_256.npz)"
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: not an .npz archive (no zip of arrays in it); {what}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        if "pickle" in str(exc):
            raise UsageError(f"{path}: holds pickled objects, which are never loaded; an RVM checkpoint holds only "
                             f"arrays: {what}") from None
        raise UsageError(f"{path}: not an RVM .npz checkpoint ({exc}); {what}") from None


def _head_kernel(kernel: np.ndarray, into_heads: bool) -> np.ndarray:
    """A JAX multi-head Dense kernel -> torch's (out, in) weight: into the heads (q, k, v:
    (D, H, hd)) gives (H*hd, D); out of them (H, hd, D) gives (D, H*hd)."""
    return kernel.reshape(kernel.shape[0], -1).T if into_heads else kernel.reshape(-1, kernel.shape[-1]).T


def npz_to_reference(arrays: dict[str, np.ndarray], source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The reference's PyTorch layout of an RVM `.npz` (what its converter writes): every key read
    is used, unknown keys (other than the decoder's) are an error naming them."""
    out, unknown = {}, []
    fused: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        value = np.asarray(value, dtype=np.float32)
        if key.startswith(UNUSED):
            continue
        if key == "cls_token":
            out["cls_token"] = value.reshape(1, -1)
            continue
        if m := re.fullmatch(r"tokenizer/patch_embedding/Conv_0/(kernel|bias)", key):
            # a 3-D conv kernel with one frame: (1, p, p, C_in, D) -> (D, C_in, p, p)
            out[f"patch_embedding.Conv_0.{'weight' if m[1] == 'kernel' else 'bias'}"] = (
                value[0].transpose(3, 2, 0, 1) if m[1] == "kernel" else value)
            continue
        if m := re.fullmatch(r"encoder/layers_(\d+)/(.+)", key):
            new = _leaf(f"encoder.layers.{m[1]}", m[2], value, {})
        elif m := re.fullmatch(r"encoder/LayerNorm_0/(scale|bias)", key):
            new = {f"encoder.LayerNorm_0.{'weight' if m[1] == 'scale' else 'bias'}": value}
        elif m := re.fullmatch(r"rnn_core/(input_update|input_reset|state_update|state_reset)/kernel", key):
            new = {f"rvm_core.{m[1]}.weight": value.T}
        elif key == "rnn_core/state_layer_norm/scale":
            new = {"rvm_core.state_layer_norm.weight": value,
                   "rvm_core.state_layer_norm.bias": np.zeros_like(value)}  # JAX's has no bias
        elif m := re.fullmatch(r"rnn_core/transformer/xa_blocks_(\d+)/(.+)", key):
            new = _leaf(f"rvm_core.transformer.layers.{m[1]}", m[2], value, fused)
        elif m := re.fullmatch(r"rnn_core/transformer/output_norm/(scale|bias)", key):
            new = {f"rvm_core.transformer.output_norm.{'weight' if m[1] == 'scale' else 'bias'}": value}
        else:
            new = None
        if new is None:
            unknown.append(key)
        else:
            out.update(new)
    if unknown:
        raise UsageError(f"{source}: not an RVM checkpoint as DeepMind released it: unknown array(s) "
                         f"{', '.join(sorted(unknown))}")
    missing = sorted(set(expected_keys(arrays)) - set(arrays))
    if missing:
        raise UsageError(f"{source}: the RVM checkpoint lacks array(s) {', '.join(missing)}")
    for prefix, parts in fused.items():  # the core's attention: q, k, v stacked as nn.MultiheadAttention has them
        out[f"{prefix}.in_proj_weight"] = np.concatenate([parts["q.w"], parts["k.w"], parts["v.w"]])
        out[f"{prefix}.in_proj_bias"] = np.concatenate([parts["q.b"], parts["k.b"], parts["v.b"]])
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


_TOP = ["cls_token", "tokenizer/patch_embedding/Conv_0/kernel", "tokenizer/patch_embedding/Conv_0/bias",
        "encoder/LayerNorm_0/scale", "encoder/LayerNorm_0/bias", "rnn_core/state_layer_norm/scale",
        "rnn_core/transformer/output_norm/scale", "rnn_core/transformer/output_norm/bias",
        *(f"rnn_core/{g}/kernel" for g in ("input_update", "input_reset", "state_update", "state_reset"))]


def _block_keys(norms: tuple, attentions: tuple) -> list[str]:
    keys = [f"{n}/{p}" for n in norms for p in ("scale", "bias")]
    keys += [f"{a}/{m}/{p}" for a in attentions for m in ("query", "key", "value", "out") for p in ("kernel", "bias")]
    return keys + [f"mlp/{m}/{p}" for m in ("dense_in", "dense_out") for p in ("kernel", "bias")]


def expected_keys(arrays: dict) -> list[str]:
    """Every array the conversion needs, for as many blocks as `arrays` has (numbered from 0)."""
    def count(pattern):
        return 1 + max((int(m[1]) for k in arrays if (m := re.match(pattern, k))), default=-1)

    vit = [f"encoder/layers_{i}/{k}" for i in range(count(r"encoder/layers_(\d+)/"))
           for k in _block_keys(("attention_norm", "mlp_norm"), ("attention",))]
    core = [f"rnn_core/transformer/xa_blocks_{i}/{k}" for i in range(count(r"rnn_core/transformer/xa_blocks_(\d+)/"))
            for k in _block_keys(("ca_attention_norm", "mlp_norm", "attention_norm"), ("ca_attention", "attention"))]
    return _TOP + vit + core


#: a block's JAX module -> the reference's name, in the encoder and in the core's transformer
_ENCODER_NAMES = {"attention_norm": "attention_norm", "mlp_norm": "mlp_norm", "attention": "attention",
                  "dense_in": "dense_in", "dense_out": "dense_out", "out": "out"}
_CORE_NAMES = {"ca_attention_norm": "ca_norm", "mlp_norm": "mlp_norm", "attention_norm": "sa_norm",
               "ca_attention": "ca_attn", "attention": "sa_attn", "dense_in": "fc1", "dense_out": "fc2",
               "out": "out_proj"}
_PARAM = {"scale": "weight", "kernel": "weight", "bias": "bias"}


def _leaf(prefix: str, rest: str, value: np.ndarray, fused: dict) -> dict | None:
    """One array of an encoder block or a core block (whose q/k/v go into `fused`, to be stacked)
    -> {reference key: array} ({} for a collected part), None if the name is unknown."""
    core = prefix.startswith("rvm_core.")
    names = _CORE_NAMES if core else _ENCODER_NAMES
    if m := re.fullmatch(r"(\w+_norm)/(scale|bias)", rest):
        return {f"{prefix}.{names[m[1]]}.{_PARAM[m[2]]}": value} if m[1] in names else None
    if m := re.fullmatch(r"mlp/(dense_in|dense_out)/(kernel|bias)", rest):
        return {f"{prefix}.mlp.{names[m[1]]}.{_PARAM[m[2]]}": value.T if m[2] == "kernel" else value}
    m = re.fullmatch(r"(ca_attention|attention)/(query|key|value|out)/(kernel|bias)", rest)
    if m is None or m[1] not in names:
        return None
    module, part, param = f"{prefix}.{names[m[1]]}", m[2], _PARAM[m[3]]
    if part == "out":
        out = _head_kernel(value, into_heads=False) if param == "weight" else value
        return {f"{module}.{names['out']}.{param}": out}
    value = _head_kernel(value, into_heads=True) if param == "weight" else value.reshape(-1)
    if core:  # nn.MultiheadAttention's packed projection
        fused.setdefault(module, {})[f"{part[0]}.{param[0]}"] = value
        return {}
    return {f"{module}.{part}.{param}": value}


def position_table(dim: int, grid: int = GRID) -> torch.Tensor:
    """MAE's 1-D sin/cos table over the raster positions 0..grid^2-1, (grid^2, dim) float32:
    dim 2i is sin(p / 10000^(2i/dim)), dim 2i+1 its cos; computed in float64 as the reference does."""
    p = np.arange(grid * grid, dtype=np.float64)[:, None]
    j = np.arange(dim)
    angle = p / np.power(10000, 2 * (j // 2) / dim)
    table = np.where(j % 2 == 0, np.sin(angle), np.cos(angle))
    return torch.from_numpy(table).float()


#: transformers' ViT names across its versions (5.x first, 4.x second) for each reference module
_VIT = {"query": ("layers.{i}.attention.q_proj", "encoder.layer.{i}.attention.attention.query"),
        "key": ("layers.{i}.attention.k_proj", "encoder.layer.{i}.attention.attention.key"),
        "value": ("layers.{i}.attention.v_proj", "encoder.layer.{i}.attention.attention.value"),
        "out": ("layers.{i}.attention.o_proj", "encoder.layer.{i}.attention.output.dense"),
        "attention_norm": ("layers.{i}.layernorm_before", "encoder.layer.{i}.layernorm_before"),
        "mlp_norm": ("layers.{i}.layernorm_after", "encoder.layer.{i}.layernorm_after"),
        "dense_in": ("layers.{i}.mlp.fc1", "encoder.layer.{i}.intermediate.dense"),
        "dense_out": ("layers.{i}.mlp.fc2", "encoder.layer.{i}.output.dense")}


def vit_config(state: dict, heads: int, image_size: int = GRID * 16):
    """transformers' `ViTConfig` for the reference-layout encoder weights `state`."""
    from transformers import ViTConfig

    dim = int(state["cls_token"].shape[-1])
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("encoder.layers."))
    patch = int(state["patch_embedding.Conv_0.weight"].shape[-1])
    if dim % heads:
        raise UsageError(f"RVM encoder: width {dim} does not split into {heads} heads")
    return ViTConfig(hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=int(state["encoder.layers.0.mlp.dense_in.weight"].shape[0]),
                     hidden_act="gelu", layer_norm_eps=EPS, image_size=image_size, patch_size=patch,
                     num_channels=3, qkv_bias=True, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def vit_model(state: dict, heads: int):
    """A transformers `ViTModel` (no pooler) holding the reference-layout encoder weights `state`
    (keys `cls_token`, `patch_embedding.*`, `encoder.*`; `_base_posenc` is checked, not needed)."""
    from transformers import ViTModel

    from stillmotion.reference.cores import load_strict

    config = vit_config(state, heads)
    model = ViTModel(config, add_pooling_layer=False)
    names = model.state_dict().keys()
    dim, grid = config.hidden_size, config.image_size // config.patch_size
    table = position_table(dim, grid)
    given = state.get("_base_posenc")
    if given is not None and not torch.allclose(given.reshape(-1, dim).float(), table, atol=1e-6):
        raise UsageError("RVM encoder: its position table (_base_posenc) is not MAE's sin/cos table")
    mapped = {"embeddings.cls_token": state["cls_token"].reshape(1, 1, dim),
              "embeddings.position_embeddings": torch.cat([torch.zeros(1, dim), table])[None],
              "embeddings.patch_embeddings.projection.weight": state["patch_embedding.Conv_0.weight"],
              "embeddings.patch_embeddings.projection.bias": state["patch_embedding.Conv_0.bias"],
              "layernorm.weight": state["encoder.LayerNorm_0.weight"],
              "layernorm.bias": state["encoder.LayerNorm_0.bias"]}
    unknown = []
    for key, value in state.items():
        m = re.fullmatch(r"encoder\.layers\.(\d+)\.(?:attention\.)?(?:mlp\.)?(\w+)\.(weight|bias)", key)
        if m is None:
            if not (key in ("cls_token", "_base_posenc") or key.startswith(("patch_embedding.Conv_0.",
                                                                           "encoder.LayerNorm_0."))):
                unknown.append(key)
            continue
        choices = [c.format(i=m[1]) for c in _VIT.get(m[2], ())]
        target = next((c for c in choices if f"{c}.{m[3]}" in names), None)
        if target is None:
            unknown.append(key)
            continue
        mapped[f"{target}.{m[3]}"] = value
    if unknown:
        raise UsageError(f"RVM encoder: unknown weight(s) {', '.join(sorted(unknown))}")
    load_strict(model, mapped, "RVM encoder")
    return model.eval()


def core_state(state: dict) -> dict:
    """The frozen core's weights (reference `rvm_core.*`) under our `rvm` core's names, its
    `output_norm` at ones/zeros (no JAX counterpart; a task checkpoint brings its own)."""
    core = {k.removeprefix("rvm_core."): v for k, v in state.items() if k.startswith("rvm_core.")}
    if not core:
        raise UsageError("RVM checkpoint: no rnn_core (the frozen recurrent core) in it")
    dim = core["input_update.weight"].shape[0]
    return {**core, "output_norm.weight": torch.ones(dim), "output_norm.bias": torch.zeros(dim)}


def core_settings(arrays: dict[str, np.ndarray], core: dict) -> dict:
    """Our `rvm` core's keywords for its weights `core` (`core_state`): width, depth, heads (from
    the `.npz` head axis), MLP ratio."""
    dim = int(core["input_update.weight"].shape[0])
    heads = int(arrays["rnn_core/transformer/xa_blocks_0/attention/query/kernel"].shape[1])
    layers = 1 + max(int(k.split(".")[2]) for k in core if k.startswith("transformer.layers."))
    return {"dim": dim, "layers": layers, "heads": heads,
            "mlp_ratio": int(core["transformer.layers.0.mlp.fc1.weight"].shape[0]) // dim}


def core_model(settings: dict, weights: dict):
    """Our `rvm` core built from `settings` (as `core_settings` gives them) holding `weights`."""
    from stillmotion.reference.cores import load_strict
    from stillmotion.temporal import build

    core = build("rvm", settings["dim"], layers=settings["layers"], heads=settings["heads"],
                 mlp_ratio=settings["mlp_ratio"])
    load_strict(core, weights, "RVM core")
    return core.eval()


def convert(npz: str | Path, out: str | Path, size: str | None = None) -> Path:
    """Convert DeepMind's RVM `.npz` into an encoder folder `out` (+ the frozen core): see the module."""
    from safetensors.torch import save_file

    arrays = read_npz(npz)
    state = npz_to_reference(arrays, str(npz))
    try:
        heads = int(arrays["encoder/layers_0/attention/query/kernel"].shape[1])
        vit = vit_model({k: v for k, v in state.items() if not k.startswith("rvm_core.")}, heads)
        weights = core_state(state)
        core = core_settings(arrays, weights)
    except KeyError as exc:
        raise UsageError(f"{npz}: not an RVM checkpoint: no {exc.args[0]}") from None
    found = {"dim": vit.config.hidden_size, "vit_layers": vit.config.num_hidden_layers,
             "vit_heads": heads, "core_layers": core["layers"], "core_heads": core["heads"]}
    if size is not None and SIZES[size] != found:
        raise UsageError(f"{npz}: --size {size} is {SIZES[size]}, the file holds {found}")
    core_model(core, weights)  # refuses a core whose weights do not fit
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vit.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps(
        {"image_mean": [0.0, 0.0, 0.0], "image_std": [1.0, 1.0, 1.0], "rescale_factor": 1 / 255,
         "note": "RVM reads pixels as uint8 / 255 with no mean or std (ZERO_ONE)"}, indent=2))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(out / CORE_FILE))
    with open(npz, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    (out / INFO_FILE).write_text(json.dumps({"source": str(npz), "sha256": digest, "size": size, **found,
                                             "core": core}, indent=2))
    return out


def load_core(folder: str | Path):
    """The frozen RVM core a `convert` folder holds."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / INFO_FILE).is_file():
        raise UsageError(f"{folder}: no {INFO_FILE}; make it with `stillmotion convert-rvm NPZ --out {folder}`")
    settings = json.loads((folder / INFO_FILE).read_text())["core"]
    return core_model(settings, load_file(str(folder / CORE_FILE)))


__all__ = ["SIZES", "convert", "core_state", "load_core", "npz_to_reference", "position_table", "read_npz",
           "vit_model"]
