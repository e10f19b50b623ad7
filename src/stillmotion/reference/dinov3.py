"""DINOv3 ViT weights as Meta's original code saves them (the `.pth` the released models of
paper 000 start from) -> transformers' `DINOv3ViTModel`, so a user holding the original file
runs the same network through transformers (`stillmotion.encoders`).

The original fuses q, k and v into one Linear whose k bias is masked to zero by a buffer
(`bias_mask`); transformers has three projections and no k bias (`key_bias=False`). RoPE periods
are a buffer there and a config value (`rope_theta`) here. The tests check every block's output
against the original code's on a tiny random ViT.
"""

from __future__ import annotations

import re

import torch

from stillmotion.errors import UsageError
from stillmotion.reference.cores import renamed

_RENAMES = [(r"^cls_token$", "embeddings.cls_token"), (r"^mask_token$", "embeddings.mask_token"),
            (r"^storage_tokens$", "embeddings.register_tokens"),
            (r"^patch_embed\.proj\.", "embeddings.patch_embeddings."),
            (r"^blocks\.(\d+)\.attn\.proj\.", r"model.layer.\1.attention.o_proj."),
            (r"^blocks\.(\d+)\.ls1\.gamma$", r"model.layer.\1.layer_scale1.lambda1"),
            (r"^blocks\.(\d+)\.ls2\.gamma$", r"model.layer.\1.layer_scale2.lambda1"),
            (r"^blocks\.(\d+)\.mlp\.fc1\.", r"model.layer.\1.mlp.up_proj."),
            (r"^blocks\.(\d+)\.mlp\.fc2\.", r"model.layer.\1.mlp.down_proj."),
            (r"^blocks\.(\d+)\.norm([12])\.", r"model.layer.\1.norm\2.")]
_SAME = ("norm.weight", "norm.bias")  # the final norm keeps its name


def to_transformers(state: dict) -> dict:
    """The original DINOv3 ViT state dict -> `DINOv3ViTModel`'s (raises on a key it does not know,
    or on a k-bias mask other than the original's)."""
    out, unknown = {}, []
    for key, value in state.items():
        fused = re.match(r"^blocks\.(\d+)\.attn\.qkv\.(weight|bias|bias_mask)$", key)
        if fused:
            block, kind = fused.groups()
            q, k, v = value.chunk(3, dim=0)
            prefix = f"model.layer.{block}.attention"
            if kind == "bias_mask":
                if not (q.eq(1).all() and k.eq(0).all() and v.eq(1).all()):
                    raise UsageError(f"{key}: expected the k bias masked out (1, 0, 1 by thirds)")
            elif kind == "weight":
                out.update({f"{prefix}.q_proj.weight": q, f"{prefix}.k_proj.weight": k, f"{prefix}.v_proj.weight": v})
            else:
                out.update({f"{prefix}.q_proj.bias": q, f"{prefix}.v_proj.bias": v})
            continue
        if key == "rope_embed.periods":
            continue  # a config value in transformers (rope_theta), checked by `config_for`
        new = renamed(key, _RENAMES)
        if new == key and key not in _SAME:
            unknown.append(key)
            continue
        out[new] = value.reshape(1, 1, -1) if key == "mask_token" else value
    if unknown:
        raise UsageError(f"not a DINOv3 ViT state dict: unknown key(s) {', '.join(sorted(unknown))}")
    return out


def config_for(state: dict, heads: int, rope_base: float = 100.0, eps: float = 1e-5, image_size: int = 224):
    """A `DINOv3ViTConfig` for the original state dict `state` (sizes read from it)."""
    from transformers import DINOv3ViTConfig

    dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    periods = state.get("rope_embed.periods")
    if periods is not None:
        head_dim = dim // heads
        expected = rope_base ** (2 * torch.arange(head_dim // 4, dtype=torch.float64) / (head_dim // 2))
        if periods.shape != expected.shape or not torch.allclose(periods.double(), expected, rtol=1e-5):
            raise UsageError(f"rope_embed.periods do not match RoPE base {rope_base} with {heads} heads")
    return DINOv3ViTConfig(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                           intermediate_size=state["blocks.0.mlp.fc1.weight"].shape[0],
                           num_register_tokens=state["storage_tokens"].shape[1], key_bias=False,
                           layer_norm_eps=eps, rope_theta=float(rope_base), image_size=image_size,
                           patch_size=state["patch_embed.proj.weight"].shape[-1])
