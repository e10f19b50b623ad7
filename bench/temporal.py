"""Temporal cores on the CPU: the Mamba scan, the cost of a streamed frame, and state size.

Prints key=value lines:
- `mamba_scan_speedup_T{16,64,256}`: the loop over time / the parallel (doubling) scan, same
  inputs (128 sequences, E = 224, S = 16: the M core on the default encoder's 8 x 8 tokens of
  width 112, two clips); `mamba_scan_speedup` is the T = 64 figure (goal >= 5).
- `<core>_step_over_encoder`: one streamed frame through the core (8 x 8 tokens of width 112,
  one stream) over one frame through the embedded encoder at 128 px; goal <= 0.10 for a small
  GMMix (`gmmix_small`: 1 layer; `gmmix_small_compiled`: the same through torch.compile).
- `state_bytes_16`, `state_bytes_1024`: each core's state after 16 and 1,024 frames (equal: a
  stream's memory does not grow).

    python bench/temporal.py [--repeat R]
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import torch

from stillmotion.encoders import load
from stillmotion.runtime import keep_freed_memory
from stillmotion.temporal import REGISTRY, build
from stillmotion.temporal.scan import selective_scan_loop, selective_scan_parallel
from stillmotion.temporal.summary import state_bytes

DIM, TOKENS = 112, 64


def side_by_side(first, second, repeat):
    """Run `first` and `second` alternately `repeat` times -> (best time of first, of second):
    on a shared machine, a slow spell then hits both."""
    times = ([], [])
    for _ in range(repeat):
        for fn, out in zip((first, second), times):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def scan_inputs(length, seqs=128, e=224, s=16):
    x = torch.randn(seqs, length, e)
    dt = torch.nn.functional.softplus(torch.randn(seqs, length, e) - 3)
    return (x, dt, -torch.exp(torch.randn(e, s)), torch.randn(seqs, length, s), torch.randn(seqs, length, s),
            torch.randn(e))


def compiled(core, x, state):
    """The core's step through torch.compile (fuses the element-wise ops; ~15 s to compile on
    this CPU), or None where no compiler toolchain is available."""
    try:
        step = torch.compile(core.step)
        step(x, state)
    except Exception as error:  # noqa: BLE001 - a missing C++ toolchain shows up as many types
        print(f"# torch.compile unavailable: {type(error).__name__}: {error}".splitlines()[0])
        return None
    return step


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    keep_freed_memory()
    torch.manual_seed(0)

    speedups = {}
    for length in (16, 64, 256):
        inputs = scan_inputs(length)
        loop_s, parallel_s = side_by_side(partial(selective_scan_loop, *inputs),
                                          partial(selective_scan_parallel, *inputs), args.repeat)
        speedups[length] = loop_s / parallel_s

    encoder = load("efficientnet-lite0")
    frame = torch.randn(1, 3, 128, 128)
    twenty_frames = lambda: [encoder(frame) for _ in range(20)]  # noqa: E731
    cores = {name: build(name, DIM).eval() for name in sorted(REGISTRY)}
    cores["gmmix_small"] = build("gmmix", DIM, layers=1).eval()
    ratios, sizes, encoder_times = {}, {}, []
    x = torch.randn(1, TOKENS, DIM)
    for name, core in cores.items():
        state = core.init_state(1, TOKENS)
        for _ in range(4):
            _, state = core.step(x, state)
        steps = {name: core.step}
        if name == "gmmix_small" and (step := compiled(core, x, state)) is not None:
            steps["gmmix_small_compiled"] = step
        for key, step in steps.items():
            encoder_s, step_s = side_by_side(twenty_frames,
                                             lambda step=step, state=state: [step(x, state) for _ in range(20)],
                                             args.repeat)
            ratios[key] = step_s / encoder_s
            encoder_times.append(encoder_s / 20)
        state = core.init_state(1, TOKENS)
        for t in range(1024):
            _, state = core.step(x, state)
            if t == 15:
                sizes[name] = [state_bytes(state)]
        sizes[name].append(state_bytes(state))

    print(f"encoder_ms_per_frame={min(encoder_times) * 1e3:.2f}")
    for length, value in speedups.items():
        print(f"mamba_scan_speedup_T{length}={value:.2f}")
    print(f"mamba_scan_speedup={speedups[64]:.2f}")
    for name, value in ratios.items():
        print(f"{name.replace('-', '_')}_step_over_encoder={value:.3f}")
    for name, (at16, at1024) in sizes.items():
        print(f"{name.replace('-', '_')}_state_bytes_16={at16} {name.replace('-', '_')}_state_bytes_1024={at1024}")
    print(f"state_bytes_16={sum(s[0] for s in sizes.values())}")
    print(f"state_bytes_1024={sum(s[1] for s in sizes.values())}")


if __name__ == "__main__":
    main()
