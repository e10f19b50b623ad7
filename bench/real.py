"""What the shipped CPU configs reach on real footage they never trained on.

    python bench/real.py [--repeats 3] [--vary-split] [--only diagnose,arrow,prp,boxes,other,text] [--work DIR]
    python bench/real.py --only labelled [--repeats 3] [--splits 0,1,2] [--steps N]

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

- labelled: real labels (../shared/data/real-labelled, fight / no fight surveillance clips, 75
  of each; STILLMOTION_REAL_LABELLED points elsewhere). Split k holds out the clips numbered in
  block k of 25 (1-25, 26-50, 51-75, both classes; neighbouring numbers may come from one source
  video, so blocks, never interleaved); the other 100 train. Per split and seed: the shipped
  `classify` config given only the data (`scratch`), its `mean` core, a single frame
  (`data.frames=1`, mean core); each pretext (`prp`, `arrow_of_time`, shipped configs) on every
  unlabelled clip at hand but the held-out block (the real videos, tests/data/real-clips, the
  training block without its labels), then a linear probe on its frozen core (`init.freeze`) and
  a fine-tune from it (`init.core`, beside the same run from scratch: the Delta, AdViSe's
  protocol). Prints `labelled_<variant>_top1` per run and, over all runs, `_range` lines.
  `--steps N` overrides every run's train.steps (a quick smoke run, not a figure).

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
LABELLED = Path(os.environ.get("STILLMOTION_REAL_LABELLED", SHARED / "real-labelled" / "fight"))
BLOCKS = 3  # held-out blocks of clip numbers
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


def labelled_samples(folder: Path = LABELLED) -> list:
    """The labelled clips of manifest.csv (path,label), ids the file names (fi001, nofi001, ...)."""
    import csv

    from stillmotion.data.manifest import Sample

    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Sample(Path(row["path"]).stem, str(folder / row["path"]), label=row["label"]) for row in rows]


def block(sample, count: int) -> int:
    """Which of BLOCKS blocks of clip numbers a clip falls in: numbers 1..count in equal runs."""
    number = int("".join(c for c in sample.id if c.isdigit()))
    return (number - 1) * BLOCKS // count


def labelled_manifests(work: Path, split: int) -> tuple[Path, Path, Path]:
    """(training block, held-out block, unlabelled pretext pool) manifests of split `split`."""
    from dataclasses import replace

    from stillmotion.data.manifest import write_manifest
    from stillmotion.data.sources import load_samples

    samples = labelled_samples()
    per_class = max(sum(s.label == label for s in samples) for label in {s.label for s in samples})
    train = [s for s in samples if block(s, per_class) != split]
    held = [s for s in samples if block(s, per_class) == split]
    pool = [*load_samples(VIDEOS / "clips"), *load_samples(OTHER), *(replace(s, label=None) for s in train)]
    folder = work / "labelled" / f"split{split}"
    return (write_manifest(folder / "train.jsonl", train), write_manifest(folder / "held.jsonl", held),
            write_manifest(folder / "pool.jsonl", pool))


def labelled(work: Path, split: int, seed: int, steps: int | None, report) -> None:
    """One split and seed of the labelled protocol (see the module's docstring)."""
    train_list, held_list, pool = labelled_manifests(work, split)
    common = [f"train.seed={seed}", *([f"train.steps={steps}"] if steps else [])]
    data = [f"data.train={train_list}", f"data.val={held_list}", f"data.cache={work / 'cache' / 'labelled'}"]
    where = work / "labelled" / f"split{split}-seed{seed}"
    for name, extra in (("scratch", []), ("mean", ["temporal.name=mean"]),
                        ("single_frame", ["temporal.name=mean", "data.frames=1"])):
        result = run("classify", [*data, *extra, *common], where / name)
        report(f"labelled_{name}_top1", result["val"]["top1"])
        report(f"labelled_{name}_fit_top1", result["fit"]["top1"])
    for pretext in ("prp", "arrow_of_time"):
        pre = where / pretext
        done = run(pretext, [f"data.train={pool}", f"data.cache={work / 'cache' / 'pretexts'}", *common], pre)
        report(f"labelled_{pretext}_pretext_top1", done["val"]["top1"])
        same = ["temporal.input=diff", "temporal.norm=true"]  # what the pretext configs' cores read
        probe = run("classify", [*data, *same, f"init.core={pre}", "init.freeze=true", "head.name=linear",
                                 "init.compare_scratch=false", *common], where / f"{pretext}-probe")
        report(f"labelled_{pretext}_probe_top1", probe["val"]["top1"])
        tuned = run("classify", [*data, *same, f"init.core={pre}", *common], where / f"{pretext}-finetune")
        report(f"labelled_{pretext}_finetune_top1", tuned["val"]["top1"])
        report(f"labelled_{pretext}_finetune_scratch_top1", tuned["scratch"]["top1"])
        report(f"labelled_{pretext}_finetune_delta_top1", tuned["delta"]["top1"])
    print(f"labelled_videos={result['train_videos']}/{result['val_videos']} "
          f"labelled_pool_videos={done['train_videos'] + done['val_videos']} split={split}", flush=True)


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
    parser.add_argument("--splits", default="0,1,2", help="labelled: which held-out blocks, comma-separated")
    parser.add_argument("--steps", type=int, help="labelled: every run's train.steps (a smoke run, not a figure)")
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
    if "labelled" in parts and not (LABELLED / "manifest.csv").is_file():
        print(f"skipped labelled: {LABELLED / 'manifest.csv'} not found (set STILLMOTION_REAL_LABELLED)")
        parts.discard("labelled")
    for seed in range(args.repeats):
        if "labelled" in parts:
            for split in (int(k) for k in args.splits.split(",")):
                labelled(work, split, seed, args.steps, report)
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
