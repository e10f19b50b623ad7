"""`stillmotion demo`: the whole data path on the embedded default, end to end, on a CPU.

generate the motion task (H.264 files + manifest) -> decode -> encode every frame once into a
token cache -> train a recurrent core + streaming attentive readout, and the same with the
mean-over-time baseline -> test -> report.json, report.md, curves.png, predictions.gif.
Re-running into the same folder reuses the clips and tokens already made.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from stillmotion.cache.extract import cache_meta, extract
from stillmotion.cache.store import TokenStore
from stillmotion.data.manifest import class_names, read_manifest
from stillmotion.data.synthetic import MotionTaskConfig, generate_motion_task
from stillmotion.data.tokens import CachedClips
from stillmotion.encoders import DEFAULT_ENCODER, load
from stillmotion.heads.model import VideoModel
from stillmotion.train.loop import TrainConfig, evaluate, fit
from stillmotion.video.decode import read_frames

BASELINE_CORE = "mean"


@dataclass
class DemoConfig:
    task: MotionTaskConfig = field(default_factory=MotionTaskConfig)
    encoder: str = DEFAULT_ENCODER
    core: str = "gru"
    core_size: str = "small"
    core_kw: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    gif_clips: int = 4


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def run_demo(out: str | Path = "stillmotion-demo", cfg: DemoConfig | None = None, progress: bool = True) -> dict:
    """Run the demo into `out` and return the report (also written to out/report.json)."""
    cfg = cfg or DemoConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"

    encoder = load(cfg.encoder, device=device, size=cfg.task.size)  # first: bad settings fail fast
    manifest = generate_motion_task(out / "data", cfg.task, progress=progress)
    samples = read_manifest(manifest)
    classes = class_names(samples)
    store = TokenStore(out / "cache", cache_meta(encoder))
    ext = extract(samples, encoder, store, progress=progress)
    data = {split: CachedClips(store, [s for s in samples if s.split == split], classes) for split in ("train", "val", "test")}

    results = {}
    for role, core, size, core_kw in [("baseline", BASELINE_CORE, "small", {}),
                                      ("temporal", cfg.core, cfg.core_size, cfg.core_kw)]:
        torch.manual_seed(cfg.train.seed)
        model = VideoModel(encoder.dim, "classes", len(classes), core=core, size=size, core_kw=core_kw).to(device)
        history = fit(model, data["train"], data["val"], cfg.train, desc=f"train {core}", progress=progress)
        test = evaluate(model, data["test"])
        results[role] = {"core": core, "model": model, "history": history, "test": test}

    base, temp = results["baseline"], results["temporal"]
    report = {
        "baseline_accuracy": base["test"]["accuracy"],
        "temporal_accuracy": temp["test"]["accuracy"],
        "baseline_core": BASELINE_CORE,
        "temporal_core": cfg.core,
        "encoder": encoder.name,
        "encoder_fingerprint": encoder.fingerprint,
        "image_size": encoder.image_size,
        "token_grid": list(encoder.grid),
        "token_dim": encoder.dim,
        "classes": classes,
        "chance": 1 / len(classes),
        "clips": {split: len(ds) for split, ds in data.items()},
        "frames_per_clip": cfg.task.frames,
        "train_seconds": temp["history"].train_seconds,
        "baseline_train_seconds": base["history"].train_seconds,
        "trainable_parameters": {"baseline": _trainable(base["model"]), "temporal": _trainable(temp["model"])},
        "extract_seconds": ext.seconds,
        "extract_frames_per_second": ext.frames_per_second,
        "failed_videos": ext.failed,
        "curves": {role: {"train_loss": r["history"].train_loss, "val_accuracy": r["history"].val_accuracy}
                   for role, r in results.items()},
        "device": device,
        "config": asdict(cfg),
    }
    _plot_curves(out / "curves.png", results)
    _write_gif(out / "predictions.gif", data["test"], results, classes, cfg)
    report["total_seconds"] = time.perf_counter() - t_start
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(_table(report))
    return report


def _table(report: dict) -> str:
    rows = [
        ("mean over time (baseline)", report["baseline_accuracy"], report["trainable_parameters"]["baseline"],
         report["baseline_train_seconds"]),
        (f"{report['temporal_core']} temporal core", report["temporal_accuracy"], report["trainable_parameters"]["temporal"],
         report["train_seconds"]),
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


def _plot_curves(path: Path, results: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for role, r in results.items():
        epochs = np.arange(1, len(r["history"].train_loss) + 1)
        label = f"{r['core']} ({role})"
        ax_loss.plot(epochs, r["history"].train_loss, marker="o", label=label)
        ax_acc.plot(epochs, r["history"].val_accuracy, marker="o", label=label)
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="cross-entropy")
    ax_acc.set(title="validation accuracy (last frame)", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@torch.no_grad()
def _write_gif(path: Path, test: CachedClips, results: dict, classes: list[str], cfg: DemoConfig) -> None:
    """A few test clips side by side, each frame annotated with both models' streaming
    predictions at that frame (computed one frame at a time through `step`)."""
    from PIL import Image, ImageDraw, ImageFont

    picks = [next(i for i, y in enumerate(test.labels) if y == c) for c in range(len(classes)) if c in test.labels]
    picks = picks[: cfg.gif_clips]
    if not picks:
        return
    scale, font = 2, ImageFont.load_default(size=13)
    panels = []
    for i in picks:
        frames = read_frames(test.samples[i].path)
        tokens, label = test[i]
        preds = {}
        for role, r in results.items():
            model = r["model"].eval()
            preds[role] = model.stream(tokens[None].to(next(model.parameters()).device))[0].argmax(-1).tolist()
        clip = []
        for t, frame in enumerate(frames[: len(tokens)]):
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
