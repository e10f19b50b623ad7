"""Synthetic tracking scenes: H.264 videos with exact boxes, point tracks and depth.

Two objects (a square and a disk, random colours and sizes) move at constant speed over a
random colour texture, bouncing off the frame's edges, while the camera pans across the texture
(by whole pixels, up to `pan` of the frame over the clip); object 0 is always in front of object
1, so it hides it (and the background) where they overlap. Per frame the annotation file
(`data.annotations` format) holds:

- `boxes` (T, 2, 4): each object's box (x0, y0, x1, y1), normalized (boxes are amodal: an
  occluded object keeps its box);
- `points` (T, P, 2) and `visible` (T, P): points fixed on each object's surface and on the
  background (moving with the pan); a point is hidden when an object in front of it covers it
  or the pan takes it out of the frame;
- `depth` (T, S, S): object 0 at one depth in [1.5, 2.5] m, object 1 in [2.7, 3.5] m, the
  background a ground-like plane from 8 m at the top to 4 m at the bottom.

Each video is drawn from its own generator seeded by (seed, split, index), so the same seed
gives the same scenes, and generation resumes where a killed run stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from stillmotion.data.annotations import save_annotations
from stillmotion.data.manifest import Sample, write_manifest
from stillmotion.data.synthetic import _color, _texture, claim_folder
from stillmotion.video.write import write_video

SHAPES = ("square", "disk")  # object 0, object 1


@dataclass(frozen=True)
class SceneConfig:
    size: int = 128  # frame height and width (even)
    frames: int = 16
    fps: int = 12
    train: int = 48  # videos per split
    val: int = 16
    object_size: tuple[float, float] = (0.22, 0.32)  # min, max diameter, as a fraction of size
    speed: tuple[float, float] = (0.015, 0.035)  # per frame, as a fraction of size
    pan: float = 0.25  # the camera's largest move along each axis over a clip, as a fraction of size
    points_per_object: int = 6
    background_points: int = 8
    seed: int = 0

    def count(self, split: str) -> int:
        return {"train": self.train, "val": self.val}[split]


@dataclass
class Scene:
    frames: np.ndarray  # (T, S, S, 3) uint8
    boxes: np.ndarray  # (T, 2, 4) normalized
    points: np.ndarray  # (T, P, 2) normalized
    visible: np.ndarray  # (T, P) bool
    depth: np.ndarray  # (T, S, S) float32 metres


def _inside(shape: str, center: np.ndarray, radius: float, xy: np.ndarray) -> np.ndarray:
    """Whether pixel positions xy (..., 2) lie on an object drawn at `center`."""
    d = np.abs(xy - center)
    return d.max(-1) <= radius if shape == "square" else np.hypot(d[..., 0], d[..., 1]) <= radius


def _bouncing(rng: np.random.Generator, cfg: SceneConfig, radius: float) -> np.ndarray:
    """Centres (T, 2) of a constant-speed path reflected at the frame's edges (kept `radius` in)."""
    low, high = radius + 1, cfg.size - radius - 1
    pos = rng.uniform(low, high, size=2)
    angle = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(*cfg.speed) * cfg.size * np.array([np.cos(angle), np.sin(angle)])
    out = []
    for _ in range(cfg.frames):
        out.append(pos.copy())
        pos = pos + vel
        for axis in range(2):
            if not low <= pos[axis] <= high:
                pos[axis] = 2 * (low if pos[axis] < low else high) - pos[axis]
                vel[axis] = -vel[axis]
    return np.stack(out)


def render_scene(cfg: SceneConfig, split: str, index: int) -> Scene:
    rng = np.random.default_rng([cfg.seed, ("train", "val").index(split), index])
    s = cfg.size
    big = s + 2 * round(cfg.pan * s / 2)  # the texture the camera pans across
    world = _texture(rng, big)
    start = rng.integers(0, big - s + 1, size=2)
    end = np.clip(start + rng.uniform(-cfg.pan, cfg.pan, size=2) * s, 0, big - s)
    pans = np.rint(start + (end - start) * np.arange(cfg.frames)[:, None] / max(cfg.frames - 1, 1)).astype(int)
    radii = rng.uniform(*cfg.object_size, size=2) * s / 2
    centers = np.stack([_bouncing(rng, cfg, r) for r in radii])  # (2, T, 2)
    colors = [_color(rng) for _ in SHAPES]
    depths = np.array([rng.uniform(1.5, 2.5), rng.uniform(2.7, 3.5)], dtype=np.float32)
    # points: offsets on each object's surface (inside 70% of its radius), then fixed background spots
    offsets = [rng.uniform(-0.7, 0.7, size=(cfg.points_per_object, 2)) * r for r in radii]
    offsets[1] *= np.minimum(1, 0.7 / np.maximum(np.hypot(*offsets[1].T) / radii[1], 1e-9))[:, None]  # disk
    still = rng.uniform(0, big, size=(cfg.background_points, 2))  # on the texture
    pixel = np.stack(np.meshgrid(np.arange(s) + 0.5, np.arange(s) + 0.5, indexing="xy"), -1)  # (S, S, 2) xy
    plane = (8 - 4 * pixel[..., 1] / s).astype(np.float32)
    frames, boxes, points, visible, depth = [], [], [], [], []
    for t in range(cfg.frames):
        (ox, oy) = pans[t]
        img = Image.fromarray(np.ascontiguousarray(world[oy:oy + s, ox:ox + s]))
        draw = ImageDraw.Draw(img)
        d = plane.copy()
        for k in (1, 0):  # back to front
            (x, y), r = centers[k, t], radii[k]
            outline = tuple(int(v * 0.35) for v in colors[k])
            box = (x - r, y - r, x + r, y + r)
            (draw.rectangle if SHAPES[k] == "square" else draw.ellipse)(box, fill=colors[k], outline=outline, width=2)
            d[_inside(SHAPES[k], centers[k, t], r, pixel)] = depths[k]
        frames.append(np.asarray(img))
        depth.append(d)
        boxes.append(np.concatenate([centers[:, t] - radii[:, None], centers[:, t] + radii[:, None]], 1) / s)
        on0, on1 = centers[0, t] + offsets[0], centers[1, t] + offsets[1]
        front = lambda xy: _inside(SHAPES[0], centers[0, t], radii[0], xy)  # noqa: E731
        behind = lambda xy: front(xy) | _inside(SHAPES[1], centers[1, t], radii[1], xy)  # noqa: E731
        ground = still - pans[t]
        in_view = ((ground >= 0) & (ground < s)).all(-1)
        points.append(np.concatenate([on0, on1, ground]) / s)
        visible.append(np.concatenate([np.ones(len(on0), bool), ~front(on1), in_view & ~behind(ground)]))
    return Scene(np.stack(frames), np.stack(boxes).clip(0, 1).astype(np.float32), np.stack(points).astype(np.float32),
                 np.stack(visible), np.stack(depth))


def generate_scenes(out: str | Path, cfg: SceneConfig = SceneConfig(), progress: bool = True) -> Path:
    """Write `out/<split>/<id>.mp4` and `<id>.npz` for every scene and `out/manifest.jsonl`;
    return the manifest. Scenes already written are kept."""
    out = claim_folder(out, {"task": "tracking-scenes", **asdict(cfg)})
    samples = []
    jobs = [(split, i) for split in ("train", "val") for i in range(cfg.count(split))]
    for split, i in tqdm(jobs, desc="generate scenes", unit="video", disable=not progress):
        vid = f"{split}-{i:05d}"
        video, notes = out / split / f"{vid}.mp4", out / split / f"{vid}.npz"
        if not (video.exists() and notes.exists()):
            scene = render_scene(cfg, split, i)
            save_annotations(notes, boxes=scene.boxes, points=scene.points, visible=scene.visible,
                             depth=scene.depth.astype(np.float16), size=np.array([cfg.size, cfg.size]))
            write_video(video, scene.frames, fps=cfg.fps)
        samples.append(Sample(id=vid, path=str(video), split=split, annotations=str(notes)))
    return write_manifest(out / "manifest.jsonl", samples)
