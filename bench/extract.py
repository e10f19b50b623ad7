"""Extraction throughput on the real clips: the whole pipeline against its two stages alone.

The five clips are listed `--copies` times under different ids (default 4: 20 videos, 3,616
frames), so that filling and draining the pipeline weigh about as little as in a real dataset.
The decode workers are started (and timed, `worker_start_s`) before the measurements, as the
`extract` command starts them while it loads the encoder. Then, on the same videos:
- decode only: the decode stage as extraction runs it (worker processes decoding every frame
  straight into the encoder's input crops), results thrown away;
- encode only: the encoder (normalize + forward, same batch size) on those crops held in memory;
- end to end: `extract` into a fresh cache.

When the encoder runs on the CPU, both stages share the same cores, so a perfect pipeline takes
the two stages' times added; on a GPU they run side by side and it takes the longer one. The
last lines are key=value: frames/s of each, `pipeline_efficiency` = ideal time / end-to-end
time (goal >= 0.9), and bytes per frame stored as float32, float16, int8 and pooled.

    python bench/extract.py [--clips DIR] [--copies C] [--encoder NAME] [--size S] [--workers W] [--repeat R]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stillmotion.cache.decoding import DecodeSpec, decode_pool, decoded
from stillmotion.cache.extract import ExtractConfig, cache_meta, default_batch, default_workers, extract
from stillmotion.cache.store import TokenStore
from stillmotion.data.manifest import Sample
from stillmotion.encoders import load
from stillmotion.runtime import keep_freed_memory, set_threads

CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "real-clips"


def decode_only(pool, samples, size, cfg):
    start = time.perf_counter()
    out = []
    for item in decoded(pool, samples, DecodeSpec(size), max(2, 2 * cfg.workers)):
        if item.error:
            raise RuntimeError(f"{item.sample.path}: {item.error}")
        out.append(item.crops.reshape(-1, size, size, 3))
    return time.perf_counter() - start, out


def encode_only(encoder, crops, batch):
    frames = np.concatenate(crops)
    start = time.perf_counter()
    for i in range(0, len(frames), batch):
        encoder.encode(encoder.normalize_crops(frames[i : i + batch]), batch_size=batch)
    return time.perf_counter() - start


def stored_bytes(pool, samples, encoder, cfg, tmp):
    store = TokenStore(Path(tmp) / f"{cfg.dtype}-{cfg.pool_space}", cache_meta(encoder, cfg))
    report = extract(samples, encoder, store, cfg, progress=False, pool=pool)
    payload = sum(p.stat().st_size for p in store.videos_dir.glob("*.safetensors"))
    return payload / report.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=str(CLIPS))
    parser.add_argument("--copies", type=int, default=4, help="times each clip is listed (default: %(default)s)")
    parser.add_argument("--encoder", default="efficientnet-lite0")
    parser.add_argument("--size", type=int)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--batch-frames", type=int)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest counts")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    workers = default_workers(device) if args.workers is None else args.workers
    threads = set_threads(args.threads) if device.type == "cpu" else torch.get_num_threads()
    if device.type == "cpu":
        keep_freed_memory()
    encoder = load(args.encoder, device=str(device), **({"size": args.size} if args.size else {}))
    clips = [p for p in sorted(Path(args.clips).iterdir()) if p.suffix in (".mp4", ".avi")]
    samples = [Sample(id=f"{p.stem}-{k}", path=str(p)) for k in range(args.copies) for p in clips]
    clips_once = samples[: len(clips)]
    cfg = ExtractConfig(workers=workers, batch_frames=args.batch_frames or default_batch(device))
    print(f"{len(samples)} videos, {encoder.name} at {encoder.image_size} px on {device}, {threads} threads, "
          f"{workers} decode workers, batch {cfg.batch_frames}")

    start = time.perf_counter()
    pool = decode_pool(workers)
    pool.submit(int).result()  # every worker has started once one task came back
    worker_start = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp, pool:
        t_dec, t_enc, t_e2e = [], [], []
        for r in range(args.repeat):
            seconds, crops = decode_only(pool, samples, encoder.image_size, cfg)
            t_dec.append(seconds)
            t_enc.append(encode_only(encoder, crops, cfg.batch_frames))
            store = TokenStore(Path(tmp) / f"run{r}", cache_meta(encoder, cfg))
            report = extract(samples, encoder, store, cfg, progress=False, pool=pool)
            t_e2e.append(report.seconds)
        frames = sum(len(c) for c in crops)
        assert report.frames == frames, (report.frames, frames)
        dec, enc, e2e = min(t_dec), min(t_enc), min(t_e2e)
        ideal = max(dec, enc) if device.type == "cuda" else dec + enc
        sizes = {
            name: stored_bytes(pool, clips_once, encoder, ExtractConfig(workers=workers, **kw), tmp)
            for name, kw in (("fp32", {"dtype": "float32"}), ("fp16", {}), ("int8", {"dtype": "int8"}),
                             ("fp16_pool4", {"pool_space": 4}), ("int8_pool4", {"dtype": "int8", "pool_space": 4}))
        }
    print(f"worker_start_s={worker_start:.2f}")
    print(f"frames={frames}")
    print(f"decode_only_fps={frames / dec:.1f}")
    print(f"encode_only_fps={frames / enc:.1f}")
    print(f"end_to_end_fps={frames / e2e:.1f}")
    print(f"ideal_fps={frames / ideal:.1f}  "
          f"# {'slower stage' if device.type == 'cuda' else 'stages added: they share the CPU'}")
    print(f"end_to_end_over_slower_stage={max(dec, enc) / e2e:.3f}  # the GPU definition, for comparison")
    print(f"pipeline_efficiency={ideal / e2e:.3f}")
    for name, value in sizes.items():
        print(f"bytes_per_frame_{name}={value:.0f}")


if __name__ == "__main__":
    main()
