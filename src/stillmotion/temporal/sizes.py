"""Named sizes for every core: `build(name, dim, size="base")`; keywords given to `build` win.

- `tiny`: for tests and quick CPU checks (one layer, narrow).
- `small`: each core's constructor defaults: what the demo and the CPU configs train.
- `base`: a GPU-sized core. The streaming paper (000) does not state its cores' depths; 4
  layers with 8 heads is our choice at that scale. TMM's is AdViSe's: inner width 256, output
  512, temporal kernel 3, 1 block (the paper's best on UCF101; its released config has 4 blocks
  with temporal kernel 1: `temporal.kw` `{depth: 4, kernel: 1}`).
- `large`: 8 layers; TMM at inner width 1024 (the widest AdViSe found still helping) with 4
  blocks (more blocks helped it on Diving48).

Heads must divide the token width (8 heads: widths 384, 768, 1024 and the default 112 all do).
"""

from __future__ import annotations

from stillmotion.errors import UsageError

SIZES: dict[str, dict[str, dict]] = {
    "tiny": {
        "gru": {"hidden": 32},
        "mamba": {"layers": 1, "d_state": 8, "expand": 1},
        "mmix": {"layers": 1, "heads": 2, "d_state": 8, "expand": 1},
        "gmmix": {"layers": 1, "heads": 2, "d_state": 8, "expand": 1},
        "rvm": {"layers": 1, "heads": 2},
        "tmm": {"width": 16, "inner": 8, "depth": 1},
        "causal-attention": {"layers": 1, "heads": 2, "window": 8},
    },
    "small": {},
    "base": {
        "gru": {"hidden": 512, "layers": 2},
        "mamba": {"layers": 4},
        "mmix": {"layers": 4, "heads": 8},
        "gmmix": {"layers": 4, "heads": 8},
        "rvm": {"layers": 4, "heads": 8},
        "tmm": {"width": 512, "inner": 256, "depth": 1, "kernel": 3},
        "causal-attention": {"layers": 4, "heads": 8, "window": 32},
    },
    "large": {
        "gru": {"hidden": 1024, "layers": 2},
        "mamba": {"layers": 8},
        "mmix": {"layers": 8, "heads": 8},
        "gmmix": {"layers": 8, "heads": 8},
        "rvm": {"layers": 8, "heads": 8},
        "tmm": {"width": 1024, "inner": 1024, "depth": 4, "kernel": 3},
        "causal-attention": {"layers": 8, "heads": 8, "window": 64},
    },
}


def size_kwargs(name: str, size: str) -> dict:
    """The keywords of core `name` at `size` (empty where the core has nothing to size)."""
    if size not in SIZES:
        raise UsageError(f"unknown core size {size!r}; known sizes: {', '.join(SIZES)}")
    return dict(SIZES[size].get(name, {}))
