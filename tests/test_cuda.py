"""The GPU path, on a GPU (skipped without one; `make gpu-test` runs these alone): bf16
extraction against float32, the scans against the loop, a training step of each GPU config's
shape on tiny data with a ViT built from a config, and a stream."""

import numpy as np
import pytest
import torch
import transformers

pytestmark = pytest.mark.cuda


def _vit(size=64):
    from stillmotion.encoders.hf import HFEncoder

    torch.manual_seed(0)
    cfg = transformers.Dinov2Config(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                    image_size=size, patch_size=16)
    return HFEncoder.from_config(cfg, size=size)


def test_bf16_extraction_tokens_are_float32_tokens_within_rounding():
    encoder = _vit()
    frames = np.random.default_rng(0).integers(0, 255, (4, 80, 96, 3), dtype=np.uint8)
    cpu = encoder.encode_frames(frames)
    gpu = encoder.to("cuda").encode_frames(frames)  # bf16 autocast on CUDA
    err = (gpu - cpu).norm(dim=-1) / cpu.norm(dim=-1)
    assert err.max() < 0.05, err.max()  # bf16 keeps 8 bits of mantissa: a few per mille, per token


def test_the_scans_on_cuda_equal_the_loop():
    from stillmotion.temporal.scan import selective_scan, selective_scan_loop, selective_scan_parallel

    g = torch.Generator().manual_seed(0)
    x, dt = torch.randn(2, 40, 8, generator=g), torch.nn.functional.softplus(torch.randn(2, 40, 8, generator=g))
    a, bm, cm, d = (-torch.rand(8, 4, generator=g) - 0.1, torch.randn(2, 40, 4, generator=g),
                    torch.randn(2, 40, 4, generator=g), torch.randn(8, generator=g))
    want, h = selective_scan_loop(x, dt, a, bm, cm, d)
    args = [t.cuda() for t in (x, dt, a, bm, cm, d)]
    for y, hl in (selective_scan_parallel(*args, chunk=16), selective_scan(*args)):  # mamba_ssm when installed
        assert torch.allclose(y.float().cpu(), want, atol=1e-3) and torch.allclose(hl.float().cpu(), h, atol=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):  # bf16 x beside float32 dt, as in training
        y, _ = selective_scan(args[0].bfloat16(), *args[1:])
    assert torch.allclose(y.float().cpu(), want, atol=5e-2)


@pytest.mark.parametrize("config", ["ssv2_dinov3_gmmix_stream", "waymo_dinov3_rvm_boxes", "ucf101_clip_tmm_prp"])
def test_one_training_step_of_each_gpu_config_shape(config, tmp_path):
    from pathlib import Path

    from stillmotion.config import load_config
    from stillmotion.model import model_for

    cfg = load_config(Path(__file__).parents[1] / "configs" / "gpu" / f"{config}.yaml", ["data.train=x"])
    kind = {"box_tracking": "boxes"}.get(cfg.task.name, "classes")
    model = model_for(cfg, kind, 4 if kind == "classes" else 0, 96, (4, 4)).cuda()  # 96: divisible by 12 heads
    x = torch.randn(2, cfg.data.frames, 16, 96, device="cuda")
    query = torch.tensor([[0.2, 0.2, 0.6, 0.6]] * 2, device="cuda") if kind == "boxes" else None
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = model(x, query=query) if query is not None else model(x)
    out.float().square().mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())


def test_a_stream_on_one_gpu_equals_the_cpu_stream(tmp_path):
    from test_streaming import make_run

    from stillmotion.model import load_model
    from stillmotion.stream import Streamer

    run = make_run(tmp_path, "classes")
    frames = np.random.default_rng(1).integers(0, 255, (5, 48, 64, 3), dtype=np.uint8)
    answers = {}
    for device in ("cpu", "cuda"):
        streamer = Streamer(load_model(run, device=device))
        answers[device] = torch.stack([streamer.step(f).value for f in frames])
    assert torch.allclose(answers["cuda"], answers["cpu"], atol=2e-2)  # bf16 encoder on the GPU
