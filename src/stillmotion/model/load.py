"""A run as a model: `load_model(run)` -> the frozen encoder and the trained core + readout, with
the run's preprocessing, from the checkpoint alone (weights + the config saved beside them).

    model = load_model("runs/boxes")        # the latest checkpoint; or a checkpoint folder
    tokens = model.tokens(frames)           # uint8 (T, H, W, 3) -> (T, N, D), as the cache stores them
    out = model.model(tokens[None])         # the clip forward

`model_for(cfg, ...)` builds the untrained model a config describes (the trainer's, too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from stillmotion.cache.pool import pool_tokens, pooled_shape
from stillmotion.config import Config
from stillmotion.encoders import FrozenEncoder, encoder_options, load as load_encoder
from stillmotion.errors import UsageError
from stillmotion.model import checkpoint
from stillmotion.model.video import VideoModel


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
        return self.encode(self.encoder.preprocess(frames))

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalized pixels (T, 3, S, S) (`encoder.preprocess`) -> tokens (T, N, D) on the device."""
        d = self.cfg.data
        tokens = pool_tokens(self.encoder.encode(pixels), self.encoder.grid, d.pool_space, d.pool_channels)
        return tokens.to(self.device)


class TaskOutputs(NamedTuple):
    kind: str  # what the model outputs
    classes: list[str]  # output names of a "classes" model
    outputs: int  # classes, or the embedding width
    extras: dict  # further `model_for` keywords the task asks for (`Task.model_extras`)


def task_outputs(cfg: Config) -> TaskOutputs:
    """What a run's model outputs, from its config alone."""
    from stillmotion.tasks import TASKS

    task = TASKS[cfg.task.name]
    if cfg.task.name == "classification":
        if not cfg.task.classes:
            raise UsageError("the run's config names no classes (runs trained before classes were saved with them "
                             "cannot be loaded alone; retrain, or set task.classes in its config.yaml)")
        return TaskOutputs(task.kind, list(cfg.task.classes), len(cfg.task.classes), {})
    instance = task(cfg.task, cfg.data.frames, None, samples=[])
    outputs = instance.num_outputs if task.kind in ("classes", "embedding") else 0
    return TaskOutputs(task.kind, list(getattr(instance, "classes", []) or []), outputs, instance.model_extras())


def load_model(run: str | Path, device: str | torch.device | None = None,
               step: int | str | None = None) -> LoadedModel:
    """The model of a run folder (its latest checkpoint, or `step`: a step number or "best") or of
    a checkpoint folder, in eval mode on `device` (default: CUDA when present)."""
    found = checkpoint.resolve(run, step)
    cfg = checkpoint.load_config(found)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    d = cfg.data
    encoder = load_encoder(d.encoder, device=str(device), **encoder_options(d.size, d.tokens, d.layers, d.resize))
    grid, dim = pooled_shape(encoder.grid, encoder.dim, d.pool_space, d.pool_channels)
    kind, classes, outputs, extras = task_outputs(cfg)
    model = model_for(cfg, kind, outputs, dim, grid, encoder.num_layers, encoder.extra, **extras)
    model.load_state_dict(checkpoint.load_weights(found))
    return LoadedModel(encoder, model.to(device).eval(), cfg, kind, classes, found)


def model_for(cfg: Config, kind: str, outputs: int, dim: int, grid: tuple[int, int], layers: int = 1,
              extra: int = 0, text: tuple[int, int] | None = None) -> VideoModel:
    """The model a run's config describes, for tokens of width `dim` on a `grid` of patches
    (`layers` blocks per frame, `extra` leading tokens each) and a task of `kind` with `outputs`;
    `text` (hidden width, vocabulary) adds the masked-text decoder of a video-text model. A
    video-text run with `task.tower=harvest` gets `HarvestTower` (the checkpoint's vision tower)."""
    if cfg.task.name == "video_text" and cfg.task.tower == "harvest":
        from stillmotion.model.harvest import HarvestTower, vision_tower

        return HarvestTower(vision_tower(cfg.data.encoder), keep=cfg.task.keep, text=text)
    return VideoModel(dim, kind, outputs, core=cfg.temporal.name, size=cfg.temporal.size, core_kw=dict(cfg.temporal.kw),
                      head=cfg.head.name, mode=cfg.head.mode, heads=cfg.head.heads, queries=cfg.head.queries,
                      max_frames=cfg.data.frames, grid=tuple(grid), resolution=cfg.task.resolution,
                      inputs=cfg.temporal.input, norm=cfg.temporal.norm, hidden=cfg.head.hidden,
                      probe_width=cfg.head.width, decoder_layers=cfg.head.layers, layers=layers, extra=extra,
                      box_format=cfg.head.box_format, readout_width=cfg.head.readout_width, text=text)
