"""Paper 000's readouts and encoder mix as its reference code saves them, mapped onto ours.

- Classification: its readout (input LayerNorm, a learned query per head, key and value
  projections to `readout_num_params`, the query added back through `out_proj`, an MLP with a
  residual, a classifier) is our `AttentiveProbe` with `width=readout_num_params`, read per frame.
- The encoder mix (`encoder.interm_mlps.*`) is our `LayerMix`.
"""

from __future__ import annotations

import re

import torch

from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.reference.cores import load_strict
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
        for pattern, replacement in _ATTENTIVE:
            key = re.sub(pattern, replacement, key)
        out[key] = value.reshape(value.shape[0], -1) if key == "queries" else value  # (Q, H, E) -> (Q, H * E)
    out.setdefault("time_embed", torch.zeros_like(probe.time_embed))
    return out


def classification_readout(kwargs: dict, state: dict) -> AttentiveProbe:
    """Our probe for `RVMStreamingClassificationWrapper(**kwargs)`'s readout, holding `state`
    (its `readout.*` entries, prefix removed). Read per frame: (B, N, D) -> (B, num_classes)."""
    probe = AttentiveProbe(kwargs["d_enc"], kwargs["num_classes"], num_queries=kwargs.get("readout_num_queries", 1),
                           num_heads=kwargs["readout_num_heads"], mlp_ratio=kwargs.get("readout_mlp_ratio", 4),
                           width=kwargs["readout_num_params"])
    if not kwargs.get("match_vjepa_implementation", True):
        raise ValueError("the reference readout without match_vjepa_implementation is not supported")
    load_strict(probe, attentive_state(state, probe), "classification readout")
    return probe


def layer_mix(dim: int, state: dict, extra: int = 5) -> LayerMix:
    """Our `LayerMix` holding the reference encoder's `interm_mlps.*` (prefix `encoder.` removed)."""
    layers = len({k.split(".")[1] for k in state if k.startswith("interm_mlps.")})
    mix = LayerMix(dim, layers, extra)
    load_strict(mix, state, "encoder mix")
    return mix
