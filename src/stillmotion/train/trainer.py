"""One trainer for every core, readout and task: `Trainer(cfg, run_dir).fit()`.

- Data: the videos of `data.train` / `data.val`; their tokens are extracted into the cache once
  (videos already there are skipped), then every step reads a batch of clips from it; or, with
  `data.online`, decodes and encodes them at every step with pixel augmentation.
- Order: epoch e's clips and their order depend only on (seed, e), and a global batch of
  `train.batch_size` clips is split evenly over the ranks, so a run resumed at step s, or run on
  any number of processes, sees the same clips at every step. torch's generators are seeded
  from (seed, step, rank) before every step and from the seed before every evaluation, so what a
  step draws (dropout, masks) does not depend on what ran before it in the process either.
- Optimisation: AdamW, linear warmup then cosine to `optim.min_lr`, gradient clipping; bf16
  autocast on CUDA; DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU).
- Records: checkpoints every `train.checkpoint_every` steps and at the end (see `checkpoint`),
  log.jsonl and TensorBoard (see `logs`), curves.png and metrics.json at the end.
- Resume: rerunning into the same folder continues from the latest checkpoint and ends exactly as
  the uninterrupted run, wherever a kill landed (tools/resume_stress.py checks it); only the
  timings in metrics.json differ.
- Threads: on a CPU the training math runs on `train.threads` threads (default 1). With two, the
  first forward pass of 1 fresh process in 60 to 90 came out different in the last bits
  (measured on torch 2.13's MKL build, idle 2-core machine), so two runs of one config, or a run
  and its resume, drifted apart; on one thread they are bit for bit the same.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from stillmotion import dist, runtime
from stillmotion.config import Config, ConfigError, differences
from stillmotion.data.manifest import Sample, class_names
from stillmotion.data.sources import load_samples
from stillmotion.data.splits import shared_videos, split_by_video
from stillmotion.encoders import encoder_options, load as load_encoder
from stillmotion.model import VideoModel, checkpoint, model_for
from stillmotion.seeding import seeded, torch_seed
from stillmotion.tasks import SELF_SUPERVISED, TASKS, Task
from stillmotion.train.data import collate
from stillmotion.train.logs import RunLog, plot_curves
from stillmotion.train.source import ClipSource

#: settings a resumed run may change (how long, how often, where)
RESUMABLE_CHANGES = ("train.steps", "train.eval_every", "train.checkpoint_every", "train.log_every",
                     "train.workers", "train.threads", "train.device", "data.cache")


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.0) -> float:
    """LR multiplier: linear warmup over `warmup` steps, then cosine from 1 down to `floor` at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def _device(cfg: Config, here: dist.Rank) -> torch.device:
    name = cfg.train.device
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and here.world > 1:
        device = torch.device("cuda", here.local_rank)
    return device


#: the share of videos held out for validation when a self-supervised run names none
DEFAULT_VAL_FRACTION = 0.2


def _split(cfg: Config, task_name: str) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Train, validation and test samples. Validation: `data.val`; else a manifest's "val" split
    (with its "test" split scored once, at the end), or its "test" split; else
    `data.val_fraction` of the training videos, held out by file (0.2 by default for the
    self-supervised tasks); `data.val_fraction=0` scores the training videos themselves."""
    d = cfg.data
    read = lambda source: load_samples(source, d.format, root=d.root, splits=d.splits, fold=d.fold,  # noqa: E731
                                       labels=d.labels)
    train = read(d.train)
    if d.val is not None:
        if d.val_fraction is not None:
            raise ConfigError("data.val_fraction: data.val already names the validation videos; set only one")
        val = [s for s in read(d.val) if d.val_split is None or s.split == d.val_split]
        if not val:
            raise ConfigError(f"data.val: no videos in {d.val}"
                              + (f" with split {d.val_split!r}" if d.val_split else ""))
        return [s for s in train if s.split in (None, "train")] or train, val, []
    for held_out in ("val", "test"):
        if any(s.split == held_out for s in train):
            if d.val_fraction is not None:
                raise ConfigError(f"data.val_fraction: {d.train} already has a {held_out!r} split; leave it unset")
            test = [s for s in train if s.split == "test"] if held_out == "val" else []
            return [s for s in train if s.split == "train"], [s for s in train if s.split == held_out], test
    fraction = d.val_fraction
    if fraction is None and task_name in SELF_SUPERVISED:
        fraction = DEFAULT_VAL_FRACTION
    if fraction is None:
        raise ConfigError(f"data.val: {d.train} has no \"val\" split; set data.val=MANIFEST_OR_FOLDER or hold out "
                          "a share of its videos with data.val_fraction=0.2")
    if fraction == 0:
        return train, train, []
    try:
        kept, val = split_by_video(train, fraction, d.split_seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return kept, val, []


class Trainer:
    def __init__(self, cfg: Config, run_dir: str | Path, progress: bool = True, init_core: str | None = None):
        self.cfg, self.run_dir, self.progress = cfg, Path(run_dir), progress
        self.init_core = init_core
        backend = "nccl" if torch.cuda.is_available() and cfg.train.device in ("auto", "cuda") else "gloo"
        self.here = dist.start(backend)
        self.device = _device(cfg, self.here)
        if cfg.train.batch_size % self.here.world:
            raise ConfigError(f"train.batch_size: {cfg.train.batch_size} does not split evenly over "
                              f"{self.here.world} processes")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_data()
        self._build_model()

    # ---- data --------------------------------------------------------------------------------
    def _prepare_data(self) -> None:
        cfg = self.cfg
        train, val, test = _split(cfg, cfg.task.name)
        classes = (cfg.task.classes or class_names(train)) if cfg.task.name == "classification" else None
        if cfg.task.name == "classification" and not classes:
            raise ConfigError(f"data.train: {cfg.data.train} has no labels; classification needs a labelled manifest")
        if classes and cfg.task.classes is None:  # saved with the run, so its outputs keep their names
            self.cfg = cfg = replace(cfg, task=replace(cfg.task, classes=list(classes)))
        self.task: Task = TASKS[cfg.task.name](cfg.task, cfg.data.frames, classes, samples=train + val + test)
        self.encoder = load_encoder(cfg.data.encoder, device=str(self.device),
                                    **encoder_options(cfg.data.size, cfg.data.tokens, cfg.data.layers, cfg.data.resize))
        self.source = ClipSource(cfg, self.encoder, train + val + test,
                                 Path(cfg.data.cache) if cfg.data.cache else self.run_dir / "cache", self.here,
                                 self.progress)
        self.samples, self.store, self.grid, self.dim = (self.source.samples, self.source.store, self.source.grid,
                                                         self.source.dim)
        self.extra, self.layers = self.encoder.extra, self.encoder.num_layers
        self.train_videos = self.source.videos(self.task, train)
        self.val_videos = self.source.videos(self.task, val)
        self.test_videos = self.source.videos(self.task, test)
        self.failed, self.left_out, self.extraction = self.source.failed, self.source.left_out, self.source.extraction
        if not self.train_videos:
            raise ConfigError(f"data.train: none of the {len(train)} videos can make a {cfg.task.name} clip of "
                              f"{cfg.data.frames} frames (too short, unlabelled or unreadable)")
        self.val_clips = [c for v in self.val_videos for c in self.task.eval_clips(v)]
        if not self.val_clips:
            raise ConfigError(f"data.val: none of the {len(val)} validation videos can make a {cfg.task.name} clip of "
                              f"{cfg.data.frames} frames (too short, unlabelled or unreadable)")
        self.shared = shared_videos(train, val)
        self.fit_clips = [] if self.shared else self._fit_clips()
        self.test_clips = [c for v in self.test_videos for c in self.task.eval_clips(v)]
        per_epoch = len(self.train_videos) * cfg.data.clips_per_video
        if per_epoch < cfg.train.batch_size:
            raise ConfigError(f"train.batch_size: {cfg.train.batch_size} is more than the {per_epoch} clips of an "
                              "epoch; lower it or raise data.clips_per_video")
        self.steps_per_epoch = per_epoch // cfg.train.batch_size

    def _fit_clips(self) -> list:
        """Fixed evaluation clips of training videos, as many videos as validation has (at least
        8), chosen by the seed: what the model scores on data it trained on, beside validation."""
        count = min(len(self.train_videos), max(len(self.val_videos), 8))
        order = seeded(self.cfg.train.seed, "fit").permutation(len(self.train_videos))[:count]
        return [c for i in sorted(order) for c in self.task.eval_clips(self.train_videos[i])]

    def epoch_clips(self, epoch: int) -> tuple[list, np.ndarray]:
        """Epoch `epoch`'s training clips and their order: a function of (seed, epoch) alone."""
        rng = seeded(self.cfg.train.seed, "train", epoch)
        clips = [c for v in self.train_videos for c in self.task.train_clips(v, self.cfg.data.clips_per_video, rng)]
        return clips, rng.permutation(len(clips))

    def dataset(self, clips: list, key: str, train: bool):
        return self.source.dataset(clips, self.task, key, train)

    def loader(self, epoch: int, first_batch: int = 0) -> DataLoader:
        """This rank's batches of epoch `epoch`, from global batch `first_batch` on."""
        clips, order = self.epoch_clips(epoch)
        b, world, rank = self.cfg.train.batch_size, self.here.world, self.here.rank
        share = b // world
        batches = [order[k * b:(k + 1) * b][rank * share:(rank + 1) * share].tolist()
                   for k in range(first_batch, self.steps_per_epoch)]
        # its own generator: making the loader draws nothing from torch's global one
        return DataLoader(self.dataset(clips, f"{self.cfg.train.seed}/{epoch}", train=True), batch_sampler=batches,
                          num_workers=self.cfg.train.workers, collate_fn=collate,
                          generator=torch.Generator().manual_seed(torch_seed(self.cfg.train.seed, "loader", epoch)))

    # ---- model -------------------------------------------------------------------------------
    def _build_model(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.train.seed)
        self.model = model_for(cfg, self.task.kind, self.task.num_outputs, self.dim, self.grid, self.layers,
                               self.extra, **self.task.model_extras()).to(self.device)
        if self.init_core:
            load_core(self.model, self.init_core)
        if cfg.init.freeze:  # a probe: the core (pretrained, or the scratch run's random one) never changes
            self.model.core.requires_grad_(False)
        self.ddp = self.model
        if self.here.world > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        o = cfg.optim
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trained, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        total, floor = cfg.train.steps, o.min_lr / o.lr
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: warmup_cosine(s, total, max(1, o.warmup_steps), floor))

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def _on_device(self, batch: dict) -> dict:
        return self.source.on_device(batch, self.device)

    def train_step(self, batch: dict) -> float:
        self.ddp.train()
        if self.cfg.init.freeze:
            self.model.core.eval()  # frozen features: no dropout in them
        b = self._on_device(batch)
        with self._autocast():
            out = self.ddp(b["tokens"], b["mask"], **self.task.train_inputs(b))
        loss = self.task.loss(as_float(out), b)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, clips: list | None = None) -> dict:
        """Metrics on `clips` (default: the validation clips), each rank scoring every world-th."""
        clips = self.val_clips if clips is None else clips
        torch.manual_seed(torch_seed(self.cfg.train.seed, "evaluate"))  # the same draws at every evaluation
        return self.source.score(self.model, self.task, clips, self.device, self.cfg.train.batch_size,
                                 self.cfg.train.workers)[0]

    def validate(self, step: int, log: RunLog) -> tuple[dict, dict | None]:
        """Score validation and the fixed training clips (None when validation is the training
        videos), log both, and keep checkpoints/best -> (validation, training) metrics."""
        metrics = self.evaluate()
        log.write(step, "val", metrics)
        fit = self.evaluate(self.fit_clips) if self.fit_clips else None
        if fit is not None:
            log.write(step, "fit", fit)
        name = self.task.main_metric
        value = metrics.get(name)
        # Only the main rank reads and writes best, and every rank meets at the barrier whatever it
        # decided: a rank that read best.json after the main rank had rewritten it would otherwise
        # skip the barrier and wait in the next collective for ever (a two-process run hung so).
        if self.here.is_main and isinstance(value, float) and math.isfinite(value):
            best = checkpoint.best(self.run_dir)
            if best is None or (value > best["value"] if self.task.higher_is_better else value < best["value"]):
                checkpoint.save_best(self.run_dir, step, self.model, self.cfg, name, value)
        dist.barrier()
        return metrics, fit

    # ---- the loop ----------------------------------------------------------------------------
    def _resume(self) -> tuple[int, list[float]]:
        """Load the latest checkpoint -> (its step, the losses since the last log line), or (0, [])."""
        if self.here.is_main:
            checkpoint.tidy(self.run_dir)
        dist.barrier()
        found = checkpoint.latest(self.run_dir)
        if found is None:
            return 0, []
        changed = differences(checkpoint.load_config(found), self.cfg, ignore=RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(f"{self.run_dir}: holds a run with other settings ({', '.join(changed)}); "
                              "resume with the same config or choose another --out")
        self.model.load_state_dict(checkpoint.load_weights(found))
        state = checkpoint.load_training(found)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        return state["step"], _own_losses(state.get("losses", []), self.here)

    def fit(self) -> dict:
        """Train to `train.steps` (resuming from the run's latest checkpoint) -> final metrics,
        on `train.threads` threads when it trains on the CPU (torch's setting is restored afterwards)."""
        before = torch.get_num_threads()
        if self.device.type == "cpu":
            runtime.set_threads(self.cfg.train.threads or None)
        try:
            return self._fit()
        finally:
            torch.set_num_threads(before)

    def _fit(self) -> dict:
        cfg, main = self.cfg, self.here.is_main
        step, losses = self._resume()
        log = RunLog(self.run_dir, enabled=main, resumed_at=step)
        if main and step:
            print(f"resuming {self.run_dir} from step {step}", file=sys.stderr)
        if main:
            self._describe()
        bar = tqdm(total=cfg.train.steps, initial=step, desc=f"train {cfg.task.name} ({cfg.temporal.name})",
                   unit="step", disable=not (self.progress and main))
        start, first_step = time.perf_counter(), step
        last = None  # the last validation's (metrics, fit): the final one comes before the final checkpoint
        while step < cfg.train.steps:
            epoch, offset = divmod(step, self.steps_per_epoch)
            for batch in self.loader(epoch, offset):
                torch.manual_seed(torch_seed(cfg.train.seed, "step", step, self.here.rank))
                losses.append(self.train_step(batch))
                step += 1
                bar.update(1)
                if step % cfg.train.log_every == 0 or step == cfg.train.steps:
                    loss = dist.mean_over_ranks(sum(losses) / len(losses))
                    log.write(step, "train", {"loss": loss, "lr": self.scheduler.get_last_lr()[0]})
                    bar.set_postfix(loss=f"{loss:.3f}")
                    losses = []
                if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
                    last = self.validate(step, log)
                if step % cfg.train.checkpoint_every == 0 or step == cfg.train.steps:
                    # every rank's losses since the last log line: the next line's mean takes them in
                    pending = dist.gather_objects([losses])
                    if main:
                        checkpoint.save(self.run_dir, step, self.model, self.optimizer, self.scheduler, cfg,
                                        {"losses": pending})
                    dist.barrier()
                if step >= cfg.train.steps:
                    break
        bar.close()
        seconds = time.perf_counter() - start
        # a run resumed at its end was validated (and logged) before its last checkpoint: score alone
        metrics, fit = last or (self.evaluate(), self.evaluate(self.fit_clips) if self.fit_clips else None)
        result = {"task": cfg.task.name, "core": cfg.temporal.name, "steps": step, "val": metrics,
                  **({"fit": fit} if fit is not None else {}),
                  "best": checkpoint.best(self.run_dir), "val_shares_training": len(self.shared),
                  "train_seconds": seconds,
                  "clips_per_second": (step - first_step) * cfg.train.batch_size / max(seconds, 1e-9),
                  "train_videos": len(self.train_videos), "val_videos": len(self.val_videos),
                  "failed": [{"path": p, "reason": r} for p, r in self.failed]}
        if self.test_clips:
            result["test"] = self.evaluate(self.test_clips)
            result["test_videos"] = len(self.test_videos)
        if main:
            write_json(self.run_dir / "metrics.json", result)
            plot_curves({cfg.temporal.name: log.records()}, self.run_dir / "curves.png", self.task.main_metric)
        log.close()
        return result

    def _describe(self) -> None:
        source = "online (encoder in the loop)" if self.store is None else f"cache {self.store.path}"
        print(f"{self.cfg.task.name}: {len(self.train_videos)} training videos, {len(self.val_videos)} validation "
              f"videos ({len(self.val_clips)} clips)"
              + (f", {len(self.test_videos)} test videos (scored at the end)" if self.test_videos else "")
              + f"; tokens {self.grid[0]}x{self.grid[1]}x{self.dim} from {source}; "
              f"{self.cfg.temporal.name} core, {self.cfg.head.name} readout ({self.cfg.head.mode}); "
              f"{self.here.world} process(es) on {self.device}", file=sys.stderr)
        if self.shared:
            print(f"warning: {len(self.shared)} of the {len(self.val_videos)} validation videos are training videos "
                  "too, so validation measures fit, not generalisation to new videos; hold videos out with "
                  "data.val=... or data.val_fraction=0.2", file=sys.stderr)
        for path, reason in self.failed:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        if self.left_out:
            print(f"left out {len(self.left_out)} video(s) too short or unlabelled for {self.cfg.task.name} clips of "
                  f"{self.cfg.data.frames} frames: {', '.join(sorted(self.left_out)[:5])}", file=sys.stderr)


def _own_losses(saved: list[list[float]], here: dist.Rank) -> list[float]:
    """This rank's losses not yet logged, from a checkpoint's list per rank; resumed on another
    number of processes, every rank takes their mean per step (the logged mean is the same)."""
    if len(saved) == here.world:
        return list(saved[here.rank])
    return [sum(values) / len(values) for values in zip(*saved)]


def write_json(path: Path, data: dict) -> None:
    """`data` as indented JSON at `path`, renamed into place (a kill never leaves half a file)."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def as_float(out):
    """A model's output in float32: a tensor, or a dict of them (a video-text model's)."""
    return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()


def load_core(model: VideoModel, source: str | Path) -> None:
    """Start `model`'s temporal core from the core of a checkpoint (a pretext run, say)."""
    weights = {k[len("core."):]: v for k, v in checkpoint.load_weights(source).items() if k.startswith("core.")}
    own = model.core.state_dict()
    differ = sorted(k for k in own.keys() | weights.keys()
                    if k not in own or k not in weights or own[k].shape != weights[k].shape)
    if differ or not weights:
        raise ConfigError(f"init.core: {source} holds a different temporal core ({len(differ)} tensors differ, "
                          f"e.g. {differ[:3]}); fine-tune with the pretext run's temporal.name, size, kw, input and "
                          f"norm (its config.yaml has them)")
    model.core.load_state_dict(weights)


def _delta(pretrained: dict, scratch: dict) -> dict:
    """Every float metric of a pretrained run minus the same run's from scratch (not chance)."""
    return {k: pretrained[k] - v for k, v in scratch.items() if isinstance(v, float) and k != "chance"}


def train(cfg: Config, run_dir: str | Path, progress: bool = True) -> dict:
    """A run; with `init.core` and `init.compare_scratch`, also the same run from scratch (in
    RUN_DIR/scratch), and the Delta of every metric (pretrained minus scratch) in metrics.json:
    `delta` on validation, `delta_test` on the test split when there is one."""
    run_dir = Path(run_dir)
    result = Trainer(cfg, run_dir, progress, init_core=cfg.init.core).fit()
    if cfg.init.core and cfg.init.compare_scratch:
        shared = replace(cfg, data=replace(cfg.data, cache=cfg.data.cache or str(run_dir / "cache")))
        scratch = Trainer(shared, run_dir / "scratch", progress, init_core=None).fit()
        result["scratch"] = scratch["val"]
        result["delta"] = _delta(result["val"], scratch["val"])
        if "test" in scratch:
            result["scratch_test"] = scratch["test"]
            result["delta_test"] = _delta(result["test"], scratch["test"])
        if dist.current().is_main:
            write_json(run_dir / "metrics.json", result)
    dist.stop()
    return result
