"""`stillmotion stream`: a loaded model over a source, frame by frame, with pictures, per-frame
outputs and per-stage latency.

    report = run_stream(load_model("runs/boxes"), "clip.mp4", out="annotated.mp4", jsonl="preds.jsonl")
    print(report.format())

Boxes and points start from queries: `queries` names a JSON file of the first frame's
`{"box": [x0, y0, x1, y1]}` or `{"points": [[x, y], ...]}` in pixels of the source, or an
annotation file (.npz, see `data.annotations`); without one, the annotation file beside a video
file (same name, .npz, as `stillmotion data scenes` writes) is used. From annotations: the first
annotated frame's first object with a box, or its visible points.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from stillmotion.data.annotations import AnnotationError, load_annotations
from stillmotion.errors import UsageError
from stillmotion.model import LoadedModel
from stillmotion.stream.draw import Painter
from stillmotion.stream.sources import Frame, Prefetch, Realtime, open_source
from stillmotion.stream.streamer import STAGES, Prediction, Streamer
from stillmotion.video.write import VideoWriter

#: what a frame's latency is made of, in order; "output" (drawing and writing) is reported apart.
#: Decoding runs ahead in its own thread, so "decode" is the time the stream waited for its next
#: frame; with --realtime that wait is for the source itself and is reported as "wait", outside
#: the total.
LATENCY = ("decode", *STAGES)


@dataclass
class StreamReport:
    source: str
    kind: str
    frames: int = 0  # frames the model answered
    dropped: int = 0  # frames a --realtime stream skipped to keep up
    unreadable: list = field(default_factory=list)  # (item, why) of images that could not be read
    seconds: float = 0.0  # wall time of the whole stream
    times: dict[str, list[float]] = field(default_factory=dict)  # stage -> seconds per frame
    out: str | None = None
    jsonl: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def stages(self) -> dict[str, tuple[float, float]]:
        """Stage -> (p50, p95) in milliseconds, with "total" (decode to readout) after the stages."""
        rows = {k: v for k, v in self.times.items() if v}
        if rows.get("preprocess"):
            rows["total"] = list(np.sum([rows[k] for k in LATENCY if k in rows], axis=0))
        return {k: (float(np.percentile(v, 50)) * 1e3, float(np.percentile(v, 95)) * 1e3) for k, v in rows.items()}

    def format(self) -> str:
        lines = [f"{self.frames} frames of {self.source} in {self.seconds:.1f} s ({self.fps:.1f} frames/s), "
                 f"{self.dropped} dropped" + (f", {len(self.unreadable)} unreadable" if self.unreadable else ""),
                 f"{'per frame (ms)':<15}{'p50':>8}{'p95':>8}"]
        lines += [f"{stage:<15}{p50:>8.2f}{p95:>8.2f}" for stage, (p50, p95) in self.stages().items()]
        return "\n".join(lines)


def run_stream(loaded: LoadedModel, source: str | Path, out: str | Path | None = None,
               jsonl: str | Path | None = None, fps: float | None = None, rule: str = "time",
               realtime: bool = False, queries: str | Path | None = None, progress: bool = True) -> StreamReport:
    """Stream `source` through `loaded`, brought to `fps` by `rule` (stream.sources); `out`: an
    annotated .mp4, one frame per answered frame (at the source's timing); `jsonl`: one JSON line
    per frame. What was written before an error or an interrupt is kept."""
    frames = open_source(source, fps, rule)
    feed = Realtime(frames) if realtime else Prefetch(frames)
    report = StreamReport(str(source), loaded.kind, out=str(out) if out else None, jsonl=str(jsonl) if jsonl else None)
    streamer, painter = Streamer(loaded), Painter(loaded.kind) if out else None
    writer = VideoWriter(out, frames.fps, timed=realtime) if out else None
    lines = open(jsonl, "w") if jsonl else None
    waited = "wait" if realtime else "decode"
    report.times = {k: [] for k in (waited, *STAGES, *(("output",) if out else ()))}
    bar = tqdm(desc=f"stream {loaded.kind}", unit="frame", disable=not progress,
               total=len(frames.files) if hasattr(frames, "files") and not realtime else None)
    last_time = -1.0
    start = time.perf_counter()
    arriving = iter(feed)
    try:
        while True:
            t0 = time.perf_counter()
            frame = next(arriving, None)
            wait = time.perf_counter() - t0
            if frame is None:
                break
            if report.frames == 0:
                streamer.reset(first_query(loaded.kind, source, queries, frame))
            prediction = streamer.step(frame.image)
            report.times[waited].append(wait)
            for stage, seconds in streamer.times.items():
                report.times[stage].append(seconds)
            latency_ms = 1e3 * ((0 if realtime else wait) + sum(streamer.times.values()))
            if writer is not None:
                t0 = time.perf_counter()
                picture = painter.draw(frame.image, prediction, latency_ms)
                last_time = max(frame.time, last_time + 1e-3)  # strictly increasing for the muxer
                writer.write(picture, last_time if realtime else None)
                report.times["output"].append(time.perf_counter() - t0)
            if lines is not None:
                lines.write(json.dumps(frame_record(frame, prediction, latency_ms)) + "\n")
            report.frames += 1
            bar.update(1)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
        arriving.close()  # stops the decoding thread before the source closes
        report.dropped = getattr(feed, "dropped", 0)
        report.unreadable = list(frames.unreadable)
        frames.close()
        if lines is not None:
            lines.close()
        if writer is not None:
            writer.close() if writer.frames else writer.abort()
    for item, why in report.unreadable:
        print(f"skipped {item}: {why}", file=sys.stderr)
    return report


def frame_record(frame: Frame, prediction: Prediction, latency_ms: float) -> dict:
    """One JSON line: the frame's index and time, its latency, and the answer (coordinates in
    pixels of the source)."""
    h, w = frame.image.shape[:2]
    row = {"frame": frame.index, "time": round(frame.time, 4), "latency_ms": round(latency_ms, 2)}
    value = prediction.value
    if prediction.kind == "classes":
        row["top"] = [[name, round(p, 5)] for name, p in prediction.top(5)]
    elif prediction.kind == "boxes":
        row["box"] = [round(v, 2) for v in prediction.in_source(w, h).tolist()]
    elif prediction.kind == "points":
        xy = prediction.in_source(w, h).tolist()
        row["points"] = [[round(x, 2), round(y, 2), bool(v > 0)] for (x, y), v in zip(xy, value[:, 2].tolist())]
    elif prediction.kind == "depth":
        row["depth"] = torch.round(value.float(), decimals=3).tolist()
    elif prediction.kind == "pose":
        row["pose"] = [round(v, 6) for v in value.tolist()]
    return row


def first_query(kind: str, source: str | Path, queries: str | Path | None, frame: Frame) -> torch.Tensor | None:
    """The query a boxes / points stream starts from, in fractions of the encoder's view of `frame`."""
    if kind not in ("boxes", "points"):
        return None
    h, w = frame.image.shape[:2]
    beside = Path(source).with_suffix(".npz")
    path = Path(queries) if queries else beside if Path(source).is_file() and beside.is_file() else None
    if path is None:
        example = '{"box": [x0, y0, x1, y1]}' if kind == "boxes" else '{"points": [[x, y], ...]}'
        raise UsageError(f"{source}: a {kind} model starts from the first frame's {kind}; give --queries FILE.json "
                         f"holding {example} in pixels of the source, or an annotation .npz")
    if path.suffix == ".npz":
        pixels = _from_annotations(path, kind, w, h)
    else:
        pixels = _from_json(path, kind)
    side = min(w, h)
    offset = np.array([(w - side) / 2, (h - side) / 2])
    view = (pixels.reshape(-1, 2) - offset) / side
    return torch.tensor(view.reshape(4) if kind == "boxes" else view, dtype=torch.float32)


def _from_json(path: Path, kind: str) -> np.ndarray:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable JSON file of queries ({exc})") from None
    key = "box" if kind == "boxes" else "points"
    value = np.asarray(data.get(key) if isinstance(data, dict) else None, dtype=float)
    shape_ok = value.shape == (4,) if kind == "boxes" else (value.ndim == 2 and value.shape[1] == 2 and len(value))
    if not shape_ok or not np.isfinite(value).all():
        want = "[x0, y0, x1, y1]" if kind == "boxes" else "[[x, y], ...] (at least one point)"
        raise UsageError(f"{path}: needs \"{key}\": {want} in pixels of the source")
    return value


def _from_annotations(path: Path, kind: str, w: int, h: int) -> np.ndarray:
    try:
        notes = load_annotations(path, ("boxes",) if kind == "boxes" else ("points", "visible"))
    except (AnnotationError, OSError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    scale = np.array([w, h])
    if kind == "boxes":
        present = [b for b in notes.boxes[0] if np.isfinite(b).all()]
        if not present:
            raise UsageError(f"{path}: no object has a box in the first annotated frame")
        return (present[0].reshape(2, 2) * scale).reshape(4)
    seen = notes.visible[0]
    if not seen.any():
        raise UsageError(f"{path}: no point is visible in the first annotated frame")
    return notes.points[0][seen] * scale
