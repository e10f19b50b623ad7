"""What the shipped CPU configs reach on real footage they never trained on.

    python bench/real.py [--repeats 3] [--vary-split] [--only diagnose,arrow,prp,boxes,other,text] [--work DIR]

Data: ../shared/data/real-videos (67 real captioned clips from Panda-70M, 320x180, 24-60 fps;
non-commercial licence, so they stay outside this repository; point STILLMOTION_REAL_VIDEOS
elsewhere if they live elsewhere). Without them the bench prints why and exits 0.

- diagnose: checks of the data path before any training (see `diagnose`).
- arrow, prp: the shipped configs given only `data.train=CLIPS`: they hold out a fifth of the
  clips by file (`data.val_fraction` 0.2; split 0, the same on every machine) and score on it;
  the `mean` core, blind to frame order, beside each.
- other: the same configs trained on all 67 clips and scored on footage of another kind: the
  five clips of tests/data/real-clips (other cameras, subjects, frame rates and lengths).
- boxes: box tracking on 20 of the clips whose objects we boxed by hand
  (bench/data/real_video_boxes.json: 8 keyframes a clip). A fixed half trains (boxes between
  keyframes interpolated linearly), the other half is scored streamed over each whole clip,
  at the hand-boxed keyframes only, against holding the first box still (`static_iou`).
- text: the video_text config on the clips' captions (captions.jsonl), 70% of the clips by
  file for training and 30% (20 clips) held out for text-to-video retrieval among themselves
  (chance R@1 0.05), 150 steps; as shipped (the core reads frame differences) and reading the
  tokens themselves (`temporal.input=tokens`), and the order-blind mean.

Each run goes through `stillmotion.train.train` with its config's own settings; `--repeats N`
trains each N times, run r with train.seed=r (initialisation, clip order) on the same split, and
prints each figure, then its range. With `--vary-split`, arrow and prp run r also hold out
another fifth (data.split_seed=r): with 13 validation clips the split moves the figure as much
as the seed does. Prints key=value lines.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
VIDEOS = Path(os.environ.get("STILLMOTION_REAL_VIDEOS", SHARED / "real-videos"))
OTHER = REPO / "tests" / "data" / "real-clips"
BOXES = REPO / "bench" / "data" / "real_video_boxes.json"


def interpolate(frames: list[int], boxes: list) -> tuple[np.ndarray, np.ndarray]:
    """Every frame from the first boxed keyframe to the last, boxes linearly interpolated
    between consecutive boxed keyframes (NaN across a keyframe where the object is absent)."""
    rows = range(frames[0], frames[-1] + 1)
    out = np.full((len(rows), 1, 4), np.nan, dtype=np.float32)
    for (f0, b0), (f1, b1) in zip(zip(frames, boxes), zip(frames[1:], boxes[1:])):
        if b0 is None or b1 is None:
            continue
        for f in range(f0, f1 + 1):
            w = (f - f0) / (f1 - f0)
            out[f - frames[0], 0] = (1 - w) * np.asarray(b0) + w * np.asarray(b1)
    for f, b in zip(frames, boxes):  # keyframes exactly as boxed
        out[f - frames[0], 0] = np.nan if b is None else b
    return np.asarray(rows), out


def box_manifests(work: Path, videos: Path = VIDEOS) -> tuple[Path, Path]:
    """(train manifest, validation manifest) of the hand-boxed clips, split in half by clip."""
    from stillmotion.data.annotations import save_annotations
    from stillmotion.data.manifest import Sample, write_manifest
    from stillmotion.data.splits import split_by_video

    notes = json.loads(BOXES.read_text())
    samples = [Sample(Path(name).stem, str(videos / "clips" / name)) for name in sorted(notes)]
    train, val = split_by_video(samples, 0.5, seed=0)
    folder = work / "boxes"
    folder.mkdir(parents=True, exist_ok=True)
    for sample in train:
        note = notes[Path(sample.path).name]
        frames, boxes = interpolate(note["frames"], note["boxes"])
        sample.annotations = str(save_annotations(folder / f"{sample.id}.train.npz", frames=frames, boxes=boxes))
    for sample in val:
        note = notes[Path(sample.path).name]
        boxes = np.array([[b if b is not None else [np.nan] * 4] for b in note["boxes"]], dtype=np.float32)
        sample.annotations = str(save_annotations(folder / f"{sample.id}.val.npz", frames=np.asarray(note["frames"]),
                                                  boxes=boxes))
    return write_manifest(folder / "train.jsonl", train), write_manifest(folder / "val.jsonl", val)


def diagnose(work: Path, clips: Path) -> dict:
    """Checks of the pipeline before any recipe, on the embedded encoder's cached tokens: a
    reversed clip reads back as the forward clip's tokens in reverse order (and differs from
    it); how much tokens change between frames `s` apart (relative to their size) against how
    much they differ between videos; the tokens' scale."""
    from stillmotion.cache import TokenStore
    from stillmotion.cache.extract import ExtractConfig, cache_meta, extract
    from stillmotion.data.sources import load_samples
    from stillmotion.encoders import load

    encoder = load()
    store = TokenStore(work / "cache" / "diagnose", cache_meta(encoder, ExtractConfig()))
    extract([s for s in load_samples(clips) if s.id not in store], encoder, store, ExtractConfig(), progress=False)
    videos = store.videos()
    rows = list(range(0, 29, 4))
    forward, backward = store.read(videos[0], frames=rows), store.read(videos[0], frames=rows[::-1])
    out = {"reversed_equals_forward_reversed": int(np.array_equal(backward, forward[::-1])),
           "reversed_differs_from_forward": int(not np.array_equal(backward, forward))}
    change: dict[int, list[float]] = {s: [] for s in (1, 2, 4, 8, 16)}
    firsts, samples = [], []
    for video in videos:
        x = store.read(video).astype(np.float32)  # (T, N, D)
        size = np.linalg.norm(x, axis=-1).mean()
        for s in change:
            if len(x) > s:
                change[s].append(float(np.linalg.norm(x[s:] - x[:-s], axis=-1).mean() / size))
        firsts.append(x[0])
        samples.append(x[:: max(1, len(x) // 8)].reshape(-1, x.shape[-1]))
    for s, values in change.items():
        out[f"token_change_stride{s}"] = float(np.median(values))
    between = [np.linalg.norm(a - b, axis=-1).mean() / np.linalg.norm(a, axis=-1).mean()
               for i, a in enumerate(firsts) for b in firsts[:i]]
    out["token_change_between_videos"] = float(np.median(between))
    every = np.concatenate(samples)
    out["token_std"], out["token_norm"] = float(every.std()), float(np.linalg.norm(every, axis=-1).mean())
    return out


def run(config: str, overrides: list[str], out: Path) -> dict:
    from stillmotion.config import load_config
    from stillmotion.train.trainer import train

    start = time.perf_counter()
    result = train(load_config(REPO / "configs" / "cpu" / f"{config}.yaml", overrides), out, progress=False)
    result["seconds"] = time.perf_counter() - start  # the whole run: extraction (when not cached yet) included
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="runs of each setting (train.seed 0..N-1)")
    parser.add_argument("--only", default="diagnose,arrow,prp,boxes,other,text", help="which parts, comma-separated")
    parser.add_argument("--vary-split", action="store_true", help="arrow and prp: run r holds out split r")
    parser.add_argument("--work", help="folder for caches and runs (default: a temporary one)")
    args = parser.parse_args()
    if not (VIDEOS / "clips").is_dir():
        print(f"skipped: {VIDEOS / 'clips'} not found (the real videos stay outside the repository; "
              "set STILLMOTION_REAL_VIDEOS to their folder)")
        return 0
    parts = set(args.only.split(","))
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="stillmotion-real-"))
    clips = VIDEOS / "clips"
    figures: dict[str, list[float]] = {}

    def report(key: str, value: float) -> None:
        figures.setdefault(key, []).append(value)
        print(f"{key}={value:.4f}", flush=True)

    if "diagnose" in parts:
        for key, value in diagnose(work, clips).items():
            print(f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}", flush=True)
    for seed in range(args.repeats):
        common = [f"train.seed={seed}"]
        for task, name in (("arrow_of_time", "arrow"), ("prp", "prp")):
            cache = f"data.cache={work / 'cache' / 'pretexts'}"  # the two configs cache the same views
            if name in parts:
                held = seed if args.vary_split else 0
                split = [f"data.split_seed={held}"]
                core = run(task, [f"data.train={clips}", cache, *common, *split],
                           work / f"{name}-split{held}-seed{seed}")
                blind = run(task, [f"data.train={clips}", cache, "temporal.name=mean", *common, *split],
                            work / f"{name}-mean-split{held}-seed{seed}")
                report(f"{name}_top1", core["val"]["top1"])
                report(f"{name}_fit_top1", core["fit"]["top1"])
                report(f"{name}_mean_top1", blind["val"]["top1"])
                report(f"{name}_gain_over_mean", core["val"]["top1"] - blind["val"]["top1"])
                report(f"{name}_seconds", core["seconds"])
                print(f"{name}_videos={core['train_videos']}/{core['val_videos']}")
            if "other" in parts:
                other = run(task, [f"data.train={clips}", f"data.val={OTHER}", cache, *common],
                            work / f"{name}-other-{seed}")
                blind = run(task, [f"data.train={clips}", f"data.val={OTHER}", cache, "temporal.name=mean", *common],
                            work / f"{name}-other-mean-{seed}")
                report(f"{name}_other_footage_top1", other["val"]["top1"])
                report(f"{name}_other_footage_mean_top1", blind["val"]["top1"])
        if "boxes" in parts:
            train_list, val_list = box_manifests(work)
            boxes = run("box_tracking", [f"data.train={train_list}", f"data.val={val_list}",
                                         f"data.cache={work / 'cache' / 'boxes'}", *common], work / f"boxes-{seed}")
            report("box_mean_iou", boxes["val"]["mean_iou"])
            report("box_static_iou", boxes["val"]["static_iou"])
            report("box_gain_over_static", boxes["val"]["mean_iou"] - boxes["val"]["static_iou"])
            report("box_seconds", boxes["seconds"])
            print(f"box_videos={boxes['train_videos']}/{boxes['val_videos']} "
                  f"box_scored_frames={boxes['val']['frames']}")
        if "text" in parts:
            captioned = [f"data.train={VIDEOS / 'captions.jsonl'}", "data.val_fraction=0.3", "train.steps=150",
                         f"data.cache={work / 'cache' / 'text'}", *common]
            for name, extra in (("text", []), ("text_tokens", ["temporal.input=tokens"]),
                                ("text_mean", ["temporal.name=mean", "head.mode=stream"])):
                result = run("video_text", [*captioned, *extra], work / f"{name}-{seed}")
                for metric in ("t2v_r1", "t2v_r5", "t2v_median_rank", "v2t_r1"):
                    report(f"{name}_{metric}", result["val"][metric])
                report(f"{name}_fit_t2v_r1", result["fit"]["t2v_r1"])
            print(f"text_videos={result['train_videos']}/{result['val_videos']} "
                  f"text_chance_r1={result['val']['chance_r1']:.4f}")
    if args.repeats > 1:
        for key, values in figures.items():
            print(f"{key}_range={min(values):.4f}..{max(values):.4f}")
    print(f"work={work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
