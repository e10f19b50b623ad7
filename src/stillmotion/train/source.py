"""Where a run's clips come from, for training and for scoring alike.

`ClipSource(cfg, encoder, samples, cache)` makes the videos' frames available: tokens from the
token cache (extracting the videos not in it yet, each once), or with `data.online` the rows
decoded per read. `videos(task, samples)` turns samples into the task's usable videos (too
short, unlabelled or unreadable ones left out and reported); `dataset(clips, ...)` reads their
clips; `tokens(batch, device)` gives a batch's tokens (B, T, N, D), encoding pixels when online.
`score(model, task, clips, ...)` runs a model over clips and returns the task's metrics with the
per-clip outputs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from stillmotion import dist
from stillmotion.cache.extract import ExtractConfig, ExtractReport, cache_meta, extract
from stillmotion.cache.pool import pool_tokens, pooled_shape
from stillmotion.cache.store import TokenStore
from stillmotion.config import Config
from stillmotion.data.manifest import Sample
from stillmotion.encoders import FrozenEncoder
from stillmotion.tasks import Task, Video
from stillmotion.train.data import PixelClips, TokenClips, collate, video_rows


class ClipSource:
    """The frames of `samples` for a run with config `cfg`: cached in `cache` or decoded online."""

    def __init__(self, cfg: Config, encoder: FrozenEncoder, samples: list[Sample], cache: Path,
                 here: dist.Rank | None = None, progress: bool = True):
        self.cfg, self.encoder, self.here = cfg, encoder, here or dist.current()
        self.samples = {s.id: s for s in samples}
        self.failed: list[tuple[str, str]] = []  # (path, why) of videos that could not be read
        self.left_out: set[str] = set()  # videos too short or unlabelled for the task's clips
        self.extraction: ExtractReport | None = None  # what this source added to the cache, if anything
        d = cfg.data
        if d.online:
            self.store = None
            self.rows: dict[str, np.ndarray] = {}
            for sample in self.samples.values():
                try:
                    self.rows[sample.id] = video_rows(sample, d.fps, d.resample)
                except Exception as exc:  # noqa: BLE001 - a bad file is skipped and reported
                    self.failed.append((sample.path, f"{type(exc).__name__}: {exc}"))
            self.sources = self.rows
            self.grid, self.dim = pooled_shape(encoder.grid, encoder.dim, d.pool_space, d.pool_channels)
        else:
            self.store = self._extract(Path(cache), progress)
            self.sources = {i: self.store.frame_indices(i) for i in self.samples if i in self.store}
            self.grid, self.dim = self.store.grid, self.store.dim

    def _extract(self, path: Path, progress: bool) -> TokenStore:
        d = self.cfg.data
        # views are drawn with `extract`'s default seed, so runs with any train.seed share one cache
        ecfg = ExtractConfig(fps=d.fps, rule=d.resample, views=d.views, pool_space=d.pool_space,
                             pool_channels=d.pool_channels, dtype=d.dtype)
        store = TokenStore(path, cache_meta(self.encoder, ecfg))
        if self.here.is_main:
            store.remove_partial()
        dist.barrier()
        todo = [s for s in self.samples.values() if s.id not in store]
        if todo:
            self.extraction = extract(todo, self.encoder, store, ecfg, progress=progress and self.here.is_main,
                                      rank=self.here.rank, world=self.here.world)
        dist.barrier()
        self.failed = [(f["path"], f["reason"]) for f in store.failures() if f["id"] in self.samples]
        return store

    def videos(self, task: Task, samples: list[Sample]) -> list[Video]:
        """The task's usable videos among `samples`; the others go to `left_out` or `failed`."""
        videos = [Video(s.id, len(self.sources[s.id]), s.label, tuple(self.sources[s.id].tolist()))
                  for s in samples if s.id in self.sources]
        usable = [v for v in videos if task.usable(v)]
        ids, kept = {v.id for v in videos}, {v.id for v in usable}
        self.left_out |= ids - kept - set(task.problems)
        known = {p for p, _ in self.failed}
        self.failed += [(self.samples[i].path, why) for i, why in task.problems.items()
                        if i in ids and self.samples[i].path not in known]
        return usable

    def dataset(self, clips: list, task: Task, key: str, train: bool):
        if self.store is not None:
            return TokenClips(self.store, clips, key, augment=train and self.store.num_views > 1, task=task,
                              size=self.encoder.image_size)
        return PixelClips(self.samples, self.rows, clips, self.encoder.image_size, key, augment=train, task=task,
                          resize=self.cfg.data.resize)

    def tokens(self, batch: dict, device: torch.device) -> torch.Tensor:
        """The batch's tokens (B, T, N, D) on `device`: read from the cache, or encoded now; for a
        model that reads pixels itself (a harvest tower), its normalized pixels (B, T, 3, S, S)."""
        if "tokens" in batch:
            return batch["tokens"].to(device, non_blocking=True)
        pixels = batch["pixels"]
        b, t = pixels.shape[:2]
        if self.cfg.task.tower == "harvest":
            return self.encoder.normalize_crops(pixels.flatten(0, 1)).view(b, t, 3, *pixels.shape[2:4]).to(device)
        tokens = pool_tokens(self.encoder.encode(self.encoder.normalize_crops(pixels.flatten(0, 1)), out=device),
                             self.encoder.grid, self.cfg.data.pool_space, self.cfg.data.pool_channels)
        # encode() runs in inference mode; a clone is an ordinary tensor that autograd may save
        return tokens.view(b, t, *tokens.shape[1:]).clone()

    def on_device(self, batch: dict, device: torch.device) -> dict:
        """The batch's tensors on `device`, with its tokens (B, T, N, D) under "tokens"."""
        moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()
                 if isinstance(v, torch.Tensor) and k != "pixels"}
        moved["tokens"] = self.tokens(batch, device)
        return moved

    @torch.no_grad()
    def score(self, model: torch.nn.Module, task: Task, clips: list, device: torch.device, batch_size: int,
              workers: int = 0, keep_outputs: bool = False) -> tuple[dict, list]:
        """The task's metrics of `model` on `clips`, each rank scoring every world-th clip, and
        (with `keep_outputs`) each clip's output (on the CPU, in the order of `clips`)."""
        here = self.here
        mine = list(range(here.rank, len(clips), here.world))
        model.eval()
        data = self.dataset([clips[i] for i in mine], task, "eval", train=False)
        scores, outputs = [], []
        for batch in DataLoader(data, batch_size=max(1, batch_size), collate_fn=collate, num_workers=workers):
            b = self.on_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                out = model(b["tokens"], b["mask"], **task.inputs(b)).float()
            indices = [mine[int(i)] for i in batch["index"]]
            scores += list(zip(indices, task.score(out, b)))
            if keep_outputs:
                lengths = batch["mask"].sum(1).tolist()
                outputs += [(i, o[:n] if o.dim() > 1 and len(o) == batch["mask"].shape[1] else o)
                            for i, o, n in zip(indices, out.cpu(), lengths)]
        ordered = sorted(dist.gather_objects(scores), key=lambda pair: pair[0])
        metrics = task.metrics([r for _, r in ordered], [clips[i] for i, _ in ordered])
        kept = [o for _, o in sorted(dist.gather_objects(outputs), key=lambda pair: pair[0])] if keep_outputs else []
        return metrics, kept
