"""Paper 000's readouts and encoder mix as its reference code saves them, mapped onto ours.

- Classification: its readout (input LayerNorm, a learned query per head, key and value
  projections to `readout_num_params`, the query added back through `out_proj`, an MLP with a
  residual, a classifier) is our `AttentiveProbe` with `width=readout_num_params`, read per frame.
- Depth: the same readout with one query per 8 x 8 patch of the map and a learned vector added
  to every token: our `PatchDepthReadout`.
- Camera pose: `pose_head.*` is our `PoseHead`.
- Boxes and points: `BoxDecoderReadout`, `PointDecoderReadout` (heads/query_decoder.py), under
  the reference's own parameter names.
- The encoder mix (`encoder.interm_mlps.*`) is our `LayerMix`.
"""

from __future__ import annotations

import torch

from stillmotion.errors import UsageError
from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.heads.patch_depth import PatchDepthReadout
from stillmotion.heads.pose import PoseHead
from stillmotion.heads.query_decoder import BoxDecoderReadout, PointDecoderReadout
from stillmotion.reference.cores import load_strict, renamed
from stillmotion.temporal.layer_mix import LayerMix

_ATTENTIVE = [(r"^input_norm\.", "norm."), (r"^temporal_posenc$", "time_embed"), (r"^query$", "queries"),
              (r"^key_proj\.", "k."), (r"^value_proj\.", "v."), (r"^out_proj\.", "proj."),
              (r"^mlp_norm\.", "mlp.0."), (r"^mlp_fc1\.", "mlp.1."), (r"^mlp_fc2\.", "mlp.3."),
              (r"^classifier\.", "out.")]


def part(state: dict, prefix: str) -> dict:
    """The entries of `state` under `prefix` (e.g. "readout."), the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def attentive_state(state: dict, probe: AttentiveProbe) -> dict:
    """The reference readout's state dict with our names; a readout without a temporal position
    embedding (classification: `add_temporal_posenc=False`) keeps ours at zero."""
    out = {}
    for key, value in state.items():
        key = renamed(key, _ATTENTIVE)
        out[key] = value.reshape(value.shape[0], -1) if key == "queries" else value  # (Q, H, E) -> (Q, H * E)
    out.setdefault("time_embed", torch.zeros_like(probe.time_embed))
    return out


def classification_readout(kwargs: dict, state: dict) -> AttentiveProbe:
    """Our probe for `RVMStreamingClassificationWrapper(**kwargs)`'s readout, holding its entries
    of the wrapper's state dict `state` (`readout.*`). Per frame: (B, N, D) -> (B, num_classes)."""
    probe = AttentiveProbe(kwargs["d_enc"], kwargs["num_classes"], num_queries=kwargs.get("readout_num_queries", 1),
                           num_heads=kwargs["readout_num_heads"], mlp_ratio=kwargs.get("readout_mlp_ratio", 4),
                           width=kwargs["readout_num_params"])
    if not kwargs.get("match_vjepa_implementation", True):
        raise UsageError("the reference readout without match_vjepa_implementation is not supported")
    load_strict(probe, attentive_state(part(state, "readout."), probe), "classification readout")
    return probe


def mixed_layers(depth: int) -> list[int]:
    """The ViT blocks whose outputs the released models mix (0-based): depth/4, depth/2,
    3 depth/4 and depth, each the last block of its quarter (ViT-L, 24 blocks: 5, 11, 17, 23)."""
    return [depth * k // 4 - 1 for k in (1, 2, 3, 4)]


def layer_mix(dim: int, state: dict, extra: int = 5) -> LayerMix:
    """Our `LayerMix` holding the reference encoder's `interm_mlps.*` (prefix `encoder.` removed)."""
    layers = len({k.split(".")[1] for k in state if k.startswith("interm_mlps.")})
    mix = LayerMix(dim, layers, extra)
    load_strict(mix, state, "encoder mix")
    return mix


def _same_width(kwargs: dict, what: str) -> None:
    widths = {kwargs["d_enc"], kwargs.get("d_seq_out", kwargs["d_enc"]), kwargs["readout_d_model"]}
    if len(widths) > 1:
        raise UsageError(f"{what}: a readout width other than the token width (a projection in between) "
                         f"is not supported; the released models use one width, got {sorted(widths)}")


def depth_readout(kwargs: dict, state: dict) -> PatchDepthReadout:
    """Our readout for `RVMStreamingDepthWrapper(**kwargs)`, holding its entries of the wrapper's
    state dict `state` (`readout.readout.*`). Per frame: (B, N, D) -> (B, input_size, input_size)."""
    _same_width(kwargs, "depth readout")
    if kwargs.get("patch_h", 8) != kwargs.get("patch_w", 8):
        raise UsageError("depth readout: only square patches are supported")
    head = PatchDepthReadout(kwargs["d_enc"], kwargs["input_size"], kwargs.get("patch_h", 8),
                             kwargs["readout_num_heads"], kwargs["readout_d_model"])
    load_strict(head.probe, attentive_state(part(state, "readout.readout."), head.probe), "depth readout")
    return head


def pose_readout(kwargs: dict, state: dict) -> PoseHead:
    """Our head for `RVMStreamingCameraPoseWrapper(**kwargs)`, holding its entries of the
    wrapper's state dict `state` (`pose_head.*`). Per frame: (B, N, D) -> (B, 9)."""
    _same_width(kwargs, "pose readout")
    head = PoseHead(kwargs["d_enc"], kwargs["pose_mlp_hidden_dim"])
    load_strict(head.mlp, part(state, "pose_head."), "pose readout")
    return head


def box_readout(kwargs: dict, state: dict) -> BoxDecoderReadout:
    """Our readout for `RVMStreamingTrackingWrapper(**kwargs)`, holding its entries of the
    wrapper's state dict `state` (`bbox_query_encoder.*`, `readout.*`, `bbox_head.*`)."""
    _same_width(kwargs, "box readout")
    if kwargs.get("readout_num_queries", 1) != 1:
        raise UsageError("box readout: one query per box is supported (the released models use 1)")
    head = BoxDecoderReadout(kwargs["d_enc"], kwargs["readout_num_heads"], kwargs["readout_num_layers"],
                             kwargs["bbox_mlp_hidden_dim"])
    load_strict(head, {k: v for k, v in state.items()
                       if k.startswith(("bbox_query_encoder.", "readout.", "bbox_head."))},
                "box readout")
    return head


def point_readout(kwargs: dict, state: dict) -> PointDecoderReadout:
    """Our readout for `RVMStreamingPointTrackingWrapper(**kwargs)`, holding its entries of the
    wrapper's state dict `state`."""
    _same_width(kwargs, "point readout")
    if not kwargs.get("predict_uncertainty", True):
        raise UsageError("point readout: only the released form with an uncertainty output is supported")
    head = PointDecoderReadout(kwargs["d_enc"], kwargs["readout_num_heads"], kwargs["readout_num_layers"],
                               kwargs["mlp_hidden_dim"], kwargs["num_fourier_frequencies"])
    mine = ("fourier_enc.", "point_mlp.", "to_query.", "readout.", "prediction_head.")
    load_strict(head, {k: v for k, v in state.items() if k.startswith(mine)}, "point readout")
    return head
