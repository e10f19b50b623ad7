"""The one interface every temporal core answers.

- `forward(x (B, T, N, D), mask (B, T) | None) -> (B, T, N, D_out)`: the whole clip at once.
- `init_state(batch, tokens)` then `step(x_t (B, N, D), state) -> (y_t (B, N, D_out), state)`:
  one frame at a time, for streams.

Cores are causal: the output at frame t depends on frames <= t only, so stepping through a
clip gives the clip forward's outputs. Padded clips are padded at the end; `mask` marks the real
frames (True) and cores that pool over time leave the padding out.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TemporalCore(nn.Module):
    out_dim: int

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def init_state(self, batch: int, tokens: int, device: torch.device | str = "cpu") -> Any:
        raise NotImplementedError

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError
