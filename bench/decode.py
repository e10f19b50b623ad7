"""Decoding speed: frames/s for uniform-16 and random-10 access vs a full sequential decode,
per backend, on the real clips (tests/data/real-clips by default). All figures come from one
run, side by side. Ends with key=value lines.

    python bench/decode.py [CLIPS_DIR] [--repeats N]
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path

import numpy as np

from stillmotion.video import probe, read_frames
from stillmotion.video.backends import torchcodec_available
from stillmotion.video.sampling import random_window, uniform

DEFAULT_CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "real-clips"


def _timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="?", default=str(DEFAULT_CLIPS))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(p for p in Path(args.clips).iterdir() if p.suffix.lower() in (".mp4", ".avi"))
    backends = ["pyav"] + (["torchcodec"] if torchcodec_available() else [])
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, list]] = {}
    print(f"{'clip':<40} {'backend':<11} {'full fps':>9} {'uniform16 fps':>14} {'random10 fps':>13}")
    for backend in backends:
        totals = {"full": [0, 0.0], "uniform16": [0, 0.0], "random10": [0, 0.0]}
        for path in paths:
            n = probe(path).num_frames
            plans = {"full": None, "uniform16": uniform(n, 16), "random10": random_window(n, 10, 1, rng)}
            row = {}
            for name, idx in plans.items():
                seconds = _timed(partial(read_frames, path, idx, backend=backend), args.repeats)
                frames = n if idx is None else len(idx)
                totals[name][0] += frames
                totals[name][1] += seconds
                row[name] = frames / seconds
            print(f"{path.name:<40} {backend:<11} {row['full']:>9.0f} {row['uniform16']:>14.0f} "
                  f"{row['random10']:>13.0f}")
        results[backend] = totals
    print()
    for backend, totals in results.items():
        for name, (frames, seconds) in totals.items():
            print(f"{backend}_{name}_fps={frames / seconds:.1f}")
        for name in ("uniform16", "random10"):  # time for the sparse read over a full decode, same videos
            print(f"{backend}_{name}_time_over_full={totals[name][1] / totals['full'][1]:.3f}")
    print(f"backends={','.join(backends)}")


if __name__ == "__main__":
    main()
