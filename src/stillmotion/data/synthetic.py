"""Synthetic temporal tasks written as real H.264 videos plus a manifest.

`motion-direction`: two objects (disk, square or diamond; random colours and sizes) cross a
random colour texture in straight lines, one horizontally and one vertically, on paths that
never overlap. The label is the direction of motion of the pair: where the horizontal mover
goes (left or right) and where the vertical mover goes (up or down), giving four classes
`up-left`, `up-right`, `down-left`, `down-right` (the direction of their mean velocity).

Why two movers: the unordered set of a single mover's frames already shows the axis it moves
on, so an order-blind model could tell horizontal from vertical classes and reach 0.5. Here
every clip holds one horizontal and one vertical streak, and playing a clip backwards gives a
clip of the opposite class, so the frames without their order say nothing about the class.

Each clip is drawn from its own generator seeded by (seed, split, index): the same seed gives
bit-identical rendered frames, labels and positions, and generation resumes where a killed run
stopped. The H.264 files agree to within x264's rare rate-control variation (see write_video).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from stillmotion.data.manifest import Sample, write_manifest
from stillmotion.errors import UsageError
from stillmotion.video.write import write_video

#: class name -> (horizontal mover's dx, vertical mover's dy), image coordinates (y grows down).
CLASSES = {"up-left": (-1, -1), "up-right": (1, -1), "down-left": (-1, 1), "down-right": (1, 1)}
SPLITS = ("train", "val", "test")
SHAPES = ("disk", "square", "diamond")


@dataclass(frozen=True)
class MotionTaskConfig:
    size: int = 128  # frame height and width (even)
    frames: int = 12  # frames per clip
    fps: int = 12
    train_per_class: int = 120
    val_per_class: int = 20
    test_per_class: int = 30
    object_size: tuple[float, float] = (0.14, 0.22)  # min, max diameter, as a fraction of size
    travel: tuple[float, float] = (0.35, 0.5)  # distance each object covers, as a fraction of size
    seed: int = 0

    def per_class(self, split: str) -> int:
        return {"train": self.train_per_class, "val": self.val_per_class, "test": self.test_per_class}[split]


@dataclass
class Clip:
    frames: np.ndarray  # (T, H, W, 3) uint8
    background: np.ndarray  # (H, W, 3) uint8, the frames without the objects
    centers: np.ndarray  # (2, T, 2): per object (horizontal mover, vertical mover), centre (x, y) per frame
    radii: np.ndarray  # (2,) object radius in pixels
    label: str


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random colour texture: smooth colour blobs plus finer grey grain. (H, W, 3) uint8."""
    coarse = rng.uniform(40, 215, size=(5, 5, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BICUBIC), dtype=np.float32)
    grain = rng.normal(0, 1, size=(size // 8, size // 8)).astype(np.float32)
    grain = np.asarray(Image.fromarray(grain).resize((size, size), Image.BICUBIC))
    return np.clip(base + 18.0 * grain[..., None], 0, 255).astype(np.uint8)


def _draw(draw: ImageDraw.ImageDraw, shape: str, center: np.ndarray, radius: float, color, outline) -> None:
    x, y = float(center[0]), float(center[1])
    box = (x - radius, y - radius, x + radius, y + radius)
    if shape == "disk":
        draw.ellipse(box, fill=color, outline=outline, width=2)
    elif shape == "square":
        draw.rectangle(box, fill=color, outline=outline, width=2)
    else:
        draw.polygon([(x, y - radius), (x + radius, y), (x, y + radius), (x - radius, y)], fill=color, outline=outline,
                     width=2)


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour from a random hue."""
    hue = rng.uniform(0, 1)
    return tuple(int(c) for c in 255 * np.clip(np.abs(((hue * 6 + np.array([0, 4, 2])) % 6) - 3) - 1, 0, 1))


def _path(rng: np.random.Generator, cfg: MotionTaskConfig, radius: float, axis: int, sign: int) -> np.ndarray:
    """Centres (T, 2) of a straight path along `axis` (0 = x, 1 = y) in direction `sign`."""
    travel = rng.uniform(*cfg.travel) * cfg.size
    margin = radius + 2
    low = rng.uniform(margin, cfg.size - margin - travel)  # the path's low end along the axis
    across = rng.uniform(margin, cfg.size - margin)
    t = np.arange(cfg.frames) / max(cfg.frames - 1, 1)
    along = low + travel * (t if sign > 0 else 1 - t)
    return np.stack([along, np.full_like(along, across)] if axis == 0 else [np.full_like(along, across), along], -1)


def _box(centers: np.ndarray, radius: float) -> np.ndarray:
    """(x0, y0, x1, y1) covering an object along its whole path, with a 2-pixel outline margin."""
    return np.concatenate([centers.min(0) - radius - 2, centers.max(0) + radius + 2])


def _disjoint(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def render_clip(cfg: MotionTaskConfig, split: str, index: int) -> Clip:
    """Render clip `index` of `split`; its class cycles through CLASSES with the index."""
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    label = list(CLASSES)[index % len(CLASSES)]
    dx, dy = CLASSES[label]
    background = _texture(rng, cfg.size)
    radii = rng.uniform(*cfg.object_size, size=2) * cfg.size / 2
    for _ in range(1000):  # resample until the two paths cannot touch
        centers = np.stack([_path(rng, cfg, radii[0], 0, dx), _path(rng, cfg, radii[1], 1, dy)])
        if _disjoint(_box(centers[0], radii[0]), _box(centers[1], radii[1])):
            break
    else:
        raise UsageError(f"motion task: no non-overlapping paths found for size {cfg.size}; "
                         "lower object_size or travel")
    looks = [(SHAPES[rng.integers(len(SHAPES))], _color(rng)) for _ in range(2)]
    frames = []
    for t in range(cfg.frames):
        img = Image.fromarray(background)
        draw = ImageDraw.Draw(img)
        for (shape, color), c, r in zip(looks, centers[:, t], radii):
            _draw(draw, shape, c, r, color, tuple(int(v * 0.35) for v in color))
        frames.append(np.asarray(img))
    return Clip(frames=np.stack(frames), background=background, centers=centers, radii=radii, label=label)


def claim_folder(out: str | Path, settings: dict) -> Path:
    """Create `out` for a generated task, or accept it if it was made with the same settings
    (a killed run resumes there); a folder made with other settings is refused."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_path = out / "task.json"
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()) != json.loads(json.dumps(settings)):
            raise UsageError(f"{out}: holds a task made with other settings ({cfg_path}); "
                             "use another folder or delete it")
    else:
        cfg_path.write_text(json.dumps(settings, indent=2))
    return out


def generate_motion_task(out: str | Path, cfg: MotionTaskConfig = MotionTaskConfig(), progress: bool = True) -> Path:
    """Write every clip as `out/<split>/<id>.mp4` and `out/manifest.jsonl`; return the manifest.

    Clips already on disk are kept (a killed run resumes); a folder made with another config is
    refused.
    """
    out = claim_folder(out, {"task": "motion-direction", **asdict(cfg)})
    jobs = [(split, i) for split in SPLITS for i in range(cfg.per_class(split) * len(CLASSES))]
    samples = []
    for split, i in tqdm(jobs, desc="generate clips", unit="clip", disable=not progress):
        vid = f"{split}-{i:05d}"
        path = out / split / f"{vid}.mp4"
        label = list(CLASSES)[i % len(CLASSES)]
        if not path.exists():
            clip = render_clip(cfg, split, i)
            write_video(path, clip.frames, fps=cfg.fps)
        samples.append(Sample(id=vid, path=str(path), label=label, split=split))
    return write_manifest(out / "manifest.jsonl", samples)
