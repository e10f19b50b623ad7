"""bench/gpu.py is written for a GPU this machine lacks; its --small form checks, on the CPU, that
the script runs end to end and prints every figure it promises, so it is ready when a GPU is."""

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parents[1] / "bench" / "gpu.py"


def test_the_gpu_bench_runs_small_on_the_cpu_and_prints_each_figure():
    done = subprocess.run([sys.executable, str(BENCH), "--small", "--device", "cpu", "--repeat", "1", "--frames", "8"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    figures = dict(re.findall(r"^(\w+)=([0-9.]+)$", done.stdout, re.M))
    for vit in ("dinov2_b14", "dinov3_b16"):
        for what in ("encoder_frames_per_s", "extract_frames_per_s", "extract_over_encoder"):
            assert float(figures[f"{vit}_{what}"]) > 0
    for core in ("gmmix", "rvm"):
        cached, online = float(figures[f"{core}_cached_steps_per_s"]), float(figures[f"{core}_online_steps_per_s"])
        assert abs(float(figures[f"{core}_cached_over_online"]) - cached / online) < 0.01 * cached / online + 1e-3
        assert 0 < float(figures[f"{core}_stream_p50_ms"]) <= float(figures[f"{core}_stream_p95_ms"])
    assert not any(k.endswith("peak_memory_gb") for k in figures)  # CUDA only


def test_the_gpu_bench_refuses_cuda_without_a_gpu():
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = subprocess.run([sys.executable, str(BENCH), "--device", "cuda"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "no CUDA GPU" in done.stderr
