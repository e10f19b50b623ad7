"""A trained (or imported) run as a video model that answers frame by frame.

    model = load_model("runs/boxes")            # encoder + core + readout, from the saved config
    streamer = Streamer(model)
    streamer.reset(query=box)                   # boxes / points: the first frame's, in the view
    for frame in frames:                        # uint8 (H, W, 3), any size
        prediction = streamer.step(frame)

`load_model` needs nothing but the run's checkpoint (weights + config): no training data. Each
frame goes through the same preprocessing as the token cache (short side to the encoder's size,
centre crop, normalisation, the run's pooling), then the core's `step` and the readout; only the
core's state and the readout's carry from frame to frame. The outputs equal the clip forward on
the same frames (tests/test_streaming.py).

Coordinates (boxes, points) are fractions of the encoder's square view (the centre crop);
`Prediction.in_source(width, height)` maps them back to the source frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from stillmotion.errors import UsageError
from stillmotion.model import LoadedModel


@dataclass
class Prediction:
    """One frame's answer. `value`: class probabilities (C,); a box (4,) (x0, y0, x1, y1); points
    (P, 3+) x, y, visibility logit (and uncertainty); a depth map (R, R); a pose (9,). Coordinates
    are fractions of the encoder's square view."""

    kind: str
    value: torch.Tensor
    classes: list[str]

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most probable classes with their probabilities ("classes" only)."""
        if self.kind != "classes":
            raise UsageError(f"a {self.kind} prediction has no classes")
        p, i = self.value.topk(min(k, len(self.value)))
        return [(self.classes[j] if j < len(self.classes) else str(j), float(q)) for q, j in zip(p, i.tolist())]

    def in_source(self, width: int, height: int) -> torch.Tensor:
        """Boxes (4,) or points (P, 2) in pixels of a width x height source frame (the view is its
        centre square, as the cache's preprocessing crops it)."""
        if self.kind not in ("boxes", "points"):
            raise UsageError(f"a {self.kind} prediction has no coordinates")
        side = min(width, height)
        offset = torch.tensor([(width - side) / 2, (height - side) / 2])
        if self.kind == "boxes":
            return self.value * side + offset.repeat(2)
        return self.value[..., :2] * side + offset


#: the stages of a streamed frame, in order (`Streamer.times` holds the last frame's seconds of each)
STAGES = ("preprocess", "encoder", "core", "readout")


class Streamer:
    """Frames in, one `Prediction` per frame out, holding the core's and the readout's state.
    `times` holds the last frame's seconds per stage (`STAGES`), synchronised on CUDA."""

    def __init__(self, model: LoadedModel):
        self.loaded = model
        self.state: dict | None = None
        self.query: torch.Tensor | None = None
        self.times: dict[str, float] = {}
        self._cuda = model.device.type == "cuda"

    def reset(self, query: torch.Tensor | np.ndarray | None = None) -> None:
        """Start a new stream; boxes (4,) and points (P, 2) start from `query` (fractions of the view)."""
        self.state = None
        self.query = None if query is None else torch.as_tensor(query, dtype=torch.float32)

    def _clock(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    @torch.inference_mode()
    def step(self, frame: np.ndarray | torch.Tensor) -> Prediction:
        """One uint8 frame (H, W, 3) -> its prediction."""
        loaded, model = self.loaded, self.loaded.model
        t0 = self._clock()
        pixels = loaded.encoder.preprocess(frame[None])
        t1 = self._clock()
        tokens = loaded.encode(pixels)
        t2 = self._clock()
        if self.state is None:
            query = None if self.query is None else self.query[None].to(loaded.device)
            self.state = model.start_stream(1, tokens.shape[1], loaded.device, query)
        y, self.state = model.core_step(tokens, self.state)
        t3 = self._clock()
        out, self.state = model.readout_step(y, self.state)
        out = out[0].float().cpu()
        if loaded.kind == "classes":
            out = out.softmax(-1)
        t4 = time.perf_counter()
        self.times = dict(zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)))
        return Prediction(loaded.kind, out, loaded.classes)
