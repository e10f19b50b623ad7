"""The GPU path's figures at the papers' sizes: extraction, training cached vs online, streaming,
peak memory.

Every network is built from its config with random weights (the same compute as the released
weights, nothing downloaded): ViTs the size of DINOv2-B/14 and DINOv3-B/16 at 224 px (256 and
196 patch tokens of width 768, 12 blocks), and GMMix and the RVM core at size `base` (4 layers,
8 heads) with the attentive streaming readout over 16-frame clips of DINOv3-B tokens, as
configs/gpu/ssv2_dinov3_gmmix_stream.yaml trains them. On CUDA all of it runs under bf16
autocast, as stillmotion does there; on a CPU in float32. Prints key=value lines:

- `<vit>_encoder_frames_per_s`: normalized pixels in host memory -> tokens in host memory
  (`FrozenEncoder.encode`, batch `--batch-frames`);
- `<vit>_extract_frames_per_s`: end to end, `stillmotion.cache.extract` over a real clip (decode,
  resize, encode, float16 tokens written to a cache); `<vit>_extract_over_encoder` their ratio
  (how much of the encoder's speed extraction keeps);
- `<core>_cached_steps_per_s` / `<core>_online_steps_per_s`: training steps (forward, backward,
  AdamW) on `--clips` clips from tokens in host memory (what the cache gives) vs from the clips'
  frames encoded in the same step; `<core>_cached_over_online` their ratio;
- `<core>_stream_p50_ms` / `<core>_stream_p95_ms`: one frame through `stillmotion.stream.Streamer`
  (preprocess, encoder, core, readout), batch 1;
- `<part>_peak_memory_gb`: the most memory CUDA held during each part (CUDA only).

    python bench/gpu.py [--device cuda] [--repeat 3] [--small]

`--small` shrinks every size (a 2-block ViT at 112 px, cores at size `tiny`, 2 clips) so the
script can be checked on a CPU in a minute; its figures say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from stillmotion.cache.extract import ExtractConfig, cache_meta, extract
from stillmotion.cache.store import TokenStore
from stillmotion.config import load_config
from stillmotion.data.manifest import Sample
from stillmotion.encoders.hf import HFEncoder
from stillmotion.model import LoadedModel, model_for
from stillmotion.stream import Streamer
from stillmotion.video.decode import read_frames

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests" / "data" / "real-clips" / "clip_h264_340x256_30fps.mp4"
CONFIG = REPO / "configs" / "gpu" / "ssv2_dinov3_gmmix_stream.yaml"
CLASSES = 174  # Something-Something v2


def vits(small: bool) -> dict[str, HFEncoder]:
    """name -> a frozen ViT of that model's size, random weights."""
    width, blocks, heads, size = (96, 2, 4, 112) if small else (768, 12, 12, 224)
    common = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=blocks, num_attention_heads=heads)
    return {
        "dinov2_b14": HFEncoder.from_config(transformers.Dinov2Config(image_size=size, patch_size=14, **common),
                                            size=size, name="dinov2-b-sized"),
        "dinov3_b16": HFEncoder.from_config(transformers.DINOv3ViTConfig(image_size=size, patch_size=16,
                                                                         num_register_tokens=4, **common),
                                            size=size, name="dinov3-b-sized"),
    }


class Peak:
    """The most CUDA memory held between `start` and `gb` (0 elsewhere)."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def start(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def gb(self) -> float:
        return torch.cuda.max_memory_allocated() / 1024**3 if self.cuda else 0.0


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeat: int) -> float:
    """Median seconds of `fn()` over `repeat` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_extraction(name: str, encoder: HFEncoder, frames: np.ndarray, args, peak: Peak) -> dict:
    pixels = encoder.preprocess(frames)
    peak.start()
    encoder_s = timed(lambda: encoder.encode(pixels, batch_size=args.batch_frames), encoder.device, args.repeat)
    out = {f"{name}_encoder_frames_per_s": len(pixels) / encoder_s}
    cfg = ExtractConfig(batch_frames=args.batch_frames, workers=1)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as folder:
            store = TokenStore(Path(folder) / "cache", cache_meta(encoder, cfg))
            report = extract([Sample("clip", str(CLIP))], encoder, store, cfg, progress=False)
            if report.failed:
                raise RuntimeError(f"extraction failed: {report.failed}")
            runs.append(report.frames_per_second)
    out[f"{name}_extract_frames_per_s"] = statistics.median(runs)
    out[f"{name}_extract_over_encoder"] = out[f"{name}_extract_frames_per_s"] / out[f"{name}_encoder_frames_per_s"]
    out[f"{name}_peak_memory_gb"] = peak.gb()
    return out


def core_config(core: str, small: bool):
    return load_config(CONFIG, ["data.train=unused", f"temporal.name={core}",
                                f"temporal.size={'tiny' if small else 'base'}", *(["head.heads=4"] if small else [])])


def bench_training(core: str, encoder: HFEncoder, args, peak: Peak) -> dict:
    device = encoder.device
    cfg = core_config(core, args.small)
    torch.manual_seed(0)
    model = model_for(cfg, "classes", CLASSES, encoder.dim, encoder.grid).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    b, t = args.clips, cfg.data.frames
    labels = torch.randint(0, CLASSES, (b,), device=device)
    tokens = torch.randn(b, t, encoder.grid[0] * encoder.grid[1], encoder.dim).pin_memory() if device.type == "cuda" \
        else torch.randn(b, t, encoder.grid[0] * encoder.grid[1], encoder.dim)
    pixels = torch.randn(b * t, 3, encoder.image_size, encoder.image_size)

    def step(x: torch.Tensor) -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = torch.nn.functional.cross_entropy(model(x.to(device, non_blocking=True)).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    out = {}
    peak.start()
    cached = timed(lambda: step(tokens), device, args.repeat)
    out[f"{core}_cached_peak_memory_gb"] = peak.gb()
    peak.start()
    # as the trainer's online path: frames encoded on the device, in inference mode (so cloned)
    online = timed(lambda: step(encoder.encode(pixels, batch_size=args.batch_frames, out=device)
                                .view(b, t, -1, encoder.dim).clone()), device, args.repeat)
    out[f"{core}_online_peak_memory_gb"] = peak.gb()
    out.update({f"{core}_cached_steps_per_s": 1 / cached, f"{core}_online_steps_per_s": 1 / online,
                f"{core}_cached_over_online": online / cached})
    return out


def bench_stream(core: str, encoder: HFEncoder, frames: np.ndarray, args, peak: Peak) -> dict:
    cfg = core_config(core, args.small)
    torch.manual_seed(0)
    model = model_for(cfg, "classes", CLASSES, encoder.dim, encoder.grid).to(encoder.device).eval()
    streamer = Streamer(LoadedModel(encoder, model, cfg, "classes", [], Path("random-weights")))
    streamer.reset()
    for frame in frames[:4]:  # warm-up
        streamer.step(frame)
    streamer.reset()
    peak.start()
    times = []
    for frame in frames:
        start = time.perf_counter()
        streamer.step(frame)  # synchronises on CUDA before it returns
        times.append(time.perf_counter() - start)
    p50, p95 = np.percentile(times, [50, 95]) * 1000
    return {f"{core}_stream_p50_ms": p50, f"{core}_stream_p95_ms": p95, f"{core}_stream_peak_memory_gb": peak.gb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per figure (median)")
    parser.add_argument("--clips", type=int, default=None, help="clips per training step (default 32; 2 with --small)")
    parser.add_argument("--batch-frames", type=int, default=None, help="encoder batch (default 256; 16 with --small)")
    parser.add_argument("--frames", type=int, default=None, help="frames streamed (default 200; 24 with --small)")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a check of the script on a CPU")
    args = parser.parse_args()
    args.clips = args.clips or (2 if args.small else 32)
    args.batch_frames = args.batch_frames or (16 if args.small else 256)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench/gpu.py: --device cuda but torch sees no CUDA GPU; give --device cpu (with --small)")
    torch.backends.cuda.matmul.allow_tf32 = True
    peak = Peak(device)
    frames = read_frames(CLIP)[: args.frames or (24 if args.small else 200)]
    print(f"# {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), torch "
          f"{torch.__version__}, {'bf16 autocast' if device.type == 'cuda' else 'float32'}"
          f"{', small sizes' if args.small else ''}; {len(frames)} frames of {CLIP.name}", flush=True)
    encoders = {name: e.to(device) for name, e in vits(args.small).items()}
    results = {}
    for name, encoder in encoders.items():
        results.update(bench_extraction(name, encoder, frames, args, peak))
    for core in ("gmmix", "rvm"):
        results.update(bench_training(core, encoders["dinov3_b16"], args, peak))
        results.update(bench_stream(core, encoders["dinov3_b16"], frames, args, peak))
    for key, value in results.items():
        if key.endswith("peak_memory_gb") and device.type != "cuda":
            continue
        print(f"{key}={value:.3f}" if value < 100 else f"{key}={value:.1f}")


if __name__ == "__main__":
    main()
