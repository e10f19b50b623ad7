"""Video-text training steps on this machine: Harvest's patch dropping, and the frozen tower
beside it.

A training step (forward, symmetric contrastive loss against frozen text embeddings, backward,
AdamW) on the same clips (B clips of T frames at 224 px), side by side in one run:
- harvest: a CLIP ViT-B/16 vision tower built from its config (random weights: the compute of
  the released one) trained over the frames, keeping all patches (`task.keep=1.0`) or 10% of
  them (`task.keep=0.1`, Harvest's setting);
- frozen: the cached tokens of the same ViT-B/16 (14 x 14 x 768 per frame, read from memory)
  through a small GRU core and attentive pooling, the encoder not run at all.

Prints `harvest_keep1_step_s`, `harvest_keep01_step_s`, `frozen_step_s` (the best of the rounds
each), `harvest_keep_speedup` (keep 1.0 over keep 0.1; goal >= 5) and
`harvest_keep01_over_frozen`.

    python bench/video_text.py [--clips B] [--frames T] [--repeat R]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
import transformers

from stillmotion import runtime
from stillmotion.model.harvest import HarvestTower
from stillmotion.model.video import VideoModel

#: CLIP ViT-B/16's vision tower
VIT_B16 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224,
               patch_size=16, projection_dim=512)


def contrastive(video: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    logits = video @ text.T
    labels = torch.arange(len(video))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def stepper(model: torch.nn.Module, inputs: torch.Tensor, text: torch.Tensor):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> None:
        model.train()
        loss = contrastive(model(inputs), text)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def best_times(steps: dict, repeat: int) -> dict[str, float]:
    """Each step run once to warm up, then the steps in turn `repeat` times: the best time of each."""
    for step in steps.values():
        step()
    times = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=2, help="clips per step (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (default: %(default)s)")
    args = parser.parse_args()
    runtime.set_threads(None)
    torch.manual_seed(0)
    b, t = args.clips, args.frames
    pixels = torch.randn(b, t, 3, 224, 224)
    tokens = torch.randn(b, t, 196, 768)
    text = F.normalize(torch.randn(b, 512), dim=-1)
    vision = transformers.CLIPVisionModelWithProjection(transformers.CLIPVisionConfig(**VIT_B16))
    steps = {
        "harvest_keep1": stepper(HarvestTower(vision, keep=1.0), pixels, text),
        "harvest_keep01": stepper(HarvestTower(vision, keep=0.1), pixels, text),
        "frozen": stepper(VideoModel(768, "embedding", 512, core="gru", head="attentive", mode="clip",
                                     grid=(14, 14), max_frames=t), tokens, text),
    }
    print(f"# {torch.get_num_threads()} threads; {b} clips x {t} frames at 224 px per step; best of {args.repeat}")
    best = best_times(steps, args.repeat)
    for name, seconds in best.items():
        print(f"{name}_step_s={seconds:.3f}")
    print(f"harvest_keep01_over_frozen={best['harvest_keep01'] / best['frozen']:.2f}")
    print(f"harvest_keep_speedup={best['harvest_keep1'] / best['harvest_keep01']:.2f}")


if __name__ == "__main__":
    main()
