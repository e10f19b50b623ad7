"""A trained (or imported) run as a video model that answers frame by frame.

    model = load_model("runs/boxes")            # encoder + core + readout, from the saved config
    streamer = Streamer(model)
    streamer.reset(query=box)                   # boxes / points: the first frame's, in the view
    for frame in frames:                        # uint8 (H, W, 3), any size
        prediction = streamer.step(frame)

`load_model` needs nothing but the run's checkpoint (weights + config): no training data. Each
frame goes through the same preprocessing as the token cache (short side to the encoder's size,
centre crop, normalisation, the run's pooling), then the core's `step` and the readout; only the
core's state and the readout's carry from frame to frame. The outputs equal the clip forward on
the same frames (tests/test_streaming.py).

Coordinates (boxes, points) are fractions of the encoder's square view (the centre crop);
`Prediction.in_source(width, height)` maps them back to the source frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stillmotion.cache.pool import pool_tokens, pooled_shape
from stillmotion.encoders import FrozenEncoder, encoder_options, load as load_encoder
from stillmotion.heads.model import VideoModel
from stillmotion.train import checkpoint
from stillmotion.train.config import Config


@dataclass
class LoadedModel:
    """A run's frozen encoder and trained model, on one device, with what they were trained for."""

    encoder: FrozenEncoder
    model: VideoModel
    cfg: Config
    kind: str  # what the model outputs: classes, boxes, points, depth, pose
    classes: list[str]  # output names of a "classes" model (empty otherwise)
    checkpoint: Path

    @property
    def device(self) -> torch.device:
        return self.encoder.device

    def tokens(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) -> the model's input tokens (T, N, D) on the device, as the
        cache stores them (pooled as the run pools)."""
        d = self.cfg.data
        tokens = self.encoder.encode_frames(frames)
        return pool_tokens(tokens, self.encoder.grid, d.pool_space, d.pool_channels).to(self.device)


def task_outputs(cfg: Config) -> tuple[str, list[str], int]:
    """(the task's output kind, class names, outputs) from a run's config alone."""
    from stillmotion.tasks import TASKS

    task = TASKS[cfg.task.name]
    if cfg.task.name == "classification":
        if not cfg.task.classes:
            raise ValueError("the run's config names no classes (runs trained before classes were saved with them "
                             "cannot be loaded alone; retrain, or set task.classes in its config.yaml)")
        return task.kind, list(cfg.task.classes), len(cfg.task.classes)
    instance = task(cfg.task, cfg.data.frames, None, samples=[])
    return task.kind, list(getattr(instance, "classes", []) or []), instance.num_outputs if task.kind == "classes" else 0


def load_model(run: str | Path, device: str | torch.device | None = None) -> LoadedModel:
    """The model of a run folder (its latest checkpoint) or of a checkpoint folder, in eval mode
    on `device` (default: CUDA when present)."""
    found = checkpoint.resolve(run)
    cfg = checkpoint.load_config(found)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    d = cfg.data
    encoder = load_encoder(d.encoder, device=str(device), **encoder_options(d.size, d.tokens, d.layers))
    grid, dim = pooled_shape(encoder.grid, encoder.dim, d.pool_space, d.pool_channels)
    kind, classes, outputs = task_outputs(cfg)
    from stillmotion.train.trainer import model_for

    model = model_for(cfg, kind, outputs, dim, grid, encoder.num_layers, encoder.extra)
    model.load_state_dict(checkpoint.load_weights(found))
    return LoadedModel(encoder, model.to(device).eval(), cfg, kind, classes, found)


@dataclass
class Prediction:
    """One frame's answer. `value`: class probabilities (C,); a box (4,) (x0, y0, x1, y1); points
    (P, 3+) x, y, visibility logit (and uncertainty); a depth map (R, R); a pose (9,). Coordinates
    are fractions of the encoder's square view."""

    kind: str
    value: torch.Tensor
    classes: list[str]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities ("classes" only)."""
        if self.kind != "classes":
            raise ValueError(f"a {self.kind} prediction has no classes")
        p, i = self.value.topk(min(k, len(self.value)))
        return [(self.classes[j] if j < len(self.classes) else str(j), float(q)) for q, j in zip(p, i.tolist())]

    def in_source(self, width: int, height: int) -> torch.Tensor:
        """Boxes (4,) or points (P, 2) in pixels of a width x height source frame (the view is its
        centre square, as the cache's preprocessing crops it)."""
        if self.kind not in ("boxes", "points"):
            raise ValueError(f"a {self.kind} prediction has no coordinates")
        side = min(width, height)
        offset = torch.tensor([(width - side) / 2, (height - side) / 2])
        if self.kind == "boxes":
            return self.value * side + offset.repeat(2)
        return self.value[..., :2] * side + offset


class Streamer:
    """Frames in, one `Prediction` per frame out, holding the core's and the readout's state."""

    def __init__(self, model: LoadedModel):
        self.loaded = model
        self.state: dict | None = None
        self.query: torch.Tensor | None = None

    def reset(self, query: torch.Tensor | np.ndarray | None = None) -> None:
        """Start a new stream; boxes (4,) and points (P, 2) start from `query` (fractions of the view)."""
        self.state = None
        self.query = None if query is None else torch.as_tensor(query, dtype=torch.float32)

    @torch.no_grad()
    def step(self, frame: np.ndarray | torch.Tensor) -> Prediction:
        """One uint8 frame (H, W, 3) -> its prediction."""
        loaded = self.loaded
        tokens = loaded.tokens(np.asarray(frame)[None] if not isinstance(frame, torch.Tensor) else frame[None])
        if self.state is None:
            query = None if self.query is None else self.query[None].to(loaded.device)
            self.state = loaded.model.start_stream(1, tokens.shape[1], loaded.device, query)
        out, self.state = loaded.model.stream_step(tokens, self.state)
        out = out[0].float().cpu()
        if loaded.kind == "classes":
            out = out.softmax(-1)
        return Prediction(loaded.kind, out, loaded.classes)
