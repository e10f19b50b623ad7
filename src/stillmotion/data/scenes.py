"""Synthetic tracking scenes: H.264 videos with exact boxes, point tracks, depth and camera poses.

Two objects (a square and a disk, random colours and sizes) move at constant speed over a
random colour texture, bouncing off the frame's edges, while the camera moves over the texture;
object 0 is always in front of object 1, so it hides it (and the background) where they overlap.

The camera: a pinhole of focal length f = FOCAL x `size` pixels (one frame width: a 53 degree
field of view), principal point at the frame's centre, x right, y down, z forward, looking at
the texture: a plane facing it, Z0 = 4 m away at the start. World coordinates: axes as an
upright camera's, origin Z0 in front of the texture's centre, so pixel (u, v) of the
`big` x `big` texture lies at ((u - big / 2) Z0 / f, (v - big / 2) Z0 / f, Z0). Over a clip the
camera moves at constant velocity and turns at a constant rate, from an upright start:

- a pan of p texture pixels (up to `pan` of the frame along each axis) is a translation of
  p Z0 / f metres parallel to the image plane;
- a zoom by s (up to `zoom`: s in [1 - zoom, 1 + zoom] at the end) is a move along the optical
  axis by Z0 (1 - 1 / s) (the texture is then Z0 / s away);
- a roll (up to `roll` degrees) is a rotation about the optical axis.

Each frame samples the texture through that similarity transform (bilinear), objects drawn on
top in image coordinates. Per frame the annotation file (`data.annotations` format) holds:

- `boxes` (T, 2, 4): each object's box (x0, y0, x1, y1), normalized (boxes are amodal: an
  occluded object keeps its box);
- `points` (T, P, 2) and `visible` (T, P): points fixed on each object's surface and on the
  background (moving with the camera); a point is hidden when an object in front of it covers
  it or the camera's move takes it out of the frame;
- `depth` (T, S, S): object 0 at one depth in [1.5, 2.5] m, object 1 in [2.7, 3.5] m, the
  background a ground-like plane from 8 m at the top to 4 m at the bottom of the image, fixed
  in image coordinates (a depth target of its own, not the pose model's plane at Z0);
- `poses` (T, 4, 4): the camera-to-world pose, [Rz(roll) | centre; 0 0 0 1], metres.

Each video is drawn from its own generator seeded by (seed, split, index), so the same seed
gives the same scenes, and generation resumes where a killed run stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from stillmotion.data.annotations import save_annotations
from stillmotion.data.manifest import Sample, write_manifest
from stillmotion.data.synthetic import _color, _texture, claim_folder
from stillmotion.errors import UsageError
from stillmotion.video.write import write_video

SHAPES = ("square", "disk")  # object 0, object 1
Z0 = 4.0  # metres from the unmoved camera to the texture plane
FOCAL = 1.0  # focal length, in frame widths


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
    roll: float = 10.0  # the largest in-plane rotation over a clip, degrees (0..90)
    zoom: float = 0.15  # the largest relative scale change over a clip (0 <= zoom < 1)
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
    poses: np.ndarray  # (T, 4, 4) float64 camera-to-world, metres


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


@dataclass(frozen=True)
class CameraPath:
    """Per frame: the texture point at the frame's centre `centre` (T, 2) in texture pixels, the
    roll `angle` (T,) in radians and the `scale` (T,) at which the texture shows (Z0 / its
    distance); `half` is half the frame's size in pixels (the principal point's x and y)."""

    centre: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    half: float

    def to_texture(self, t: int, xy: np.ndarray) -> np.ndarray:
        """Image positions (..., 2) in pixels at frame t -> the texture positions they show."""
        return self.centre[t] + _rotate(xy - self.half, self.angle[t]) / self.scale[t]

    def to_image(self, t: int, uv: np.ndarray) -> np.ndarray:
        """Texture positions (..., 2) -> where frame t shows them, in pixels."""
        return self.half + self.scale[t] * _rotate(uv - self.centre[t], -self.angle[t])

    def affine(self, t: int) -> tuple[float, ...]:
        """PIL's AFFINE data for frame t: output pixel (x, y) -> texture (a x + b y + c, d x + e y + f)."""
        cos, sin = np.cos(self.angle[t]) / self.scale[t], np.sin(self.angle[t]) / self.scale[t]
        u0, v0 = self.to_texture(t, np.zeros(2))
        return tuple(float(v) for v in (cos, -sin, u0, sin, cos, v0))

    def poses(self, big: int, focal: float) -> np.ndarray:
        """Camera-to-world poses (T, 4, 4) in metres over a `big`-pixel texture, `focal` in pixels."""
        out = np.tile(np.eye(4), (len(self.angle), 1, 1))
        cos, sin = np.cos(self.angle), np.sin(self.angle)
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = cos, -sin, sin, cos
        out[:, :2, 3] = (self.centre - big / 2) * Z0 / focal
        out[:, 2, 3] = Z0 * (1 - 1 / self.scale)
        return out


def _rotate(xy: np.ndarray, angle: float) -> np.ndarray:
    """Rotate vectors (..., 2) by `angle` radians (x right, y down: clockwise on screen)."""
    cos, sin = np.cos(angle), np.sin(angle)
    return np.stack([cos * xy[..., 0] - sin * xy[..., 1], sin * xy[..., 0] + cos * xy[..., 1]], -1)


def _reach(cfg: SceneConfig) -> float:
    """How far from its centre, along either axis, a frame may reach into the texture (pixels)."""
    if not (0 <= cfg.zoom < 1 and 0 <= cfg.roll <= 90 and cfg.pan >= 0):
        raise UsageError(f"scenes: need 0 <= zoom < 1, 0 <= roll <= 90 and pan >= 0; got zoom={cfg.zoom}, "
                         f"roll={cfg.roll}, pan={cfg.pan}")
    turn = np.radians(min(cfg.roll, 45))
    reach = cfg.size / 2 * (np.cos(turn) + np.sin(turn)) / (1 - cfg.zoom)
    return cfg.size / 2 if reach <= cfg.size / 2 else float(np.ceil(reach) + 1)  # a pixel spare for bilinear


def _camera(rng: np.random.Generator, cfg: SceneConfig, big: int, reach: float) -> CameraPath:
    """A constant-velocity camera path over a `big`-pixel texture, kept `reach` inside its edges."""
    start = rng.uniform(reach, big - reach, size=2)
    end = np.clip(start + rng.uniform(-cfg.pan, cfg.pan, size=2) * cfg.size, reach, big - reach)
    roll = np.radians(rng.uniform(-cfg.roll, cfg.roll))
    advance = Z0 * (1 - 1 / (1 + rng.uniform(-cfg.zoom, cfg.zoom)))  # along the optical axis at the end, metres
    u = np.arange(cfg.frames) / max(cfg.frames - 1, 1)
    return CameraPath(start + (end - start) * u[:, None], roll * u, Z0 / (Z0 - advance * u), cfg.size / 2)


def render_scene(cfg: SceneConfig, split: str, index: int) -> Scene:
    rng = np.random.default_rng([cfg.seed, ("train", "val").index(split), index])
    s = cfg.size
    reach = _reach(cfg)
    big = int(2 * reach) + 2 * round(cfg.pan * s / 2)  # the texture the camera moves over
    world = Image.fromarray(_texture(rng, big))
    camera = _camera(rng, cfg, big, reach)
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
        img = world.transform((s, s), Image.AFFINE, camera.affine(t), resample=Image.BILINEAR)
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
        front = partial(_inside, SHAPES[0], centers[0, t], radii[0])  # covered by the front object
        back = partial(_inside, SHAPES[1], centers[1, t], radii[1])
        ground = camera.to_image(t, still)
        in_view = ((ground >= 0) & (ground < s)).all(-1)
        points.append(np.concatenate([on0, on1, ground]) / s)
        visible.append(np.concatenate([np.ones(len(on0), bool), ~front(on1),
                                       in_view & ~(front(ground) | back(ground))]))
    return Scene(np.stack(frames), np.stack(boxes).clip(0, 1).astype(np.float32), np.stack(points).astype(np.float32),
                 np.stack(visible), np.stack(depth), camera.poses(big, FOCAL * s))


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
                             depth=scene.depth.astype(np.float16), poses=scene.poses,
                             size=np.array([cfg.size, cfg.size]))
            write_video(video, scene.frames, fps=cfg.fps)
        samples.append(Sample(id=vid, path=str(video), split=split, annotations=str(notes)))
    return write_manifest(out / "manifest.jsonl", samples)
