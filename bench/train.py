"""Training on cached tokens vs with the frozen encoder in the loop, side by side.

Same task (PRP), core, readout, batches and number of steps; the only switch is `data.online`.
Cached: each step reads its clips' rows from the token cache. Online: each step decodes the
clips' frames, augments them, and runs them through the embedded encoder. Prints key=value
lines ending with `cached_vs_online_speedup` (goal >= 50 with the embedded default on a CPU).

    python bench/train.py [--videos FOLDER] [--steps N] [--core NAME]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from stillmotion.config import load_config
from stillmotion.runtime import keep_freed_memory
from stillmotion.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]


def clips_per_second(trainer: Trainer, steps: int) -> float:
    """Clips/s over `steps` training steps, loading included (after one warm-up step)."""
    batches = (batch for epoch in range(10**6) for batch in trainer.loader(epoch))
    trainer.train_step(next(batches))
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(next(batches))
    return steps * trainer.cfg.train.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default=str(REPO / "tests" / "data" / "real-clips"))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--core", default="gru")
    args = parser.parse_args()
    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"data.train={args.videos}", f"data.cache={tmp}/cache", f"temporal.name={args.core}",
                     "data.clips_per_video=64"]
        cached = Trainer(load_config(REPO / "configs/cpu/prp.yaml", overrides), f"{tmp}/cached", progress=False)
        online = Trainer(load_config(REPO / "configs/cpu/prp.yaml", [*overrides, "data.online=true"]),
                         f"{tmp}/online", progress=False)
        rates = {}
        for _ in range(3):  # alternate, keep each one's best (this machine's speed drifts)
            for name, trainer in (("cached", cached), ("online", online)):
                rate = clips_per_second(trainer, args.steps * (20 if name == "cached" else 1))
                rates[name] = max(rates.get(name, 0.0), rate)
    batch = cached.cfg.train.batch_size
    print(f"# PRP, {args.core} core, batch {batch} clips of {cached.cfg.data.frames} frames, "
          f"{cached.encoder.name} at {cached.encoder.image_size} px")
    print(f"cached_clips_per_second={rates['cached']:.1f}")
    print(f"online_clips_per_second={rates['online']:.2f}")
    print(f"cached_vs_online_speedup={rates['cached'] / rates['online']:.1f}")


if __name__ == "__main__":
    main()
