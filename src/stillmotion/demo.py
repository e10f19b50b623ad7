"""`stillmotion demo`: the whole data path on the embedded default, end to end, on a CPU.

generate the motion task (H.264 files + a manifest with train, val and test splits) -> the
trainer: decode, encode every frame once into the token cache, train a recurrent core +
streaming attentive readout, and the same with the mean-over-time baseline, each scored on the
validation split every epoch and on the test split at the end -> report.json, report.md,
curves.png, predictions.gif. Each model is an ordinary `stillmotion train` run in
OUT/runs/CORE (config, checkpoints, log.jsonl, TensorBoard, metrics.json).

Re-running into the same folder reuses the clips and tokens already made; a run that was killed
resumes from its last checkpoint, a finished one is trained again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from stillmotion.config import Config, load_config
from stillmotion.data.synthetic import CLASSES, MotionTaskConfig, generate_motion_task
from stillmotion.encoders import DEFAULT_ENCODER, load
from stillmotion.model import load_model
from stillmotion.stream import Streamer
from stillmotion.train.logs import RunLog, plot_curves
from stillmotion.train.trainer import Trainer
from stillmotion.video.decode import read_frames

BASELINE_CORE = "mean"


@dataclass
class DemoConfig:
    task: MotionTaskConfig = field(default_factory=MotionTaskConfig)
    encoder: str = DEFAULT_ENCODER
    core: str = "gru"
    core_size: str = "small"
    core_kw: dict = field(default_factory=dict)
    epochs: int = 15
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.1
    seed: int = 0
    gif_clips: int = 4


def run_config(cfg: DemoConfig, manifest: Path, cache: Path, core: str, size: str, core_kw: dict) -> Config:
    """The trainer config of one demo model: every clip whole (one per video per epoch), the
    validation split scored once per epoch, the final weights scored on the test split."""
    train_clips = len(CLASSES) * cfg.task.train_per_class
    batch = min(cfg.batch_size, train_clips)
    steps_per_epoch = train_clips // batch
    steps = cfg.epochs * steps_per_epoch
    overrides = {
        "data.train": str(manifest), "data.cache": str(cache), "data.encoder": cfg.encoder,
        "data.size": cfg.task.size, "data.frames": cfg.task.frames, "data.clips_per_video": 1,
        "temporal.name": core, "temporal.size": size, "head.name": "attentive", "head.mode": "stream",
        "task.name": "classification", "task.eval_clips": 1,
        "optim.lr": cfg.lr, "optim.weight_decay": cfg.weight_decay,
        "optim.warmup_steps": max(1, int(cfg.warmup_frac * steps)),
        "train.steps": steps, "train.batch_size": batch, "train.eval_every": steps_per_epoch,
        "train.log_every": steps_per_epoch, "train.checkpoint_every": steps_per_epoch, "train.seed": cfg.seed,
    }
    dotlist = [f"{k}={v}" for k, v in overrides.items()] + [f"temporal.kw.{k}={v}" for k, v in core_kw.items()]
    return load_config(None, dotlist)


def run_demo(out: str | Path = "stillmotion-demo", cfg: DemoConfig | None = None, progress: bool = True) -> dict:
    """Run the demo into `out` and return the report (also written to out/report.json)."""
    cfg = cfg or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    load(cfg.encoder, size=cfg.task.size)  # first: bad settings fail before the data is made
    manifest = generate_motion_task(out / "data", cfg.task, progress=progress)

    results = {}
    for role, core, size, core_kw in [("baseline", BASELINE_CORE, "small", {}),
                                      ("temporal", cfg.core, cfg.core_size, cfg.core_kw)]:
        run_dir = out / "runs" / core
        if (run_dir / "metrics.json").is_file():  # finished before: train it again
            shutil.rmtree(run_dir)
        trainer = Trainer(run_config(cfg, manifest, out / "cache", core, size, core_kw), run_dir, progress)
        metrics = trainer.fit()
        results[role] = {"core": core, "trainer": trainer, "metrics": metrics,
                         "log": RunLog(run_dir, enabled=False).records()}

    base, temp = results["baseline"], results["temporal"]
    trainer = temp["trainer"]
    encoder, classes = trainer.encoder, trainer.task.classes
    extraction = base["trainer"].extraction
    report = {
        "baseline_accuracy": base["metrics"]["test"]["top1"],
        "temporal_accuracy": temp["metrics"]["test"]["top1"],
        "baseline_core": BASELINE_CORE,
        "temporal_core": cfg.core,
        "encoder": encoder.name,
        "encoder_fingerprint": encoder.fingerprint,
        "image_size": encoder.image_size,
        "token_grid": list(encoder.grid),
        "token_dim": encoder.dim,
        "classes": classes,
        "chance": 1 / len(classes),
        "clips": {"train": len(trainer.train_videos), "val": len(trainer.val_videos), "test": len(trainer.test_videos)},
        "frames_per_clip": cfg.task.frames,
        "train_seconds": temp["metrics"]["train_seconds"],
        "baseline_train_seconds": base["metrics"]["train_seconds"],
        "trainable_parameters": {role: _trainable(r["trainer"].model) for role, r in results.items()},
        "extract_seconds": extraction.seconds if extraction else 0.0,
        "extract_frames_per_second": extraction.frames_per_second if extraction else 0.0,
        "failed_videos": [f["path"] for f in temp["metrics"]["failed"]],
        "val": {role: r["metrics"]["val"] for role, r in results.items()},
        "curves": {role: {"train_loss": [e["loss"] for e in r["log"] if e["kind"] == "train"],
                          "val_accuracy": [e["top1"] for e in r["log"] if e["kind"] == "val"]}
                   for role, r in results.items()},
        "runs": {role: str(out / "runs" / r["core"]) for role, r in results.items()},
        "device": str(trainer.device),
        "config": asdict(cfg),
    }
    plot_curves({f"{r['core']} ({role})": r["log"] for role, r in results.items()}, out / "curves.png", "top1")
    _write_gif(out / "predictions.gif", results, classes, cfg)
    report["total_seconds"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_table(report))
    return report


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _table(report: dict) -> str:
    rows = [
        ("mean over time (baseline)", report["baseline_accuracy"], report["trainable_parameters"]["baseline"],
         report["baseline_train_seconds"]),
        (f"{report['temporal_core']} temporal core", report["temporal_accuracy"],
         report["trainable_parameters"]["temporal"], report["train_seconds"]),
    ]
    lines = [
        f"# stillmotion demo: direction of motion ({len(report['classes'])} classes, chance {report['chance']:.2f})",
        "",
        f"Frozen encoder `{report['encoder']}` at {report['image_size']} px: tokens "
        f"{report['token_grid'][0]}x{report['token_grid'][1]}x{report['token_dim']} per frame, "
        f"{report['frames_per_clip']} frames per clip; {report['clips']['train']} training clips, "
        f"{report['clips']['test']} test clips.",
        "",
        "| model | test accuracy | trainable parameters | training time (s) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {name} | {acc:.3f} | {params:,} | {secs:.1f} |" for name, acc, params, secs in rows]
    return "\n".join(lines) + "\n"


def _write_gif(path: Path, results: dict, classes: list[str], cfg: DemoConfig) -> None:
    """A few test clips side by side (the first of each class), each frame annotated with both
    models' streaming predictions at that frame: each run loaded from its checkpoint
    (`load_model`) and fed the decoded frames one at a time (`Streamer`), as `stillmotion stream`
    runs it."""
    from PIL import Image, ImageDraw, ImageFont

    trainer = results["temporal"]["trainer"]
    first = {}
    for video in trainer.test_videos:
        first.setdefault(video.label, video)
    picks = [first[c] for c in classes if c in first][: cfg.gif_clips]
    if not picks:
        return
    streamers = {role: Streamer(load_model(r["trainer"].run_dir, device=r["trainer"].device))
                 for role, r in results.items()}
    scale, font = 2, ImageFont.load_default(size=13)
    panels = []
    for video in picks:
        frames = read_frames(trainer.samples[video.id].path)
        label = classes.index(video.label)
        preds = {}
        for role, streamer in streamers.items():
            streamer.reset()
            preds[role] = [int(streamer.step(frame).value.argmax()) for frame in frames]
        clip = []
        for t, frame in enumerate(frames):
            img = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
            canvas = Image.new("RGB", (img.width, img.height + 58), "white")
            canvas.paste(img, (0, 58))
            draw = ImageDraw.Draw(canvas)
            draw.text((4, 2), f"true: {classes[label]}   t={t + 1}", fill="black", font=font)
            for row, role in enumerate(("temporal", "baseline")):
                p = preds[role][t]
                draw.text((4, 20 + 18 * row), f"{results[role]['core']}: {classes[p]}",
                          fill=(0, 140, 0) if p == label else (200, 0, 0), font=font)
            clip.append(canvas)
        panels.append(clip)
    frames_out = []
    for t in range(min(len(c) for c in panels)):
        w, h = panels[0][t].size
        sheet = Image.new("RGB", (w * len(panels) + 6 * (len(panels) - 1), h), "white")
        for k, clip in enumerate(panels):
            sheet.paste(clip[t], (k * (w + 6), 0))
        frames_out.append(sheet)
    frames_out[0].save(path, save_all=True, append_images=frames_out[1:], duration=250, loop=0)
