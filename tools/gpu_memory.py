"""Expected peak GPU memory of each config in configs/gpu/, computed on the CPU.

For each config: its model (on cached tokens: the encoder's grid and width; a harvest run: the
vision tower built from its config, random weights) takes one training step on ONE clip, with
every tensor autograd keeps for backward counted as it is saved; the scan runs as it would on
CUDA without mamba_ssm (the parallel scan, recomputing its chunks). Then, per GPU, for the
config's batch_size / GPUS clips:

    peak ~= saved activations per clip x clips x (bf16: 1/2) + parameters x 16 bytes
            (float32 weights, gradients and AdamW's two moments) + the batch's input tokens

It leaves out the CUDA context and allocator slack (add about 1-2 GB) and counts saved tensors
once even where autograd shares them, so it errs high. Prints key=value lines per config.

    python tools/gpu_memory.py [--gpus 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import transformers

from stillmotion.config import load_config
from stillmotion.model import model_for
from stillmotion.temporal import mamba as mamba_module, scan

REPO = Path(__file__).resolve().parents[1]
#: token grid and width of the configs' encoders at 224 px
ENCODERS = {"dinov3-b": ((14, 14), 768), "clip-b16": ((14, 14), 768)}
GB = 1024**3


def cuda_scan(x, dt, A, Bm, Cm, Dskip, h0=None):
    """What `selective_scan` runs on CUDA without mamba_ssm."""
    return scan.selective_scan_parallel(x, dt, A, Bm, Cm, Dskip, h0)


def outputs(path: Path, cfg) -> int:
    """Classes of a config's task: PRP's rates, else its dataset's classes."""
    if cfg.task.name == "prp":
        return len(cfg.task.rates)
    return 101 if path.stem.startswith("ucf101") else 174  # UCF101, else Something-Something v2


def saved_bytes(step) -> int:
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = step()
    loss.backward()
    return total


def estimate(path: Path, gpus: int) -> dict:
    cfg = load_config(path, ["data.train=x"])
    per_gpu = max(1, cfg.train.batch_size // gpus)
    t = cfg.data.frames
    if cfg.task.name == "video_text" and cfg.task.tower == "harvest":
        from stillmotion.model.harvest import HarvestTower

        vision = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
            patch_size=16, projection_dim=512))
        model = HarvestTower(vision, keep=cfg.task.keep).train()
        x = torch.randn(1, t, 3, 224, 224)
        step = lambda: model(x).square().sum()  # noqa: E731
        inputs = per_gpu * t * 3 * 224 * 224 * 4
    else:
        grid, dim = ENCODERS[cfg.data.encoder]
        kind = {"box_tracking": "boxes"}.get(cfg.task.name, "classes")
        model = model_for(cfg, kind, outputs(path, cfg) if kind == "classes" else 0, dim, grid).train()
        x = torch.randn(1, t, grid[0] * grid[1], dim)
        query = torch.tensor([[0.3, 0.3, 0.6, 0.6]]) if kind == "boxes" else None
        step = lambda: model(x, query=query).square().sum()  # noqa: E731
        inputs = per_gpu * t * grid[0] * grid[1] * dim * 4
    activations = saved_bytes(step)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    peak = activations * per_gpu / 2 + params * 16 + inputs
    return {"clips_per_gpu": per_gpu, "activations_per_clip_gb": activations / GB, "parameters_m": params / 1e6,
            "peak_gb": peak / GB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=8, help="GPUs the global batch is split over (default: 8)")
    args = parser.parse_args()
    mamba_module.selective_scan = cuda_scan  # count what CUDA would keep
    for path in sorted((REPO / "configs" / "gpu").glob("*.yaml")):
        figures = estimate(path, args.gpus)
        print(" ".join(f"{path.stem}_{k}={v:.2f}" if isinstance(v, float) else f"{path.stem}_{k}={v}"
                       for k, v in figures.items()), flush=True)


if __name__ == "__main__":
    main()
