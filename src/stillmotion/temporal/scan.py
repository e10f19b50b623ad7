"""The selective scan of Mamba (Gu & Dao 2023) in plain PyTorch.

Per channel d and state n, with a diagonal A (negative), input-dependent dt, B and C:

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,      y_t = C_t . h_t + D * x_t

- `selective_scan_loop`: the recurrence written out one step at a time, from the equations
  (the reference the tests check against, and what streaming runs, one step per frame).
- `selective_scan_parallel`: all steps at once. With a_t = exp(dt_t A) and b_t = dt_t B_t x_t
  the pairs (a, b) compose associatively, (a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2), so
  log2(L) doubling rounds give every h_t (Hillis-Steele). Only products of a_t <= 1 appear,
  so it is stable at any length; time is cut in chunks to bound memory, the state carried over.
- `selective_scan`: the CUDA kernels of `mamba_ssm` when importable and the tensors are on a
  GPU, else the parallel scan on CUDA and the loop on the CPU, where bench/temporal.py found
  the loop faster (the doubling rounds do log2(L) times the arithmetic, and a CPU runs each
  step's arithmetic at full speed anyway).

Shapes: x, dt (B, L, E); A (E, S); Bm, Cm (B, L, S); Dskip (E,); h (B, E, S).
"""

from __future__ import annotations

import torch


def scan_step(x_t, dt_t, A, B_t, C_t, Dskip, h):
    """One step of the recurrence: x_t, dt_t (B, E); B_t, C_t (B, S); h (B, E, S) -> y_t (B, E), h.

    Without autograd (streaming inference) the (B, E, S) update runs in place on one fresh
    buffer, which about halves its time on a CPU; with autograd every op makes a new tensor."""
    decay = dt_t[:, :, None] * A
    drive = (dt_t * x_t)[:, :, None]
    if torch.is_grad_enabled():
        h = torch.addcmul(drive * B_t[:, None], decay.exp(), h)
    else:
        h = decay.exp_().mul_(h).addcmul_(drive, B_t[:, None])
    return torch.bmm(h, C_t[:, :, None])[..., 0] + Dskip * x_t, h


def selective_scan_loop(x, dt, A, Bm, Cm, Dskip, h0=None):
    """One step at a time -> y (B, L, E), h_L (B, E, S)."""
    b, length, e = x.shape
    h = x.new_zeros(b, e, A.shape[1]) if h0 is None else h0
    ys = []
    for t in range(length):
        y, h = scan_step(x[:, t], dt[:, t], A, Bm[:, t], Cm[:, t], Dskip, h)
        ys.append(y)
    return torch.stack(ys, dim=1), h


def selective_scan_parallel(x, dt, A, Bm, Cm, Dskip, h0=None, chunk: int = 64):
    """Doubling scan over chunks of `chunk` steps -> y (B, L, E), h_L (B, E, S)."""
    b, length, e = x.shape
    h = x.new_zeros(b, e, A.shape[1]) if h0 is None else h0
    ys = []
    for start in range(0, length, chunk):
        sl = slice(start, start + chunk)
        a = torch.exp(dt[:, sl, :, None] * A)  # (B, c, E, S)
        hs = (dt[:, sl, :, None] * Bm[:, sl, None, :]) * x[:, sl, :, None]
        k = 1
        while k < a.shape[1]:  # after the round for k, (a_t, hs_t) compose steps t-2k+1 .. t
            hs = torch.cat([hs[:, :k], torch.addcmul(hs[:, k:], a[:, k:], hs[:, :-k])], dim=1)
            a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
            k *= 2
        hs = torch.addcmul(hs, a, h[:, None])  # the state from before the chunk, decayed
        ys.append(torch.einsum("bles,bls->ble", hs, Cm[:, sl]) + Dskip * x[:, sl])
        h = hs[:, -1]
    return torch.cat(ys, dim=1), h


def _mamba_ssm_scan():
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except ImportError:
        return None
    return selective_scan_fn


def selective_scan(x, dt, A, Bm, Cm, Dskip, h0=None):
    """The fastest exact scan available here -> y (B, L, E), h_L (B, E, S)."""
    if x.is_cuda and h0 is None and (kernel := _mamba_ssm_scan()) is not None:
        y, h = kernel(x.transpose(1, 2).contiguous(), dt.transpose(1, 2).contiguous(), A.contiguous(),
                      Bm.transpose(1, 2).contiguous(), Cm.transpose(1, 2).contiguous(), Dskip.float(),
                      return_last_state=True)
        return y.transpose(1, 2), h
    if x.is_cuda:
        return selective_scan_parallel(x, dt, A, Bm, Cm, Dskip, h0)
    return selective_scan_loop(x, dt, A, Bm, Cm, Dskip, h0)
