"""Streaming from pixels on this machine: what a frame costs end to end against the frozen encoder
alone, for the GRU, the RVM core and a small GMMix on the embedded encoder (EfficientNet-Lite0
at its 224 px, one stream, batch 1).

For each core a classification model (random weights: the same compute as trained ones) streams
a real clip through `stillmotion.stream.run_stream` (decode, preprocess, encoder, core, readout;
no drawing), and, alternately, the same decoded frames go through the encoder alone
(preprocess + encoder), one frame at a time. Prints per core:
- `<core>_stream_over_encoder`: end-to-end wall time per frame / the encoder alone per frame
  (medians over the repeats; goal GRU <= 1.25, GMMix small <= 1.5);
- `<core>_p95_over_p50`: the spread of the stream's per-frame latency (goal <= 1.5);
- `<core>_stream_ms`, `<core>_encoder_alone_ms`: the times behind the ratios; `<core>_<stage>_ms` p50 per stage.

    python bench/stream.py [--repeat R] [--frames F] [--clip VIDEO]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from stillmotion import runtime
from stillmotion.config import load_config
from stillmotion.encoders import load
from stillmotion.model import checkpoint, load_model, model_for
from stillmotion.stream.run import run_stream
from stillmotion.video.decode import read_frames
from stillmotion.video.write import write_video

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "data" / "real-clips" / "clip_h264_340x256_30fps.mp4"
CORES = {"gru": [], "rvm": ["temporal.size=small"], "gmmix": ["temporal.size=small"]}


def make_run(folder: Path, core: str, overrides: list[str]) -> Path:
    cfg = load_config(REPO / "configs/cpu/classify.yaml", ["data.train=unused", f"temporal.name={core}",
                                                           "temporal.kw={}", "task.classes=[a,b,c,d]", *overrides])
    encoder = load(cfg.data.encoder)
    torch.manual_seed(0)
    model = model_for(cfg, "classes", 4, encoder.dim, encoder.grid)
    return checkpoint.save_weights(folder / core, 0, model, cfg).parent.parent


def encoder_alone(loaded, frames) -> float:
    """Seconds per frame of preprocess + encoder, one frame at a time."""
    start = time.perf_counter()
    for image in frames:
        loaded.encode(loaded.encoder.preprocess(image[None]))
    return (time.perf_counter() - start) / len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds per core (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=120, help="frames of the clip streamed (default: %(default)s)")
    parser.add_argument("--clip", default=str(CLIP), help="the video streamed (default: a real 340x256 clip)")
    args = parser.parse_args()
    if not Path(args.clip).is_file():
        sys.exit(f"skipped: {args.clip} not found (give --clip)")
    runtime.set_threads(None)
    print(f"# {torch.get_num_threads()} threads; {args.frames} frames of {Path(args.clip).name}; {args.repeat} rounds")
    with tempfile.TemporaryDirectory() as tmp:
        frames = read_frames(args.clip, range(args.frames))
        clip = write_video(Path(tmp) / "clip.mp4", frames, fps=30)  # the frames streamed, and only those
        for core, overrides in CORES.items():
            loaded = load_model(make_run(Path(tmp), core, overrides), device="cpu")
            run_stream(loaded, clip, progress=False)  # warm up
            stream_s, encoder_s, spread, stages = [], [], [], {}
            for _ in range(args.repeat):
                report = run_stream(loaded, clip, progress=False)
                stream_s.append(report.seconds / report.frames)
                encoder_s.append(encoder_alone(loaded, frames))
                ms = report.stages()
                spread.append(ms["total"][1] / ms["total"][0])
                for stage, (p50, _) in ms.items():
                    stages.setdefault(stage, []).append(p50)
            stream, encoder = statistics.median(stream_s), statistics.median(encoder_s)
            print(f"{core}_stream_over_encoder={stream / encoder:.3f}")
            print(f"{core}_p95_over_p50={statistics.median(spread):.3f}")
            print(f"{core}_stream_ms={stream * 1e3:.2f}")
            print(f"{core}_encoder_alone_ms={encoder * 1e3:.2f}")
            for stage, values in stages.items():
                print(f"{core}_{stage}_ms={statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
