"""Kill training and token extraction at random points, under CPU load, resume each, and compare
the result with an uninterrupted run: resume must be identical wherever the kill lands.

    python tools/resume_stress.py                       # 20 kill points each, a busy loop per core
    python tools/resume_stress.py --jobs train --kills 5 --no-load

For each job it runs the command once uninterrupted (the reference), then, for every kill point,
starts it afresh in a new folder, sends SIGKILL to its process group at a random moment (a
quarter of the kills anywhere from the start, the rest while it works: once training has begun
or the first video is cached), sometimes kills the resumed run too, reruns it to the end and compares:

- train: every checkpoint's weights and training state, `best` (its weights and best.json),
  log.jsonl record for record, TensorBoard's scalars (after its purge), metrics.json (less its
  timings), and the run folder's file names (no staging left behind);
- extract: meta.json, the list of videos, every video's tokens and frame positions, the failure
  records and failures.jsonl (one clip in the set is unreadable on purpose), the exit status, and
  no half-written (`.part`) file left.

It prints one line per kill point (where the kill landed, what differed) and per job
`job=NAME resume_identical=K/N`. Not run in CI: it takes minutes (README, "Resuming").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO / "tests" / "data" / "real-clips"
#: a short PRP run whose checkpoints fall mid-epoch (2 steps per epoch), whose log lines do not
#: fall on checkpoints, with validation (and so `best`) between them, and a core with dropout
TRAIN = ["temporal.name=mamba", "temporal.kw.layers=1", "data.pool_space=2", "data.frames=6", "data.clips_per_video=4",
         "train.batch_size=8", "train.steps=36", "train.checkpoint_every=3", "train.eval_every=5",
         "train.log_every=4", "task.eval_clips=2", "task.rates=[1,2,4]"]
EXTRACT = ["--size", "96", "--fps", "8", "--views", "1", "--batch-frames", "24", "--quiet"]
TIMINGS = ("train_seconds", "clips_per_second")  # the only values a resumed run may change


# ---- running and killing ---------------------------------------------------------------------
@contextmanager
def busy_loops(count: int):
    """`count` processes spinning on a core each, for as long as the block runs."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "stillmotion.cli", *map(str, args)]


def run(cmd: list[str]) -> int:
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()).returncode


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1"}


def kill_after(cmd: list[str], delay: float, working: callable | None) -> float | None:
    """Start `cmd`; SIGKILL its process group `delay` seconds after it starts, or after
    `working()` first holds when given -> None when the kill came before it ended by itself,
    else the seconds it ran (from its start, or from when `working()` held)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
                            start_new_session=True)
    if working is not None:
        while not working() and proc.poll() is None:
            time.sleep(0.01)
    start = time.perf_counter()
    try:
        proc.wait(timeout=delay)
        return time.perf_counter() - start
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


# ---- what a run left behind -----------------------------------------------------------------
def _tensors(path: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(path))


def _same_arrays(a: dict, b: dict) -> bool:
    import numpy as np

    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def _state(path: Path):
    import torch

    return torch.load(path, weights_only=True)


def _same_state(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    return a == b


def _scalars(run: Path) -> dict:
    """TensorBoard's scalars as it shows them: a resumed run's purged steps left out."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # it reports each purge it makes

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _names(run: Path) -> list[str]:
    """The run folder's files, less TensorBoard's (an event file per process) and the cache."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*")
                  if p.is_file() and p.relative_to(run).parts[0] not in ("tensorboard", "cache"))


def compare_runs(ref: Path, got: Path) -> list[str]:
    """What differs between two training run folders (empty: identical, timings aside)."""
    diffs = []
    if _names(ref) != _names(got):
        diffs.append(f"files {sorted(set(_names(ref)) ^ set(_names(got)))}")
    for folder in sorted((ref / "checkpoints").iterdir()):
        other = got / "checkpoints" / folder.name
        if not folder.is_dir() or not other.is_dir():
            continue
        if not _same_arrays(_tensors(folder / "model.safetensors"), _tensors(other / "model.safetensors")):
            diffs.append(f"{folder.name} weights")
        if (folder / "training.pt").is_file() and not _same_state(_state(folder / "training.pt"),
                                                                   _state(other / "training.pt")):
            diffs.append(f"{folder.name} training state")
        if (folder / "best.json").is_file() and (folder / "best.json").read_text() != (other / "best.json").read_text():
            diffs.append("best.json")
    if (ref / "log.jsonl").read_text() != (got / "log.jsonl").read_text():
        diffs.append("log.jsonl")
    if _scalars(ref) != _scalars(got):
        diffs.append("tensorboard scalars")
    a, b = (json.loads((r / "metrics.json").read_text()) for r in (ref, got))
    if {k: v for k, v in a.items() if k not in TIMINGS} != {k: v for k, v in b.items() if k not in TIMINGS}:
        diffs.append("metrics.json")
    return diffs


def compare_caches(ref: Path, got: Path) -> list[str]:
    """What differs between two token caches (empty: identical)."""
    diffs = []
    if json.loads((ref / "meta.json").read_text()) != json.loads((got / "meta.json").read_text()):
        diffs.append("meta.json")
    videos = [sorted(p.name for p in (r / "videos").iterdir()) for r in (ref, got)]
    if videos[0] != videos[1]:
        diffs.append(f"videos {sorted(set(videos[0]) ^ set(videos[1]))}")
    for name in sorted(set(videos[0]) & set(videos[1])):
        if not _same_arrays(_tensors(ref / "videos" / name), _tensors(got / "videos" / name)):
            diffs.append(f"tokens of {name}")
    failures = [sorted((json.loads(p.read_text())["id"], json.loads(p.read_text())["reason"])
                       for p in (r / "failures").glob("*.json")) if (r / "failures").is_dir() else []
                for r in (ref, got)]
    if failures[0] != failures[1]:
        diffs.append("failure records")
    listed = [(r / "failures.jsonl").read_text() if (r / "failures.jsonl").is_file() else None for r in (ref, got)]
    if listed[0] != listed[1]:
        diffs.append("failures.jsonl")
    if list(got.rglob(".*.part")):
        diffs.append(f"half-written files {sorted(p.name for p in got.rglob('.*.part'))}")
    return diffs


def _train_landing(run: Path) -> str:
    """Where a kill left a training run: its latest checkpoint and any half-done write."""
    root = run / "checkpoints"
    latest = (root / "latest").read_text().strip() if (root / "latest").is_file() else "none"
    loose = sorted(p.name for p in root.glob(".*")) if root.is_dir() else []
    lines = len((run / "log.jsonl").read_text().splitlines()) if (run / "log.jsonl").is_file() else 0
    return f"latest={latest} log_lines={lines}" + (f" left={','.join(loose)}" if loose else "")


def _extract_landing(cache: Path) -> str:
    videos = len(list((cache / "videos").glob("*.safetensors"))) if (cache / "videos").is_dir() else 0
    parts = len(list(cache.rglob(".*.part"))) if cache.is_dir() else 0
    return f"videos={videos}" + (f" part_files={parts}" if parts else "")


# ---- the two jobs -----------------------------------------------------------------------------
def _stress(name: str, kills: int, rng: random.Random, work: Path, command, working, done, landing, compare,
            finish_code: int) -> tuple[int, int]:
    """Kill `command(folder)` `kills` times at random points, resume each, compare with a reference.
    `working(folder)` says the job has begun its work, `done(folder)` that it has written its last
    result: the kills that do not land just anywhere land between the two."""
    ref = work / f"{name}-ref"
    start = time.perf_counter()
    proc = subprocess.Popen(command(ref), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    moments = []
    for reached in (working, done):
        while not reached(ref) and proc.poll() is None:
            time.sleep(0.01)
        moments.append(time.perf_counter())
    code = proc.wait()
    whole, busy = time.perf_counter() - start, moments[1] - moments[0]
    if code != finish_code:
        sys.exit(f"{name}: the uninterrupted run exited with {code}; run `{' '.join(map(str, command(ref)))}`")
    print(f"{name}: uninterrupted run {whole:.1f} s, of which {busy:.1f} s at work", flush=True)
    same = done = tries = 0
    while done < kills:
        folder = work / f"{name}-{tries}"
        tries += 1
        early = rng.random() < 0.25  # anywhere from the start: startup, resume and setup too
        delay = rng.uniform(0, whole) if early else rng.uniform(0, busy)
        landed = []
        while (ran := kill_after(command(folder), delay, None if early else (lambda f=folder: working(f)))) is None:
            landed.append(landing(folder))
            if rng.random() >= 0.3:  # sometimes the resumed run is killed as well
                break
            delay = rng.uniform(0, whole)
        if not landed:  # it ended before the kill came: not a kill point, draw another
            print(f"{name}: the run ended {ran:.1f} s in, before the kill at {delay:.1f} s; "
                  f"drawing another moment within that", flush=True)
            # runs go faster than the reference did (the load varies): draw within what this one took
            if early:
                whole = min(whole, ran)
            else:
                busy = min(busy, ran)
            shutil.rmtree(folder, ignore_errors=True)
            continue
        done += 1
        code = run(command(folder))
        diffs = ([] if code == finish_code else [f"exit status {code}"]) + compare(ref, folder)
        same += not diffs
        print(f"{name} kill point {done}/{kills}: {' then '.join(landed)} -> "
              f"{'identical' if not diffs else 'DIFFERS: ' + ', '.join(diffs)}", flush=True)
        shutil.rmtree(folder, ignore_errors=True)
    return same, kills


def stress_train(kills: int, rng: random.Random, work: Path, extra: list[str]) -> tuple[int, int]:
    cache = work / "train-cache"
    overrides = [f"data.train={CLIPS}", f"data.cache={cache}", *TRAIN, *extra]
    # the cache is made once, beforehand: what is stressed here is training, not extraction
    if run(_cli("train", "prp", *overrides, "train.steps=1", "--out", work / "warmup", "--quiet")) != 0:
        sys.exit("train: could not make the token cache (run the warm-up command by hand to see why)")
    return _stress("train", kills, rng, work,
                   lambda out: _cli("train", "prp", *overrides, "--out", out, "--quiet"),
                   lambda out: (out / "tensorboard").is_dir(), lambda out: (out / "metrics.json").is_file(),
                   _train_landing, compare_runs, 0)


def stress_extract(kills: int, rng: random.Random, work: Path, extra: list[str]) -> tuple[int, int]:
    videos = work / "videos"
    videos.mkdir(exist_ok=True)
    for clip in sorted(CLIPS.glob("*.mp4")) + sorted(CLIPS.glob("*.avi")):
        shutil.copy(clip, videos / clip.name)
    data = (CLIPS / "clip_h264_340x256_30fps.mp4").read_bytes()
    (videos / "broken.mp4").write_bytes(data[: len(data) // 50])  # unreadable: recorded, skipped
    return _stress("extract", kills, rng, work,
                   lambda out: _cli("extract", videos, "--out", out, *EXTRACT, *extra),
                   lambda out: any((out / "videos").glob("*")) if (out / "videos").is_dir() else False,
                   lambda out: (out / "failures.jsonl").is_file(), _extract_landing, compare_caches, 3)


JOBS = {"extract": stress_extract, "train": stress_train}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", nargs="+", choices=sorted(JOBS), default=["train", "extract"])
    parser.add_argument("--kills", type=int, default=20, help="kill points per job (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="draws the kill moments")
    parser.add_argument("--no-load", action="store_true", help="no busy loops beside the runs")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    parser.add_argument("--train-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="settings over the training job's (e.g. temporal.name=gru)")
    parser.add_argument("--extract-args", nargs="*", default=[], metavar="ARG",
                        help="options added to the extraction job's (e.g. --dtype=fp32)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="resume-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    loops = 0 if args.no_load else len(os.sched_getaffinity(0))
    rng = random.Random(args.seed)
    results = {}
    try:
        with busy_loops(loops):
            for job in args.jobs:
                extra = args.train_set if job == "train" else args.extract_args
                results[job] = JOBS[job](args.kills, rng, work, extra)
                print(f"job={job} resume_identical={results[job][0]}/{results[job][1]} load={loops}_busy_loops",
                      flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if all(same == total for same, total in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
