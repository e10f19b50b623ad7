"""Paper 000's released checkpoints -> ordinary stillmotion run folders.

The authors released, per task (SSv2 classes, Waymo boxes, Perception Test points, ScanNet
depth, NuScenes camera pose), a DINOv3-L + RVM core model, a DINOv3-L + GMMix model and a
readout on the frozen RVM: Lightning `.ckpt` files whose `state_dict` holds the trained parts
under `model.` (the encoder mix `encoder.interm_mlps.*`, the core `sequential_core.*`, the
readout), never the frozen ViT, which comes from DINOv3's own weights.

`import_reference(ckpt, arch, task, size, out)` reads such a file without running pickled code
(`torch.load(weights_only=True)`, any other object, e.g. in `hyper_parameters`, read as an inert
stand-in: `reference.pickled`; or a safetensors file with the same keys), builds the run's
config (DINOv3 through transformers with all tokens and 4 mixed layers, the matching core,
paper 000's readout, the task's frames, rate and input size), maps every key onto our names,
loads them strictly (a missing, unknown or mis-shaped key is an error that lists them) and
writes RUN/checkpoints/step_00000000 (model.safetensors + config.yaml), which `stillmotion
eval` and `VideoModel.stream` use like any trained run, plus RUN/imported.json saying where it
came from.

What the weights cannot tell (attention heads) comes from the reference's release settings,
per size; widths, depths, class counts and the depth map size are read from the weights.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import sys
import zipfile
from pathlib import Path

import torch

from stillmotion.config import Config, DataConfig, HeadConfig, TaskConfig, TemporalConfig, TrainConfig, check
from stillmotion.errors import UsageError
from stillmotion.model import checkpoint
from stillmotion.reference.cores import core_name, core_settings, load_strict, to_ours
from stillmotion.reference.pickled import Unreadable, find_pickled, load_plain
from stillmotion.reference.readouts import attentive_state, part

ARCHS = ("dinov3_rvmrnn", "dinov3_mamba", "dinov3_mambamix", "dinov3_gatedmambamix", "rvm")
SIZES = {"small": "dinov3-s", "base": "dinov3-b", "large": "dinov3-l"}  # the frozen ViT each size needs
RVM_HEADS = {"small": 8, "base": 12, "large": 16}  # the RVM core's attention heads per size
MIX_HEADS = 16  # MMix / GMMix spatial attention heads, every size


#: task -> (our task, frames per clip, frames per second, input size, readout heads) as the
#: reference's inference scripts run the released models
TASKS = {
    "ssv2": ("classification", 16, 6.0, 224, 12),
    "waymo": ("box_tracking", 16, 5.0, 256, 4),
    "pt": ("point_tracking", 16, 12.0, 224, 8),
    "scannet": ("depth", 16, 12.0, 224, 16),
    "nuscenes": ("camera_pose", 16, 12.0, 224, 16),  # the pose head has no attention: heads unused
}
IGNORED = ("loss_fn.",)  # training-only entries of the released checkpoints (loss balancing weights)


class ReferenceImportError(UsageError):
    """A checkpoint that cannot become a run; the message names the file and what is wrong."""


def read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """The model weights of a Lightning checkpoint, a state-dict file or a safetensors file, with
    the `model.` prefix and training-only entries removed. Pickled code is never run."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceImportError(f"{path}: checkpoint not found")
    expected = "give a Lightning .ckpt, a state dict saved by torch.save, or a .safetensors file"
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw = load_file(str(path))
        except SafetensorError as exc:
            raise ReferenceImportError(f"{path}: not a readable safetensors file ({exc}); {expected}") from None
    else:
        with path.open("rb") as file:
            head = file.read(8)
        if not (zipfile.is_zipfile(path) or head[:1] == b"\x80"):  # torch.save's zip, or a legacy pickle
            raise ReferenceImportError(f"{path}: not a PyTorch checkpoint (neither the zip archive torch.save writes "
                                       f"nor a pickle; it starts with {head!r}); {expected}")
        try:
            raw = load_plain(path)
        except (pickle.UnpicklingError, Unreadable) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ReferenceImportError(
                f"{path}: cannot be read as plain weights ({first}). Only tensors, numbers and containers are "
                "loaded (no pickled code); save its state_dict on its own, or as safetensors") from None
        except Exception as exc:  # noqa: BLE001 - torch.load on a file that is no checkpoint fails in many ways
            raise ReferenceImportError(f"{path}: not a PyTorch checkpoint (torch.load: {_first_line(exc)}); "
                                       f"{expected}") from None
        if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
            raw = raw["state_dict"]  # the rest (hyper_parameters, callbacks, ...) is not used
        found = find_pickled(raw)
        if found:
            raise ReferenceImportError(f"{path}: the weights hold a pickled {found[1]} at {found[0]}, not a tensor; "
                                       "only tensors are read (no pickled code runs)")
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ReferenceImportError(f"{path}: no state dict of tensors in it (a Lightning .ckpt has one under "
                                   "\"state_dict\")")
    return {k.removeprefix("model."): v for k, v in raw.items() if not k.removeprefix("model.").startswith(IGNORED)}


def _first_line(exc: Exception) -> str:
    """The exception's class and the first line of its message (KeyError: 101 says little alone)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _count(state: dict, pattern: str) -> int:
    found = {m.group(1) for k in state if (m := re.match(pattern, k))}
    return len(found)


def _core_kwargs(arch: str, size: str, state: dict, heads: int | None) -> dict:
    """The reference core's constructor keywords: as the release builds it, depth read from the weights."""
    core = part(state, "sequential_core.")
    if not core:
        raise ReferenceImportError("no temporal core (sequential_core.*) in the checkpoint")
    dim = int(core["output_norm.weight"].shape[0])
    if arch in ("dinov3_rvmrnn", "rvm"):
        mlp = int(core["transformer.layers.0.mlp.fc1.weight"].shape[0])
        return {"d_model": dim, "num_layers": _count(core, r"^transformer\.layers\.(\d+)\."),
                "num_heads": heads or RVM_HEADS[size], "mlp_ratio": mlp // dim}
    blocks = _count(core, r"^mamba_blocks\.(\d+)\.")
    a_log = core["mamba_blocks.0.mamba.A_log"]
    common = {"d_model": dim, "d_state": int(a_log.shape[1]), "expand": int(a_log.shape[0]) // dim}
    if arch == "dinov3_mamba":
        return {**common, "n_mamba_layers": blocks}
    fc1 = core["spatial_blocks.0.mlp.fc1.weight"]
    return {**common, "n_layers": blocks, "spatial_num_heads": heads or MIX_HEADS,
            "spatial_mlp_ratio": int(fc1.shape[0]) // dim}


def _readout(task: str, state: dict, heads: int) -> tuple[dict, dict, int]:
    """(head settings, task settings, outputs) read from the readout's weights."""
    if task == "ssv2":
        key = state.get("readout.key_proj.weight")
        if key is None:
            raise ReferenceImportError("no classification readout (readout.key_proj.*) in the checkpoint")
        return {"width": int(key.shape[0]), "heads": heads}, {}, int(state["readout.classifier.weight"].shape[0])
    if task == "scannet":
        query = state.get("readout.readout.query")
        if query is None:
            raise ReferenceImportError("no depth readout (readout.readout.*) in the checkpoint")
        side = 8 * round(query.shape[0] ** 0.5)
        width = int(state["readout.readout.key_proj.weight"].shape[0])
        return {"width": width, "heads": heads}, {"resolution": side}, 0
    proj = state.get("proj_to_readout.weight")
    wider = {} if proj is None else {"readout_width": int(proj.shape[0])}
    if task == "nuscenes":
        if "pose_head.1.weight" not in state:
            raise ReferenceImportError("no pose readout (pose_head.*) in the checkpoint")
        return {"hidden": int(state["pose_head.1.weight"].shape[0]), **wider}, {}, 0
    first = "bbox_query_encoder.bbox_encoder.0.weight" if task == "waymo" else "point_mlp.0.weight"
    if first not in state:
        raise ReferenceImportError(f"no {'box' if task == 'waymo' else 'point'} readout ({first.split('.')[0]}.*) "
                                   "in the checkpoint")
    return ({"hidden": int(state[first].shape[0]), "heads": heads,
             "layers": _count(state, r"^readout\.layers\.(\d+)\."), **wider},
            {}, 0)


def release_config(arch: str, task: str, size: str, state: dict, encoder: str | None = None,
                   core_heads: int | None = None, readout_heads: int | None = None,
                   classes: list[str] | None = None, box_format: str = "cxcywh") -> tuple[Config, dict]:
    """(the run's config, the reference core's keywords) for a released checkpoint's weights."""
    if arch not in ARCHS:
        raise ReferenceImportError(f"--arch {arch!r}: choose one of {', '.join(ARCHS)}")
    if task not in TASKS or size not in SIZES:
        raise ReferenceImportError(f"--task must be one of {', '.join(TASKS)} and --size one of {', '.join(SIZES)}")
    ours, frames, fps, image, heads = TASKS[task]
    ref_core = _core_kwargs(arch, size, state, core_heads)
    name, _, kw = core_settings(arch, ref_core)
    head, task_kw, outputs = _readout(task, state, readout_heads or heads)
    _check_heads(ref_core, head)
    if classes is not None and len(classes) != outputs:
        raise ReferenceImportError(f"{len(classes)} class names given, the readout has {outputs} outputs")
    cfg = Config(
        data=DataConfig(train="", encoder=encoder or SIZES[size], size=image, tokens="all", layers=_layers(arch),
                        fps=fps, resample="stride", frames=frames, resize="reference", clips_per_video=1,
                        dtype="float16"),
        temporal=TemporalConfig(name=name, size="small", kw=kw),
        head=HeadConfig(name="reference", box_format=box_format, **head),
        task=TaskConfig(name=ours, classes=classes or ([f"class_{i}" for i in range(outputs)] if outputs else None),
                        **task_kw),
        train=TrainConfig(steps=1, batch_size=1))  # never trained here: its weights are the release's
    check(cfg)
    return cfg, ref_core


def _check_heads(ref_core: dict, head: dict) -> None:
    """Attention heads must divide the width they split: the release's defaults fit its widths
    (384, 768, 1024), other widths need --core-heads / --readout-heads."""
    dim = ref_core["d_model"]
    core = ref_core.get("num_heads") or ref_core.get("spatial_num_heads")
    if core and dim % core:
        raise ReferenceImportError(f"the core is {dim} wide and {core} attention heads do not divide it: "
                                   "give the heads it was trained with, --core-heads N")
    if "heads" in head:
        width = head.get("width") or head.get("readout_width") or dim
        if width % head["heads"]:
            raise ReferenceImportError(f"the readout is {width} wide and {head['heads']} attention heads do not "
                                       "divide it: give the heads it was trained with, --readout-heads N")


def _layers(arch: str) -> int:
    """Encoder blocks a model reads: 4 mixed DINOv3 layers, or RVM's last one."""
    return 1 if arch == "rvm" else 4


def rvm_backbone(state: dict, rvm: str | Path | None, size: str) -> tuple[dict, str, int, dict]:
    """For `--arch rvm`: (the checkpoint's weights with the frozen core's that it lacks taken from
    the converted RVM folder, the encoder name, the core's heads, what was taken or checked).
    The reference loads the converted `.pth` first, then the checkpoint: the checkpoint's values win.
    A frozen ViT inside the checkpoint (`encoder.*`) must equal the folder's."""
    from safetensors.torch import load_file

    from stillmotion.encoders import rvm as names
    from stillmotion.reference.rvm import CORE_FILE, INFO_FILE, vit_model

    if rvm is None:
        if size not in names.NAMES.values():
            raise ReferenceImportError(f"--arch rvm: RVM was released as base and large, not {size}")
        rvm = next(n for n, s in names.NAMES.items() if s == size)
    folder = names.folder(rvm) if rvm in names.NAMES else Path(rvm)
    if not (folder / INFO_FILE).is_file():
        raise ReferenceImportError(f"--rvm {rvm}: no converted RVM there ({folder / INFO_FILE} missing); make it with "
                                   f"`stillmotion convert-rvm NPZ --out {folder}`")
    info = json.loads((folder / INFO_FILE).read_text())
    frozen = {f"sequential_core.{k}": v for k, v in load_file(str(folder / CORE_FILE)).items()}
    taken = sorted(set(frozen) - set(state))
    merged = {**frozen, **{k: v for k, v in state.items() if not k.startswith("encoder.")}}
    note = {"rvm": str(folder), "core_keys_from_rvm": taken}
    vit = part(state, "encoder.")
    if vit:
        from transformers import ViTModel

        ours = vit_model(vit, info["vit_heads"]).state_dict()
        theirs = ViTModel.from_pretrained(folder, add_pooling_layer=False).state_dict()
        if ours.keys() != theirs.keys() or not all(torch.equal(ours[k], theirs[k]) for k in ours):
            raise ReferenceImportError(f"the checkpoint's frozen RVM ViT (encoder.*) differs from {folder}'s: convert "
                                       "the .npz it was trained on")
        note["vit_in_checkpoint"] = f"equal to {folder}'s ({len(vit)} keys), used from there"
    return merged, str(rvm) if rvm in names.NAMES else str(folder.resolve()), int(info["core"]["heads"]), note


#: where each task's readout lives in a released checkpoint (waymo and pt: everything else);
#: the box, point and pose readouts may have `proj_to_readout` in front (the small and base builds)
_READOUT = {"ssv2": ("readout.",), "scannet": ("readout.readout.",), "nuscenes": ("pose_head.", "proj_to_readout.")}


DINOV3_HEADS = {"small": 6, "base": 12, "large": 16}  # DINOv3 ViT-S/B/L attention heads


def dinov3_inside(state: dict, size: str, ckpt) -> torch.nn.Module:
    """The frozen DINOv3 ViT a checkpoint holds (its original keys, `encoder.encoder.` removed) as
    transformers' `DINOv3ViTModel`; the heads from its RoPE periods (head width / 4 of them)."""
    from transformers import DINOv3ViTModel

    from stillmotion.reference.dinov3 import config_for, to_transformers

    try:
        dim = int(state["cls_token"].shape[-1])
        periods = state.get("rope_embed.periods")
        heads = dim // (4 * periods.numel()) if periods is not None else DINOV3_HEADS[size]
        vit = DINOv3ViTModel(config_for(state, heads))
        load_strict(vit, to_transformers(state), f"{ckpt}: its frozen DINOv3 ViT (encoder.encoder.*)")
    except (KeyError, ValueError) as exc:
        raise ReferenceImportError(f"{ckpt}: encoder.encoder.* is not a DINOv3 ViT as the reference saves it "
                                   f"({exc}); give --encoder to use another and leave it out") from None
    return vit.eval()


def batchnorm_defaults(model: torch.nn.Module, state: dict) -> dict:
    """The BatchNorm statistics `model` (just built) has and `state` lacks, at their initial values,
    for each BatchNorm whose weight `state` holds (a file saved without its buffers)."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and f"{name}.weight" in state:
            for buffer, value in module.named_buffers(recurse=False):
                if f"{name}.{buffer}" not in state:
                    out[f"{name}.{buffer}"] = value.clone()  # a model just built: mean 0, variance 1
    return out


def mapped_state(arch: str, task: str, state: dict, model: torch.nn.Module) -> dict:
    """The released weights under our model's parameter names; a key no part reads is an error."""
    if task in _READOUT:
        left = sorted(k for k in state if not k.startswith(("encoder.", "sequential_core.", *_READOUT[task])))
        if left:
            hint = (f"; the reference's {task} readout has no proj_to_readout (its width is the readout's own)"
                    if any(k.startswith("proj_to_readout.") for k in left) else "")
            raise ReferenceImportError(f"{task} checkpoint: key(s) no part of the model reads: {', '.join(left)}{hint}")
    out = {f"mix.{k}": v for k, v in part(state, "encoder.").items()}
    out.update({f"core.{k}": v for k, v in to_ours(core_name(arch), part(state, "sequential_core.")).items()})
    out.update({f"to_readout.{k}": v for k, v in part(state, "proj_to_readout.").items()})
    if task == "ssv2":
        head = attentive_state(part(state, "readout."), model.head)
    elif task == "scannet":
        head = {f"probe.{k}": v for k, v in attentive_state(part(state, "readout.readout."), model.head.probe).items()}
    elif task == "nuscenes":
        head = {f"mlp.{k}": v for k, v in part(state, "pose_head.").items()}
    else:
        head = {k: v for k, v in state.items()
                if not k.startswith(("encoder.", "sequential_core.", "proj_to_readout."))}
    out.update({f"head.{k}": v for k, v in head.items()})
    return out


def import_reference(ckpt: str | Path, arch: str, task: str, size: str, out: str | Path, encoder: str | None = None,
                     core_heads: int | None = None, readout_heads: int | None = None,
                     classes: list[str] | None = None, box_format: str = "cxcywh", rvm: str | None = None) -> Path:
    """Write a run folder holding the released model in `ckpt`; returns its checkpoint folder.
    `box_format`: what the Waymo readout reads and writes (see `heads.reference_tracking`).
    `rvm` (`--arch rvm`): the converted RVM (`rvm-b`, `rvm-l` or a `convert-rvm` folder; default by size)."""
    from stillmotion.model import model_for, task_outputs

    state = read_state(ckpt)
    note = {}
    if arch == "rvm":
        if encoder is not None:
            raise ReferenceImportError("--arch rvm reads RVM's own ViT: give the converted RVM with --rvm, "
                                       "not --encoder")
        state, encoder, heads, note = rvm_backbone(state, rvm, size)
        core_heads = core_heads or heads
    elif rvm is not None:
        raise ReferenceImportError(f"--rvm is for --arch rvm; {arch} reads DINOv3 (--encoder)")
    vit = None
    if arch != "rvm" and part(state, "encoder.encoder."):  # Lightning kept the frozen ViT too
        inside = part(state, "encoder.encoder.")
        state = {k: v for k, v in state.items() if not k.startswith("encoder.encoder.")}
        if encoder is None:
            vit = dinov3_inside(inside, size, ckpt)
            encoder = str((Path(out) / "encoder").resolve())
            note["encoder_from_checkpoint"] = f"{len(inside)} keys, saved as {encoder} (no Hub download needed)"
        else:
            note["encoder_from_checkpoint"] = f"{len(inside)} keys dropped: --encoder {encoder} given"
        print(f"{ckpt} holds the frozen DINOv3 ViT: {note['encoder_from_checkpoint']}", file=sys.stderr)
    try:
        cfg, ref_core = release_config(arch, task, size, state, encoder, core_heads, readout_heads, classes,
                                       box_format)
    except KeyError as exc:
        raise ReferenceImportError(f"{ckpt}: not a {arch} {task} checkpoint: no {exc.args[0]}") from None
    kind, _, outputs, _ = task_outputs(cfg)
    extra = 1 if arch == "rvm" else 5  # RVM: CLS; DINOv3: CLS + 4 registers
    model = model_for(cfg, kind, outputs, ref_core["d_model"], (1, 1), layers=_layers(arch), extra=extra)
    mapped = mapped_state(arch, task, state, model)
    defaults = batchnorm_defaults(model, mapped)
    if defaults:
        layers = sorted({k.rsplit(".", 1)[0] for k in defaults})
        print(f"warning: {ckpt} has no BatchNorm statistics for {', '.join(layers)}; they start at the defaults "
              "(mean 0, variance 1), as the reference loads such a file", file=sys.stderr)
        note["batchnorm_defaults"] = sorted(defaults)
    try:
        load_strict(model, {**mapped, **defaults}, f"{ckpt} ({arch}, {task})")
    except ValueError as exc:
        raise ReferenceImportError(str(exc)) from None
    out = Path(out)
    if checkpoint.latest(out) is not None:
        raise ReferenceImportError(f"{out}: already holds a run; choose another --out")
    folder = checkpoint.save_weights(out, 0, model, cfg)
    if vit is not None:
        vit.save_pretrained(out / "encoder")
    with open(ckpt, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    (out / "imported.json").write_text(json.dumps({"source": str(ckpt), "sha256": digest, "arch": arch, "task": task,
                                                  "size": size, "encoder": cfg.data.encoder, **note}, indent=2))
    return folder


__all__ = ["ARCHS", "SIZES", "TASKS", "ReferenceImportError", "import_reference", "read_state",
           "release_config"]
