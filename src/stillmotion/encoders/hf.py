"""Hugging Face `transformers` vision encoders as frozen per-frame encoders.

`HFEncoder.from_pretrained(name_or_path, size=None)` loads by hub id or local folder (the path
users run); `HFEncoder.from_config(config, size)` builds the same architecture from a config
object (random weights: how the tests check every family without a network). Patch tokens come
out as (B, N, D), N = (size / patch) ** 2; the class token and register tokens are dropped from
them and returned separately by `encode_all`.

Two options give what paper 000's released models read: `tokens="all"` keeps the class token
and registers in front of each frame's patches, and `layers=K` (or a list of 0-based block
indices) gives the outputs of K blocks instead of the last one: K evenly spaced blocks ending at
the last (K = 4 on a 12-block ViT: 2, 5, 8, 11), each through the model's final LayerNorm as its
last layer is, laid out layer by layer: (B, K * (extra + N), D).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from einops import rearrange

from stillmotion.encoders.base import FrozenEncoder
from stillmotion.errors import UsageError

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
CLIP = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@dataclass(frozen=True)
class Family:
    model_class: str  # transformers class building the vision tower
    has_cls: bool  # a class token leads the sequence
    registers: bool  # config.num_register_tokens register tokens follow it
    stats: tuple  # default (mean, std) on the 0..1 scale when the checkpoint names none
    interpolate: bool  # pass interpolate_pos_encoding for other input sizes
    naflex: bool = False  # SigLIP2 NaFlex: patchified input with a mask and spatial shapes
    final_norm: str | None = None  # the LayerNorm that `last_hidden_state` has passed (None: none)
    build: tuple = ()  # (keyword, value) pairs for the model class (e.g. no pooler)


#: config.model_type -> how to run it
FAMILIES = {
    "dinov2": Family("Dinov2Model", True, False, IMAGENET, False, final_norm="layernorm"),
    "dinov2_with_registers": Family("Dinov2WithRegistersModel", True, True, IMAGENET, False, final_norm="layernorm"),
    "dinov3_vit": Family("DINOv3ViTModel", True, True, IMAGENET, False, final_norm="norm"),
    "siglip": Family("SiglipVisionModel", False, False, HALF, True, final_norm="post_layernorm"),
    "siglip_vision_model": Family("SiglipVisionModel", False, False, HALF, True, final_norm="post_layernorm"),
    "siglip2": Family("Siglip2VisionModel", False, False, HALF, False, naflex=True, final_norm="post_layernorm"),
    "siglip2_vision_model": Family("Siglip2VisionModel", False, False, HALF, False, naflex=True,
                                   final_norm="post_layernorm"),
    "clip": Family("CLIPVisionModel", True, False, CLIP, True),
    "clip_vision_model": Family("CLIPVisionModel", True, False, CLIP, True),
    "ijepa": Family("IJepaModel", False, False, IMAGENET, True, final_norm="layernorm"),
    # a plain ViT: what `stillmotion convert-rvm` writes for RVM (its folder names mean 0, std 1)
    "vit": Family("ViTModel", True, False, HALF, True, final_norm="layernorm", build=(("add_pooling_layer", False),)),
}

TOKENS = ("patches", "all")  # what each layer gives: the patches, or the class token and registers too

#: short names -> Hugging Face hub ids (any other hub id or local folder works too)
SHORT_NAMES = {
    **{f"dinov2-{s}": f"facebook/dinov2-{n}"
       for s, n in [("s", "small"), ("b", "base"), ("l", "large"), ("g", "giant")]},
    **{f"dinov2-{s}-reg": f"facebook/dinov2-with-registers-{n}"
       for s, n in [("s", "small"), ("b", "base"), ("l", "large"), ("g", "giant")]},
    **{f"dinov3-{s}": f"facebook/dinov3-vit{s}16-pretrain-lvd1689m" for s in ("s", "b", "l")},
    "siglip-b": "google/siglip-base-patch16-224",
    "siglip-so400m": "google/siglip-so400m-patch14-384",
    "siglip2-b": "google/siglip2-base-patch16-224",
    "siglip2-b-naflex": "google/siglip2-base-patch16-naflex",
    "clip-b16": "openai/clip-vit-base-patch16",
    "clip-l14": "openai/clip-vit-large-patch14",
    "ijepa-h14": "facebook/ijepa_vith14_1k",
}


def _vision_config(config):
    """The vision tower's config (image-text checkpoints nest it as `vision_config`)."""
    return getattr(config, "vision_config", None) or config


def _family(config) -> Family:
    for model_type in (getattr(_vision_config(config), "model_type", None), getattr(config, "model_type", None)):
        if model_type in FAMILIES:
            return FAMILIES[model_type]
    raise UsageError(f"model type {getattr(config, 'model_type', None)!r} is not a supported vision encoder; "
                     f"supported: {', '.join(sorted(FAMILIES))}")


class HFEncoder(FrozenEncoder):
    """A transformers vision tower; forward: pixels (B, 3, S, S) -> patch tokens (B, N, D)."""

    def __init__(self, model: torch.nn.Module, family: Family, name: str, size: int | None = None,
                 stats: tuple | None = None, tokens: str = "patches", layers: int | list[int] | None = None):
        super().__init__()
        self.model, self.family, self.name = model, family, name
        config = _vision_config(model.config)
        self.patch = int(config.patch_size)
        native = (getattr(config, "image_size", None)
                  or int(round((getattr(config, "num_patches", 256)) ** 0.5)) * self.patch)
        self.image_size = int(size or native)
        if self.image_size % self.patch:
            raise UsageError(f"{name}: size {self.image_size} is not a multiple of the patch size {self.patch}")
        self.grid = (self.image_size // self.patch, self.image_size // self.patch)
        self.dim = int(config.hidden_size)
        self.num_registers = int(getattr(config, "num_register_tokens", 0)) if family.registers else 0
        mean, std = stats or family.stats
        self.mean, self.std = tuple(255 * m for m in mean), tuple(255 * s for s in std)
        if tokens not in TOKENS:
            raise UsageError(f"{name}: tokens must be one of {', '.join(TOKENS)}, got {tokens!r}")
        self.lead = int(family.has_cls) + self.num_registers
        self.extra = self.lead if tokens == "all" else 0
        self.layers = block_indices(int(config.num_hidden_layers), layers, name)
        self.freeze()

    @classmethod
    def from_config(cls, config, size: int | None = None, name: str | None = None, **options) -> HFEncoder:
        """`options`: `tokens`, `layers` (see the module's docstring)."""
        import transformers

        family = _family(config)
        model = getattr(transformers, family.model_class)(_vision_config(config), **dict(family.build))
        return cls(model, family, name or f"hf-config:{config.model_type}", size, **options)

    @classmethod
    def from_pretrained(cls, name_or_path: str, size: int | None = None, tokens: str = "patches",
                        layers: int | list[int] | None = None, name: str | None = None, **kw) -> HFEncoder:
        """`name`: what the encoder is called in caches and runs (default: the hub id or folder)."""
        import transformers

        hub_id = SHORT_NAMES.get(name_or_path, name_or_path)
        try:
            config = transformers.AutoConfig.from_pretrained(hub_id, **kw)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot load encoder {name_or_path!r} ({hub_id}): {exc}. Give a known name, "
                             "a Hugging Face hub id (weights must be downloadable or cached), "
                             "or a local model folder") from exc
        family = _family(config)
        model = getattr(transformers, family.model_class).from_pretrained(hub_id, **dict(family.build), **kw)
        return cls(model, family, name or hub_id, size, _checkpoint_stats(hub_id, **kw), tokens=tokens, layers=layers)

    def _run(self, pixels: torch.Tensor, hidden_states: bool = False):
        kw = {"output_hidden_states": True} if hidden_states else {}
        if self.family.naflex:
            patches = rearrange(pixels, "b c (h p) (w q) -> b (h w) (p q c)", p=self.patch, q=self.patch)
            b, n, _ = patches.shape
            mask = torch.ones(b, n, dtype=torch.long, device=pixels.device)
            shapes = torch.tensor([self.grid] * b, dtype=torch.long, device=pixels.device)
            return self.model(pixel_values=patches, pixel_attention_mask=mask, spatial_shapes=shapes, **kw)
        if self.family.interpolate:
            kw["interpolate_pos_encoding"] = True
        return self.model(pixel_values=pixels, **kw)

    def encode_all(self, pixels: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """{"patches": (B, N, D), "cls": (B, D) or None, "registers": (B, R, D)}, of the last layer."""
        hidden = self._run(pixels).last_hidden_state
        return {
            "patches": hidden[:, self.lead:],
            "cls": hidden[:, 0] if self.family.has_cls else None,
            "registers": hidden[:, int(self.family.has_cls) : self.lead],
        }

    def block_outputs(self, pixels: torch.Tensor) -> torch.Tensor:
        """The chosen blocks' full sequences, each through the final LayerNorm: (B, K, L, D)."""
        states = self._run(pixels, hidden_states=True).hidden_states  # embeddings, then every block
        norm = self.model.get_submodule(self.family.final_norm) if self.family.final_norm else None
        return torch.stack([norm(states[i + 1]) if norm is not None else states[i + 1] for i in self.layers], 1)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (B, 3, S, S) -> (B, N, D); with `tokens="all"` or `layers`, (B, K * (extra + N), D)."""
        if not self.layers:
            hidden = self._run(pixels).last_hidden_state
            return hidden[:, self.lead - self.extra:]
        return self.block_outputs(pixels)[:, :, self.lead - self.extra:].flatten(1, 2)


def block_indices(depth: int, layers: int | list[int] | None, name: str = "encoder") -> tuple[int, ...]:
    """0-based block indices: None -> () (the last block, as usual); K -> K evenly spaced blocks
    ending at the last, depth * k // K - 1 for k = 1..K (paper 000 mixes K = 4); a list -> itself."""
    if layers is None:
        return ()
    if isinstance(layers, int):
        if not 1 <= layers <= depth:
            raise UsageError(f"{name}: layers must be between 1 and its {depth} blocks, got {layers}")
        return tuple(depth * k // layers - 1 for k in range(1, layers + 1))
    chosen = tuple(int(i) for i in layers)
    if not chosen or any(not 0 <= i < depth for i in chosen):
        raise UsageError(f"{name}: block indices must lie in 0..{depth - 1}, got {list(chosen)}")
    return chosen


def _checkpoint_stats(hub_id: str, **kw) -> tuple | None:
    """(mean, std) from the checkpoint's preprocessor_config.json, if it has one."""
    from transformers.utils import cached_file

    try:
        path = cached_file(hub_id, "preprocessor_config.json", _raise_exceptions_for_missing_entries=False, **kw)
    except (OSError, ValueError):
        return None
    if not path:
        return None
    data = json.loads(open(path).read())
    if "image_mean" in data and "image_std" in data:
        return tuple(data["image_mean"]), tuple(data["image_std"])
    return None
