"""Mamba (Gu & Dao 2023) over time, and the M core: per token, a stack of Mamba blocks.

The mixer: in-projection to 2E (E = expand * D), a causal depthwise conv1d (kernel 4) + SiLU,
input-dependent dt (through a rank-R bottleneck, softplus), B and C; diagonal A = -exp(A_log);
the selective scan; gated by SiLU(z); out-projection. Its streaming state is the conv's last
kernel - 1 inputs and the scan's h.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from stillmotion.temporal.layers import TokenStack
from stillmotion.temporal.scan import scan_step, selective_scan


class MambaMixer(nn.Module):
    """x (B, L, D) -> (B, L, D); `step(x_t (B, D), state)` for one step."""

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, d_conv: int = 4,
                 dt_min: float = 1e-3, dt_max: float = 0.1):
        super().__init__()
        inner = expand * dim
        self.inner, self.d_state, self.d_conv = inner, d_state, d_conv
        self.dt_rank = math.ceil(dim / 16)
        self.in_proj = nn.Linear(dim, 2 * inner, bias=False)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus(bias) = dt
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, dim, bias=False)

    def _ssm_inputs(self, u):
        """u (..., E) after the conv -> dt (..., E), B (..., S), C (..., S)."""
        dt, b, c = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), b, c

    def forward(self, x):
        length = x.shape[1]
        u, z = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv(u.transpose(1, 2))[..., :length].transpose(1, 2))
        dt, b, c = self._ssm_inputs(u)
        y, _ = selective_scan(u, dt, -torch.exp(self.A_log), b, c, self.D)
        return self.out_proj(y * F.silu(z))

    def init_state(self, batch: int, device=None):
        """The conv's last inputs, time first (kernel - 1, B, E), and the scan's h (B, E, S)."""
        return (torch.zeros(self.d_conv - 1, batch, self.inner, device=device),
                torch.zeros(batch, self.inner, self.d_state, device=device))

    def step(self, x_t, state):
        conv_state, h = state
        u, z = self.in_proj(x_t).chunk(2, dim=-1)
        window = torch.cat([conv_state, u[None]])  # (kernel, B, E): time first keeps both ops contiguous
        u = F.silu((window * self.conv.weight[:, 0].T[:, None]).sum(0) + self.conv.bias)
        dt, b, c = self._ssm_inputs(u)
        y, h = scan_step(u, dt, -torch.exp(self.A_log), b.contiguous(), c.contiguous(), self.D, h)
        return self.out_proj(y * F.silu(z)), (window[1:], h)


class MambaBlock(nn.Module):
    """Pre-norm residual: x + Dropout(Mamba(LN(x))), over (B, L, D)."""

    def __init__(self, dim: int, d_state: int = 16, expand: int = 2, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mixer = MambaMixer(dim, d_state, expand)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return x + self.drop(self.mixer(self.norm(x)))

    def init_state(self, batch, device=None):
        return self.mixer.init_state(batch, device)

    def step(self, x_t, state):
        y, state = self.mixer.step(self.norm(x_t), state)
        return x_t + self.drop(y), state


class TokenMamba(TokenStack):
    """M: per token, `layers` Mamba blocks over time, then a LayerNorm. (B, T, N, D) -> (B, T, N, D)."""

    def __init__(self, dim: int, layers: int = 2, d_state: int = 16, expand: int = 2, dropout: float = 0.1):
        super().__init__(dim, [MambaBlock(dim, d_state, expand, dropout) for _ in range(layers)])
