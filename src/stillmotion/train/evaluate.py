"""Score a checkpoint: `evaluate_run(run, data=..., split=...)`.

The model comes from `model.load_model` (the checkpoint's weights and config alone); only the
videos scored are read, and their tokens come from the run's cache (the ones not in it are
extracted into it first, as training would). Which videos: `data` (a folder or manifest; with
`split`, only that split of it), else the run's own validation videos (`split="test"`: its test
split; `split="train"`: its training videos, a measure of fit). Per-clip outputs can be written
as JSON lines beside the metrics.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

from stillmotion import dist
from stillmotion.config import ConfigError, with_overrides
from stillmotion.data.manifest import Sample
from stillmotion.data.sources import load_samples
from stillmotion.model import LoadedModel, load_model
from stillmotion.tasks import TASKS
from stillmotion.train.source import ClipSource

#: settings that shape the model: a checkpoint is scored with the values it was trained with
MODEL_KEYS = ("temporal.", "head.", "task.name", "task.classes", "task.resolution", "data.encoder", "data.size",
              "data.tokens", "data.layers", "data.pool_space", "data.pool_channels")


def evaluate_run(run: str | Path, data: str | None = None, split: str | None = None, step: int | str | None = None,
                 device: str | None = None, overrides: list[str] | tuple[str, ...] = (),
                 predictions: str | Path | None = None, progress: bool = True) -> dict:
    """Metrics of a run's checkpoint on the chosen videos -> {"checkpoint", "data", "split",
    "videos", "clips", <split>: metrics, "failed"}; with `predictions`, one JSON line per clip."""
    for item in overrides:
        key = item.split("=", 1)[0]
        if any(key == k or (k.endswith(".") and key.startswith(k)) for k in MODEL_KEYS):
            raise ConfigError(f"override {item!r}: {key} shapes the model; a checkpoint is scored as it was "
                              "trained (override data, clip or batch settings only)")
    loaded = load_model(run, device, step)
    cfg = with_overrides(loaded.cfg, overrides)
    if data is None and not cfg.data.train:
        raise ConfigError(f"{run}: an imported model has no videos of its own; give --data VIDEOS")
    samples, name = _chosen(cfg, data, split)
    classes = loaded.classes if cfg.task.name == "classification" else None
    task = TASKS[cfg.task.name](cfg.task, cfg.data.frames, classes, samples=samples)
    run_dir = loaded.checkpoint.parent.parent
    source = ClipSource(cfg, loaded.encoder, samples, Path(cfg.data.cache) if cfg.data.cache else run_dir / "cache",
                        progress=progress)
    videos = source.videos(task, samples)
    clips = [c for v in videos for c in task.eval_clips(v)]
    if not clips:
        raise ConfigError(f"{data or cfg.data.val or cfg.data.train}: none of the {len(samples)} {name} videos can "
                          f"make a {cfg.task.name} clip of {cfg.data.frames} frames "
                          "(too short, unlabelled or unreadable)")
    keep = predictions is not None and loaded.kind != "tokens"  # predicted tokens are too many to write
    metrics, outputs = source.score(loaded.model, task, clips, loaded.device, cfg.train.batch_size, cfg.train.workers,
                                    keep_outputs=keep)
    if predictions is not None and dist.current().is_main:
        _write_predictions(Path(predictions), loaded, source.samples, clips, outputs)
    for path, reason in source.failed:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    return {"checkpoint": str(loaded.checkpoint), "data": data or cfg.data.val or cfg.data.train, "split": name,
            "videos": len(videos), "clips": len(clips), name: metrics,
            "failed": [{"path": p, "reason": r} for p, r in source.failed]}


def _chosen(cfg, data: str | None, split: str | None) -> tuple[list[Sample], str]:
    """The samples to score and the name their metrics are printed under."""
    d = cfg.data
    if data is not None:
        samples = load_samples(data, d.format, root=d.root, splits=d.splits, fold=d.fold, labels=d.labels)
        if split is not None:
            samples = [s for s in samples if s.split == split]
            if not samples:
                raise ConfigError(f"{data}: no videos in split {split!r}")
        return samples, split or "all"
    from stillmotion.train.trainer import _split

    train, val, test = _split(replace(cfg, data=replace(cfg.data, val_split=None if split else d.val_split)),
                              cfg.task.name)
    chosen = {"val": val, "test": test, "train": train}.get(split or "val")
    if chosen is None:
        raise ConfigError(f"--split {split!r}: a run's own videos are split into train, val and test; give --data "
                          "MANIFEST with --split to score another split of a manifest")
    if not chosen:
        raise ConfigError(f"{d.train}: the run has no {split} videos; give --data VIDEOS")
    return chosen, split or "val"


def _write_predictions(path: Path, loaded: LoadedModel, samples: dict[str, Sample], clips: list,
                       outputs: list[torch.Tensor]) -> None:
    """One JSON object per clip: its video, rows and the model's output (class probabilities
    with the top five named; boxes, points, depth, pose per frame in the view's fractions)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for clip, out in zip(clips, outputs or [None] * len(clips)):
            row = {"video": clip.video, "path": samples[clip.video].path, "rows": list(clip.rows)}
            if loaded.kind == "classes":
                probs = out.float().softmax(-1)
                p, i = probs.topk(min(5, len(probs)))
                names = loaded.classes or [str(j) for j in range(len(probs))]
                if isinstance(clip.target, int):
                    row["target"] = names[clip.target]
                row["top"] = [[names[j], round(float(q), 5)] for q, j in zip(p, i.tolist())]
                row["probabilities"] = [round(float(q), 5) for q in probs]
            elif out is not None:
                row[loaded.kind] = torch.round(out.float(), decimals=5).tolist()
            f.write(json.dumps(row) + "\n")
    tmp.replace(path)
