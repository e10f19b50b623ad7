"""A temporal core and a readout over frozen-encoder tokens: the model every task trains.

- "classes" tasks: in `stream` mode the readout sees one frame's N output tokens at a time and
  the clip's answer is its last real frame's (the streaming protocol); in `clip` mode it sees
  all T x N tokens at once. "embedding" (video-text) reads out the same way, into the text
  encoder's space.
- "tokens" tasks (masked-token prediction): frames marked `hide` are replaced by a learned mask
  token before the core, and a per-token Linear maps the core's output back to token width.
- "boxes" and "points" tasks: a tracking readout reads each frame's tokens in turn, the
  previous frame's prediction as its query, starting from `query` (the box or points given at
  frame 0); "depth": a depth map per frame; "pose": the camera's motion since the last frame
  (9 numbers: translation + 6-D rotation) per frame. These kinds have the task's own readout,
  or paper 000's with `head="reference"` (see `heads.readouts`).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from stillmotion.errors import UsageError
from stillmotion.heads.masked_text import MaskedTextDecoder
from stillmotion.heads.readouts import ReadoutSpec, readout_for
from stillmotion.temporal import build
from stillmotion.temporal.layer_mix import LayerMix


def last_real(per_frame: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(B, T, ...) per-frame values -> (B, ...) at each clip's last real frame."""
    if mask is None:
        return per_frame[:, -1]
    idx = mask.long().sum(1).clamp(min=1) - 1
    return per_frame[torch.arange(len(per_frame)), idx]


class VideoModel(nn.Module):
    """Core + readout (see `heads.readouts` for which readout `head` names). With tokens of
    K = `layers` blocks per frame (B, T, K * (extra + N), D), a trained `LayerMix` first mixes
    them into one layer (paper 000's encoder mix); `extra` leading tokens (class token,
    registers) go through the core with the patches and are dropped before readouts that read
    the patch grid alone."""

    def __init__(self, dim: int, kind: str, num_outputs: int, core: str = "gru", size: str = "small",
                 core_kw: dict | None = None, head: str = "attentive", mode: str = "stream",
                 heads: int = 4, queries: int = 1, max_frames: int = 16, grid: tuple[int, int] = (1, 1),
                 resolution: int = 32, inputs: str = "tokens", norm: bool = False, hidden: int = 1024,
                 probe_width: int | None = None, decoder_layers: int = 1, layers: int = 1, extra: int = 0,
                 box_format: str = "cxcywh", readout_width: int | None = None, text: tuple[int, int] | None = None):
        super().__init__()
        self.kind, self.mode, self.layers, self.extra = kind, mode, layers, extra
        self.mix = LayerMix(dim, layers, extra) if layers > 1 else None
        self.core = build(core, dim, size=size, input=inputs, norm=norm, **(core_kw or {}))
        if kind == "tokens":
            self.mask_token = nn.Parameter(torch.zeros(dim))
        readout = readout_for(kind, head)
        self.patches_only = readout.patches_only
        # paper 000's proj_to_readout: the core's tokens widened (or narrowed) for the readout
        self.to_readout = nn.Linear(self.core.out_dim, readout_width) if readout_width else None
        self.head = readout.build(ReadoutSpec(
            readout_width or self.core.out_dim, dim, num_outputs, tuple(grid), heads, queries, max_frames, resolution,
            hidden, probe_width, decoder_layers, box_format))
        # a video-text model's masked-text decoder: (text hidden width, vocabulary size)
        self.text_decoder = MaskedTextDecoder(text[0], self.core.out_dim, text[1], heads=heads) if text else None

    def mixed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, K * L, D) tokens of K layers -> (B, T, L, D): the encoder mix (K > 1), else x."""
        if self.mix is None:
            return x
        b, t, n, d = x.shape
        return self.mix(x.view(b, t, self.layers, n // self.layers, d))

    def readable(self, y: torch.Tensor) -> torch.Tensor:
        """The core's tokens (..., N, D') the readout reads: the patches alone for grid readouts,
        through `to_readout` when the readout has its own width."""
        y = y[..., self.extra:, :] if self.patches_only and self.extra else y
        return y if self.to_readout is None else self.to_readout(y)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, hide: torch.Tensor | None = None,
                query: torch.Tensor | None = None, text: torch.Tensor | None = None,
                words_at: torch.Tensor | None = None, keep: float | None = None):
        """x (B, T, N, D), mask (B, T) real frames -> (B, C) for "classes"; (B, T, N, D) for
        "tokens" (with `hide` (B, T): the frames to replace by the mask token); (B, T, 4) for
        "boxes" from `query` (B, 4); (B, T, P, 3) for "points" from `query` (B, P, 2): x, y and a
        visibility logit (and an uncertainty logit with the reference readout); (B, T, R, R) for "depth";
        (B, T, 9) for "pose"; (B, E) for "embedding", and with `text` (B, L, H) (a masked caption's frozen token states)
        and `words_at` (B, L) (its hidden positions) {"video": (B, E), "words": (K, V) logits}.
        `keep` < 1 keeps that share of the patch positions, the same ones in every frame and clip
        (a video-text model's patch dropping on cached tokens)."""
        x = self.mixed(x)
        if keep is not None and keep < 1:
            n = x.shape[2] - self.extra
            chosen = torch.randperm(n, device=x.device)[:max(1, round(keep * n))].sort().values + self.extra
            x = torch.cat([x[:, :, :self.extra], x[:, :, chosen]], 2)
        if self.kind == "tokens":
            if hide is not None:
                x = torch.where(hide[:, :, None, None], self.mask_token.to(x.dtype), x)
            return self.head(self.core(x, mask))
        y = self.readable(self.core(x, mask))
        if self.kind in ("boxes", "points"):
            return self.head.track(y, query.to(y.dtype))
        if self.kind == "depth":
            return rearrange(self.head(rearrange(y, "b t n d -> (b t) n d")), "(b t) r s -> b t r s", b=y.shape[0])
        if self.kind == "pose":
            return self.per_frame(y)
        if self.kind == "embedding" and text is not None:
            video = rearrange(y, "b t n d -> b (t n) d")
            real = None if mask is None else mask.repeat_interleave(y.shape[2], dim=1)
            embedding = self.head(y, mask) if self.mode == "clip" else self.head(last_real(y, mask))
            return {"video": embedding, "words": self.text_decoder(text, video, words_at, real)}
        if self.mode == "clip":
            return self.head(y, mask)
        # Only the last real frame's answer counts, so only its tokens go through the readout
        # (per_frame on all T frames gives the same answer T times the work).
        return self.head(last_real(y, mask))

    def per_frame(self, y: torch.Tensor) -> torch.Tensor:
        """The readout on each frame's core tokens alone: (B, T, N, D') -> (B, T, C)."""
        b = y.shape[0]
        return rearrange(self.head(rearrange(y, "b t n d -> (b t) n d")), "(b t) c -> b t c", b=b)

    @torch.no_grad()
    def stream(self, x: torch.Tensor, query: torch.Tensor | None = None) -> torch.Tensor:
        """One frame at a time through the core's `step`: x (B, T, N, D) -> the prediction after
        each frame: (B, T, C) for "classes" (stream mode), (B, T, 4) boxes or (B, T, P, 3) points
        (4 with the reference readout) from `query`, (B, T, R, R) depth, (B, T, 9) pose. Only the
        core's state and the readout's (the last prediction, the target's look) are carried from
        frame to frame (see `start_stream`, `stream_step`)."""
        state = self.start_stream(x.shape[0], x.shape[2], x.device, query)
        out = []
        for i in range(x.shape[1]):
            prediction, state = self.stream_step(x[:, i], state)
            out.append(prediction)
        return torch.stack(out, 1)

    def start_stream(self, batch: int, tokens: int, device: torch.device, query: torch.Tensor | None = None) -> dict:
        """The state before a stream's first frame of `tokens` tokens (all K layers): the core's,
        and the query the tracking readouts start from (boxes (B, 4), points (B, P, 2))."""
        if self.kind in ("boxes", "points") and query is None:
            raise UsageError(f"a {self.kind} stream starts from a query: the first frame's {self.kind}")
        return {"core": self.core.init_state(batch, tokens // self.layers, device), "query": query, "readout": None}

    @torch.no_grad()
    def stream_step(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One frame's tokens (B, N, D) -> (its prediction, the next state)."""
        y, state = self.core_step(x, state)
        return self.readout_step(y, state)

    @torch.no_grad()
    def core_step(self, x: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The first half of `stream_step`: one frame's tokens (B, N, D) -> the tokens the readout
        reads (B, N', D') and the state with the core's advanced."""
        y, core = self.core.step(self.mixed(x[:, None])[:, 0], state["core"])
        return self.readable(y), {**state, "core": core}

    @torch.no_grad()
    def readout_step(self, y: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The second half: the core's tokens (B, N', D') -> (the prediction, the next state)."""
        readout = state["readout"]
        if self.kind in ("boxes", "points"):
            readout = self.head.start(y, state["query"].to(y.dtype)) if readout is None else readout
            prediction, readout = self.head.step(y, readout)
        else:
            prediction = self.head(y)
        return prediction, {**state, "readout": readout}
