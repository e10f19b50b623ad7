"""What a core is fed: the frozen tokens, their change since the last frame, or both; tokens
optionally normalised first. Any core takes these through `build(..., input=, norm=)`.

- `tokens`: x_t.
- `diff`: x_t - x_{t-1} (zeros at the first frame): what moved, not what is there.
- `both`: [x_t ; x_t - x_{t-1}] along the width (2 D): what is there and how it changed, the
  change's size measured against the tokens' own.
`norm=True` puts a LayerNorm without learned scale on each token before the difference is
taken: frozen encoders' tokens can be large (EfficientNet-Lite0's stride-16 tokens have a
standard deviation of about 6), and the change then keeps its size relative to the token.

Streaming keeps the previous frame's (normalised) tokens in the state, so `step` equals `forward`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stillmotion.errors import UsageError
from stillmotion.temporal.base import TemporalCore

INPUTS = ("tokens", "diff", "both")


def width(dim: int, input: str) -> int:
    """The width the inner core sees for tokens of width `dim`."""
    return 2 * dim if input == "both" else dim


class TokenInputs(TemporalCore):
    """`core` (built for `width(dim, input)`) fed the chosen input: (B, T, N, D) -> the core's
    output (B, T, N, D_out)."""

    def __init__(self, core: TemporalCore, dim: int, input: str = "diff", norm: bool = False):
        super().__init__()
        if input not in INPUTS:
            raise UsageError(f"temporal input {input!r}: choose one of {', '.join(INPUTS)}")
        self.core, self.dim, self.input, self.norm = core, dim, input, norm
        self.out_dim = core.out_dim

    def _feed(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        change = x - last
        return {"tokens": x, "diff": change, "both": torch.cat([x, change], -1)}[self.input]

    def _normed(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:]) if self.norm else x

    def forward(self, x, mask=None):
        x = self._normed(x)
        return self.core(self._feed(x, torch.cat([x[:, :1], x[:, :-1]], 1)), mask)

    def init_state(self, batch, tokens, device="cpu"):
        return None, self.core.init_state(batch, tokens, device)

    def step(self, x_t, state):
        last, inner = state
        x_t = self._normed(x_t)
        y, inner = self.core.step(self._feed(x_t, x_t if last is None else last), inner)
        return y, (x_t, inner)
