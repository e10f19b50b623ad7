"""Paper 000's temporal cores as its reference code builds and saves them, mapped onto ours.

The released models name their core by architecture (`dinov3_rvmrnn`, `dinov3_mamba`,
`dinov3_mambamix`, `dinov3_gatedmambamix`), build it from constructor keywords, and save its
weights under the reference's parameter names. `core_from_reference(arch, kwargs, state)` builds
the matching stillmotion core and loads those weights: the same numbers, checked against the
reference code's outputs in the tests (tests/test_reference.py).

- `rvm` uses the reference's parameter names as they are.
- `mamba`, `mmix`, `gmmix` keep ours; `to_ours` renames (`mamba_blocks.{i}.mamba.conv1d` ->
  `blocks.{i}.mixer.conv`, `spatial_blocks.{i}.sa_attn` -> `spatial.{i}.attn`, ...).
"""

from __future__ import annotations

import re

from stillmotion.errors import UsageError
from stillmotion.temporal import build
from stillmotion.temporal.base import TemporalCore

#: the reference's architecture name -> our core
ARCHS = {"dinov3_rvmrnn": "rvm", "dinov3_mamba": "mamba", "dinov3_mambamix": "mmix",
         "dinov3_gatedmambamix": "gmmix", "rvm": "rvm"}  # `rvm`: the same core on RVM's own ViT

#: the reference's core class -> its architecture name
CLASSES = {"GatedTransformerCore": "dinov3_rvmrnn", "MambaSeqCore": "dinov3_mamba",
           "MambaMixSeqCore": "dinov3_mambamix", "GatedMambaMixSeqCore": "dinov3_gatedmambamix"}

#: the reference's constructor keyword -> ours, per core (None: has no effect on the weights or
#: on eval outputs, so it is left out)
_SETTINGS = {
    "rvm": {"num_layers": "layers", "num_heads": "heads", "mlp_ratio": "mlp_ratio", "num_patches": None},
    "mamba": {"n_mamba_layers": "layers", "d_state": "d_state", "expand": "expand", "mamba_dropout": "dropout",
              "max_seqlen": None, "num_patches": None, "chunk_size": None},
    "mmix": {"n_layers": "layers", "d_state": "d_state", "expand": "expand", "mamba_dropout": "dropout",
             "spatial_num_heads": "heads", "spatial_mlp_ratio": "mlp_ratio", "gate_hidden": None,
             "max_seqlen": None, "num_patches": None, "chunk_size": None},
}
_SETTINGS["gmmix"] = _SETTINGS["mmix"]

_MAMBA = [(r"^mamba_blocks\.", "blocks."), (r"\.mamba\.", ".mixer."), (r"\.conv1d\.", ".conv."),
          (r"^output_norm\.", "norm.")]
_MIX = [(r"^spatial_blocks\.(\d+)\.sa_norm\.", r"spatial.\1.norm1."),
        (r"^spatial_blocks\.(\d+)\.sa_attn\.", r"spatial.\1.attn."),
        (r"^spatial_blocks\.(\d+)\.mlp_norm\.", r"spatial.\1.norm2."),
        (r"^spatial_blocks\.(\d+)\.mlp\.fc1\.", r"spatial.\1.mlp.0."),
        (r"^spatial_blocks\.(\d+)\.mlp\.fc2\.", r"spatial.\1.mlp.3."),
        (r"^mamba_blocks\.", "temporal."), (r"\.mamba\.", ".mixer."), (r"\.conv1d\.", ".conv."),
        (r"^output_norm\.", "norm.")]
_RENAMES = {"rvm": [], "mamba": _MAMBA, "mmix": _MIX, "gmmix": _MIX}


def core_name(arch: str) -> str:
    if arch not in ARCHS:
        raise UsageError(f"unknown reference architecture {arch!r}; known: {', '.join(ARCHS)}")
    return ARCHS[arch]


def core_settings(arch: str, kwargs: dict) -> tuple[str, int, dict]:
    """(our core's name, token width, its keywords) for the reference's constructor keywords."""
    name = core_name(arch)
    known = _SETTINGS[name]
    unknown = sorted(set(kwargs) - set(known) - {"d_model", "dropout"})
    if unknown:
        raise UsageError(f"{arch}: reference setting(s) {', '.join(unknown)} have no counterpart here")
    if name == "rvm" and kwargs.get("dropout", 0.0):
        raise UsageError(f"{arch}: dropout {kwargs['dropout']} inside the RVM core is not supported (0 is)")
    if name in ("mmix", "gmmix") and kwargs.get("gate_hidden", 0):
        raise UsageError(f"{arch}: an MLP gate (gate_hidden={kwargs['gate_hidden']}) is not supported; "
                         "the released models use the linear gate (gate_hidden=0)")
    ours = {known[k]: v for k, v in kwargs.items() if known.get(k)}
    return name, int(kwargs["d_model"]), ours


def renamed(key: str, rules: list[tuple[str, str]]) -> str:
    """`key` after every (pattern, replacement) of `rules`, applied in order."""
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def to_ours(name: str, state: dict) -> dict:
    """The reference core's state dict with our parameter names."""
    return {renamed(key, _RENAMES[name]): value for key, value in state.items()}


def load_strict(module, state: dict, what: str) -> None:
    """Load `state` into `module`, every key accounted for; otherwise an error listing them."""
    mine = module.state_dict()
    missing, unknown = sorted(set(mine) - set(state)), sorted(set(state) - set(mine))
    wrong = sorted(k for k in set(mine) & set(state) if tuple(mine[k].shape) != tuple(state[k].shape))
    if missing or unknown or wrong:
        parts = [f"missing {', '.join(missing)}" if missing else "", f"unknown {', '.join(unknown)}" if unknown else "",
                 "wrong shape " + ", ".join(f"{k} {tuple(state[k].shape)} (expected {tuple(mine[k].shape)})"
                                            for k in wrong) if wrong else ""]
        raise UsageError(f"{what}: the weights do not fit: " + "; ".join(p for p in parts if p))
    module.load_state_dict(state)


def core_from_reference(arch: str, kwargs: dict, state: dict) -> TemporalCore:
    """Our core for reference architecture `arch` built with the reference's constructor
    keywords `kwargs`, holding `state` (the reference core's state dict)."""
    name, dim, ours = core_settings(arch, kwargs)
    core = build(name, dim, **ours)
    load_strict(core, to_ours(name, state), f"{arch} core")
    return core
