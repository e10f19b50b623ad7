"""The selective scan of Mamba (Gu & Dao 2023) in plain PyTorch.

Per channel d and state n, with a diagonal A (negative), input-dependent dt, B and C:

    h_t = exp(dt_t * A) * h_{t-1} + dt_t * B_t * x_t,      y_t = C_t . h_t + D * x_t

- `selective_scan_loop`: the recurrence written out one step at a time, from the equations
  (the reference the tests check against, and what streaming runs, one step per frame).
- `selective_scan_parallel`: all steps at once. With a_t = exp(dt_t A) and b_t = dt_t B_t x_t
  the pairs (a, b) compose associatively, (a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2), so
  log2(L) doubling rounds give every h_t (Hillis-Steele). Only products of a_t <= 1 appear,
  so it is stable at any length; time is cut in chunks to bound memory, the state carried over,
  and in training each chunk is recomputed in backward rather than kept.
- `selective_scan`: the CUDA kernels of `mamba_ssm` when importable and the tensors are on a
  GPU, else the parallel scan on CUDA and the loop on the CPU, where bench/temporal.py found
  the loop faster (the doubling rounds do log2(L) times the arithmetic, and a CPU runs each
  step's arithmetic at full speed anyway).

Shapes: x, dt (B, L, E); A (E, S); Bm, Cm (B, L, S); Dskip (E,); h (B, E, S).
"""

from __future__ import annotations

import torch
import torch.utils.checkpoint


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


def _scan_chunk(x, dt, A, Bm, Cm, Dskip, h):
    """One chunk of the doubling scan from state h -> y (B, c, E), the chunk's last state."""
    a = torch.exp(dt[..., None] * A)  # (B, c, E, S)
    hs = (dt[..., None] * Bm[:, :, None, :]) * x[..., None]
    k = 1
    while k < a.shape[1]:  # after the round for k, (a_t, hs_t) compose steps t-2k+1 .. t
        hs = torch.cat([hs[:, :k], torch.addcmul(hs[:, k:], a[:, k:], hs[:, :-k])], dim=1)
        a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
        k *= 2
    hs = torch.addcmul(hs, a, h[:, None])  # the state from before the chunk, decayed
    return torch.einsum("bles,bls->ble", hs, Cm) + Dskip * x, hs[:, -1]


def selective_scan_parallel(x, dt, A, Bm, Cm, Dskip, h0=None, chunk: int = 64, recompute: bool | None = None):
    """Doubling scan over chunks of `chunk` steps -> y (B, L, E), h_L (B, E, S).

    With `recompute` (default: when autograd records) each chunk's (B, chunk, E, S) tensors are
    not kept for backward but recomputed there, one chunk at a time (activation checkpointing):
    what a layer keeps is its inputs and outputs, (B, L, E) and the chunks' (B, E, S) states, so
    training memory no longer grows with chunk x E x S per step."""
    b, length, e = x.shape
    h = x.new_zeros(b, e, A.shape[1]) if h0 is None else h0
    recompute = torch.is_grad_enabled() if recompute is None else recompute
    ys = []
    for start in range(0, length, chunk):
        sl = slice(start, start + chunk)
        part = (x[:, sl], dt[:, sl], A, Bm[:, sl], Cm[:, sl], Dskip, h)
        if recompute:
            y, h = torch.utils.checkpoint.checkpoint(_scan_chunk, *part, use_reentrant=False)
        else:
            y, h = _scan_chunk(*part)
        ys.append(y)
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
        # the kernel wants u and delta in one dtype; under bf16 autocast x comes in bf16 and dt in
        # float32 (softplus runs in float32): all in float32, as the kernel accumulates anyway
        f32 = lambda t: t.float().transpose(1, 2).contiguous()  # noqa: E731
        y, h = kernel(f32(x), f32(dt), A.float().contiguous(), f32(Bm), f32(Cm), Dskip.float(),
                      return_last_state=True)
        return y.transpose(1, 2), h
    if x.is_cuda:
        return selective_scan_parallel(x, dt, A, Bm, Cm, Dskip, h0)
    return selective_scan_loop(x, dt, A, Bm, Cm, Dskip, h0)
