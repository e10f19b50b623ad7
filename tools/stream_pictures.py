"""The README's streaming pictures, remade: train a class, box, point and depth run with the
shipped CPU configs on synthetic videos, stream one held-out video through each with
`stillmotion stream`'s code, and write docs/stream/<task>.gif (every annotated frame, at the
video's size) and docs/stream/<task>.png (one still, twice the size). Prints each run's
validation metrics (held-out videos) and each stream's summary.

    python tools/stream_pictures.py [--work stream-work] [--docs docs/stream]    # ~6 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from PIL import Image

from stillmotion.config import load_config
from stillmotion.data.scenes import SceneConfig, generate_scenes
from stillmotion.data.sources import load_samples
from stillmotion.data.synthetic import MotionTaskConfig, generate_motion_task
from stillmotion.model import load_model
from stillmotion.stream.run import run_stream
from stillmotion.train.trainer import train
from stillmotion.video.decode import read_frames

REPO = Path(__file__).resolve().parents[1]
#: picture name -> (config, data, the held-out video streamed: its index among the val videos)
RUNS = {"classes": ("classify", "motion", 3), "boxes": ("box_tracking", "scenes", 0),
        "points": ("point_tracking", "scenes", 0), "depth": ("depth", "scenes", 0)}
#: which frame of each stream is the still
STILL = 12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="stream-work", help="data, caches and runs (default: %(default)s)")
    parser.add_argument("--docs", default=str(REPO / "docs" / "stream"), help="where the pictures go")
    args = parser.parse_args()
    work, docs = Path(args.work), Path(args.docs)
    docs.mkdir(parents=True, exist_ok=True)
    data = {"motion": generate_motion_task(work / "motion", MotionTaskConfig(train_per_class=60, val_per_class=10,
                                                                             test_per_class=0), progress=False),
            "scenes": generate_scenes(work / "scenes", SceneConfig(), progress=False)}
    for name, (config, source, index) in RUNS.items():
        cfg = load_config(REPO / f"configs/cpu/{config}.yaml", [f"data.train={data[source]}",
                                                               f"data.cache={work / 'cache' / source}"])
        run = work / "runs" / name
        result = train(cfg, run, progress=False)
        metrics = {k: round(v, 4) for k, v in result["val"].items() if isinstance(v, float)}
        print(f"{name}: {config}, validation on {result['val_videos']} held-out videos: {json.dumps(metrics)}")
        video = [s for s in load_samples(data[source]) if s.split == "val"][index]
        out = work / f"{name}.mp4"
        report = run_stream(load_model(run, device="cpu"), video.path, out=out, progress=False)
        print(f"  streamed {video.path}:\n" + "\n".join("  " + line for line in report.format().splitlines()))
        frames = [Image.fromarray(f) for f in read_frames(out)]
        frames[0].save(docs / f"{name}.gif", save_all=True, append_images=frames[1:], duration=160, loop=0)
        still = frames[min(STILL, len(frames) - 1)]
        still.resize((still.width * 2, still.height * 2), Image.Resampling.NEAREST).save(docs / f"{name}.png")
        print(f"  -> {docs / name}.gif, {docs / name}.png")


if __name__ == "__main__":
    main()
