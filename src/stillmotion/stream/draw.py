"""Pictures of what a streamed model answers, drawn on the source frames at their own size.

`Painter(kind).draw(image, prediction, latency_ms)` -> uint8 (H, W', 3):
- classes: the top three with probability bars, top left;
- boxes: the box with its id; points: each point with a trail of its last positions, filled
  when visible and hollow when not;
- depth: a colour map of the predicted depth (near = bright) beside the frame, at its height;
- pose: the camera's path so far seen from above (x right, z up), with the last step's numbers;
and the frame's latency, bottom left. A frame under MIN_HEIGHT pixels is first enlarged by a whole
factor (a 128 px frame to 256) so the text stays legible and covers little of it. Heights and
widths are rounded up to even numbers (H.264).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from stillmotion.stream.streamer import Prediction
from stillmotion.tasks.metrics import rotation_from_6d

#: positions kept per point for its trail
TRAIL = 10
#: frames lower than this are enlarged (by a whole factor) before drawing
MIN_HEIGHT = 240  # (a 256 px source, as the test clips, is drawn as it is: no extra cost)
#: distinct colours for boxes and points (ids cycle through them)
PALETTE = [(255, 64, 64), (64, 200, 255), (255, 210, 0), (120, 255, 120), (255, 120, 255), (255, 150, 40),
           (160, 120, 255), (0, 255, 200)]


def _font(height: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, height // 24))


class Painter:
    """Draws one stream's predictions; holds the point trails and the camera path between frames."""

    def __init__(self, kind: str):
        self.kind = kind
        self.trails: list[deque] = []
        self.pose = np.eye(4)
        self.path: list[np.ndarray] = [np.zeros(3)]

    def draw(self, image: np.ndarray, prediction: Prediction, latency_ms: float | None = None) -> np.ndarray:
        canvas = Image.fromarray(image)
        scale = -(-MIN_HEIGHT // image.shape[0])  # ceil: 1 for frames at least MIN_HEIGHT high
        if scale > 1:
            canvas = canvas.resize((image.shape[1] * scale, image.shape[0] * scale), Image.Resampling.BILINEAR)
        w, h = canvas.size
        draw = ImageDraw.Draw(canvas)
        font = _font(h)
        getattr(self, f"_{self.kind}", lambda *_: None)(draw, prediction, w, h, font)
        if latency_ms is not None:
            _label(draw, (4, h - 4), f"{latency_ms:.1f} ms", font, anchor="ld")
        out = np.asarray(canvas)
        if self.kind == "depth":
            out = np.concatenate([out, depth_colours(prediction.value, h)], axis=1)
        return _even(out)

    def _classes(self, draw, prediction: Prediction, w, h, font) -> None:
        size = font.size
        for i, (name, p) in enumerate(prediction.top(3)):
            y = 4 + i * (size + 4)
            draw.rectangle((4, y, 4 + int(p * w * 0.4), y + size + 2), fill=(40, 120, 255))
            _label(draw, (6, y), f"{p:.2f}  {name}", font)  # the number first: names vary in length

    def _boxes(self, draw, prediction: Prediction, w, h, font) -> None:
        boxes = prediction.in_source(w, h).reshape(-1, 4)
        for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
            colour = PALETTE[i % len(PALETTE)]
            draw.rectangle((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)), outline=colour,
                           width=max(2, h // 120))
            _label(draw, (min(x0, x1), min(y0, y1) - 2), f"#{i}", font, anchor="ld", fill=colour)

    def _points(self, draw, prediction: Prediction, w, h, font) -> None:
        xy = prediction.in_source(w, h).tolist()
        visible = (prediction.value[:, 2] > 0).tolist()
        if len(self.trails) != len(xy):
            self.trails = [deque(maxlen=TRAIL) for _ in xy]
        r = max(3, h // 80)
        for i, ((x, y), seen) in enumerate(zip(xy, visible)):
            colour = PALETTE[i % len(PALETTE)]
            self.trails[i].append((x, y))
            if len(self.trails[i]) > 1:
                draw.line(list(self.trails[i]), fill=colour, width=max(1, r // 2))
            draw.ellipse((x - r, y - r, x + r, y + r), outline=colour, width=2, fill=colour if seen else None)

    def _pose(self, draw, prediction: Prediction, w, h, font) -> None:
        value = prediction.value.double()
        step = np.eye(4)
        step[:3, :3] = rotation_from_6d(value[3:]).numpy()
        step[:3, 3] = value[:3].numpy()
        self.pose = self.pose @ step
        self.path.append(self.pose[:3, 3].copy())
        # the path from above, in a square inset at the top right
        side = max(40, min(w, h) // 3)
        x0, y0 = w - side - 4, 4
        draw.rectangle((x0, y0, x0 + side, y0 + side), fill=(20, 20, 20), outline=(200, 200, 200))
        path = np.array(self.path)[:, [0, 2]]
        span = max(np.abs(path).max(), 1e-3)
        points = [(x0 + side / 2 + px / span * side * 0.45, y0 + side / 2 - pz / span * side * 0.45) for px, pz in path]
        if len(points) > 1:
            draw.line(points, fill=(255, 210, 0), width=2)
        angle = np.degrees(np.arccos(np.clip((np.trace(step[:3, :3]) - 1) / 2, -1, 1)))
        _label(draw, (4, 4), f"step {np.linalg.norm(step[:3, 3]) * 1000:.0f} mm, {angle:.2f} deg", font)


def depth_colours(depth: torch.Tensor, height: int) -> np.ndarray:
    """A depth map (R, R) -> a uint8 (height, height, 3) colour picture, near bright, far dark
    (each frame scaled to its own range)."""
    d = depth.float().numpy()
    lo, hi = np.percentile(d, 2), np.percentile(d, 98)
    near = 1 - np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = (colormaps["magma"](near)[..., :3] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((height, height), Image.Resampling.NEAREST))


def _label(draw: ImageDraw.ImageDraw, xy, text: str, font, anchor: str = "la", fill=(255, 255, 255)) -> None:
    draw.text(xy, text, font=font, anchor=anchor, fill=fill, stroke_width=2, stroke_fill=(0, 0, 0))


def _even(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)))
    return image
