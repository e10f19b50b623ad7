"""What a temporal core costs: parameters, FLOPs per streamed frame, and the size of its state."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from stillmotion.temporal import REGISTRY, build


def state_bytes(state) -> int:
    """Bytes held by a streaming state (tensors inside nested lists and tuples)."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(s) for s in state)
    return 0


@torch.inference_mode()
def summarize(name: str, dim: int, tokens: int, warmup: int = 4, **kw) -> dict:
    """Parameters, FLOPs of one `step` on one stream of `tokens` tokens (matrix products and
    convolutions, as torch's FlopCounterMode counts them; element-wise work such as the Mamba
    recurrence is left out), and the state's bytes after `warmup` frames."""
    core = build(name, dim, **kw).eval()
    state = core.init_state(1, tokens)
    x = torch.randn(1, tokens, dim)
    for _ in range(warmup):
        _, state = core.step(x, state)
    counter = FlopCounterMode(display=False)
    with counter:
        core.step(x, state)
    return {"core": name, "parameters": sum(p.numel() for p in core.parameters()),
            "flops_per_frame": counter.get_total_flops(), "state_bytes": state_bytes(state)}


def summary_table(dim: int, tokens: int, names: list[str] | None = None, size: str = "small") -> str:
    rows = [summarize(n, dim, tokens, size=size) for n in (names or sorted(REGISTRY))]
    lines = [f"temporal cores ({size}) at width {dim}, {tokens} tokens per frame, one stream:",
             "| core | parameters | MFLOPs per frame | state (KiB) |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['core']} | {r['parameters']:,} | {r['flops_per_frame'] / 1e6:.2f} "
              f"| {r['state_bytes'] / 1024:.1f} |" for r in rows]
    return "\n".join(lines)
