"""A synthetic captioned suite whose captions depend on the order of events:
`stillmotion data captions OUT`.

Each base clip shows two objects over a texture: in the first half one moves (left, right, up
or down) while the other waits, in the second half the other moves. Its caption names both
events in order: "the red disc goes left, then the blue square goes up". Every clip is written
twice, as filmed and reversed in time; the reversal shows the same frames in the opposite order
and its caption is "the blue square goes down, then the red disc goes right". An order-blind
video tower (a mean over frames) sees the same set of frames in both and so cannot tell a
clip's caption from its reversal's: the pair accuracy (own caption above the reversal's) is
exactly 0.5 for it, and text-to-video R@1 at most about 0.5.

OUT/manifest.jsonl lists every clip with its `caption`, `split` (train / val) and `pair` (the
id of its reversal); both clips of a pair are in the same split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from stillmotion.data.manifest import Sample, write_manifest
from stillmotion.data.synthetic import _draw, _texture, claim_folder
from stillmotion.errors import UsageError
from stillmotion.video.write import write_video

COLOURS = {"red": (225, 40, 40), "blue": (40, 90, 240), "green": (40, 190, 70), "yellow": (245, 215, 30)}
#: caption word -> the shape `_draw` renders
SHAPES = {"disc": "disk", "square": "square", "diamond": "diamond"}
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


@dataclass(frozen=True)
class CaptionSuiteConfig:
    train: int = 160  # base clips (each written forwards and reversed)
    val: int = 40
    frames: int = 16
    size: int = 128
    fps: int = 8
    seed: int = 0
    travel: float = 0.35  # how far each object moves, as a fraction of the frame


def caption(first: tuple[str, str, str], second: tuple[str, str, str]) -> str:
    """(colour, shape, direction) of the first and second event -> the caption."""
    return f"the {first[0]} {first[1]} goes {first[2]}, then the {second[0]} {second[1]} goes {second[2]}"


def reversed_events(first, second) -> tuple[tuple, tuple]:
    """The events of the clip played backwards: the second undone first, then the first."""
    return (second[0], second[1], OPPOSITE[second[2]]), (first[0], first[1], OPPOSITE[first[2]])


def render(cfg: CaptionSuiteConfig, split: str, index: int) -> tuple[np.ndarray, tuple, tuple]:
    """Base clip `index` of `split` -> (frames (T, H, W, 3) uint8, first event, second event)."""
    rng = np.random.default_rng([cfg.seed, ("train", "val").index(split), index])
    colours = rng.choice(list(COLOURS), size=2, replace=False)
    shapes = rng.choice(list(SHAPES), size=2)
    moves = rng.choice(list(DIRECTIONS), size=2)
    radius, travel = cfg.size * 0.09, cfg.size * cfg.travel
    margin = radius + 2
    for _ in range(1000):  # two start points whose paths stay inside and apart
        starts = rng.uniform(margin, cfg.size - margin, size=(2, 2))
        ends = starts + travel * np.array([DIRECTIONS[m] for m in moves])
        inside = ((ends >= margin) & (ends <= cfg.size - margin)).all()
        lo, hi = np.minimum(starts, ends), np.maximum(starts, ends)
        apart = ((lo[0] > hi[1] + 2 * margin) | (lo[1] > hi[0] + 2 * margin)).any()
        if inside and apart:
            break
    else:
        raise UsageError(f"caption suite: no room for two paths at size {cfg.size}; raise --size")
    background = _texture(rng, cfg.size)
    half = cfg.frames // 2
    frames = []
    for t in range(cfg.frames):
        # object 0 moves over frames 0..half-1, object 1 over half..T-1; each waits otherwise
        progress = [np.clip(t / max(half - 1, 1), 0, 1), np.clip((t - half) / max(cfg.frames - half - 1, 1), 0, 1)]
        img = Image.fromarray(background)
        draw = ImageDraw.Draw(img)
        for k in range(2):
            centre = starts[k] + progress[k] * (ends[k] - starts[k])
            colour = COLOURS[colours[k]]
            _draw(draw, SHAPES[shapes[k]], centre, radius, colour, tuple(int(v * 0.35) for v in colour))
        frames.append(np.asarray(img))
    first, second = ((str(colours[k]), str(shapes[k]), str(moves[k])) for k in range(2))
    return np.stack(frames), first, second


def generate_caption_suite(out, cfg: CaptionSuiteConfig = CaptionSuiteConfig(), progress: bool = True):
    """Write OUT/<split>/<id>-{f,r}.mp4 and OUT/manifest.jsonl; a rerun keeps finished clips."""
    out = claim_folder(out, asdict(cfg))
    samples = []
    jobs = [(split, i) for split, n in (("train", cfg.train), ("val", cfg.val)) for i in range(n)]
    for split, i in tqdm(jobs, desc="caption suite", unit="clip", disable=not progress):
        base = f"{split}-{i:05d}"
        paths = {d: out / split / f"{base}-{d}.mp4" for d in "fr"}
        frames, first, second = render(cfg, split, i)  # cheap beside encoding; the captions need it
        for d, clip, events in (("f", frames, (first, second)), ("r", frames[::-1], reversed_events(first, second))):
            if not paths[d].is_file():
                write_video(paths[d], np.ascontiguousarray(clip), fps=cfg.fps)
            other = f"{base}-{'r' if d == 'f' else 'f'}"
            samples.append(Sample(id=f"{base}-{d}", path=str(paths[d]), split=split, caption=caption(*events),
                                  extra={"pair": other}))
    return write_manifest(out / "manifest.jsonl", samples)
