"""Make the small `proj_to_readout` fixtures in tests/data/reference-proj by running paper 000's
reference code (tue-mps/towards-video-image-frozen, a checkout given by --reference; nothing of it
is copied here): its streaming box, point and pose wrappers with a readout wider than the tokens,
as its scripts build the small and base models (READOUT_D_MODEL = 1024 over a ViT-S/B), and its
depth and classification wrappers with attention readouts wider than the tokens (depth's
READOUT_D_MODEL = 1024, classification's READOUT_NUM_PARAMS = 768 over a ViT-S), on a tiny random
GatedTransformerCore and tokens from a stub encoder.

    python tools/reference_proj_fixtures.py --reference ../towards-video-image-frozen

Each fixture is NAME.safetensors: `weights.*` (the wrapper's state dict without the stub
encoder, as a released checkpoint's `state_dict` holds it after `model.`), `input.*`, `output.*`;
and NAME.json with the sizes. Rerunning gives the same bytes (seeded, CPU).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

D, WIDTH, N, T, B, HEADS, HIDDEN = 16, 24, 5, 3, 1, 2, 32


class StubEncoder(nn.Module):
    """Returns the fixture's tokens (B*T, N, D) whatever the frames."""

    def __init__(self, tokens: torch.Tensor):
        super().__init__()
        self.tokens = tokens

    def forward(self, frames):
        return self.tokens


def randomise(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.2 * torch.randn(tensor.shape, generator=g))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True, help="a checkout of the reference repository")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "tests/data/reference-proj")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    from models.rvm_modules.rvm_blocks import GatedTransformerCore
    from models.rvm_modules.rvm_wrapper import (
        RVMStreamingCameraPoseWrapper,
        RVMStreamingClassificationWrapper,
        RVMStreamingDepthWrapper,
        RVMStreamingPointTrackingWrapper,
        RVMStreamingTrackingWrapper,
    )

    torch.manual_seed(0)
    tokens = torch.randn(B, T, N, D)
    frames = torch.zeros(B, T, 3, 16, 16)  # only the shape is read
    core_kw = {"d_model": D, "num_layers": 1, "num_heads": HEADS, "mlp_ratio": 4, "dropout": 0.0, "num_patches": N}
    stub = StubEncoder(tokens.flatten(0, 1))
    builds = {
        "tracking": (lambda: RVMStreamingTrackingWrapper(stub, D, GatedTransformerCore(**core_kw), D,
                                                         readout_d_model=WIDTH, readout_num_heads=HEADS,
                                                         bbox_mlp_hidden_dim=HIDDEN),
                     {"init_bbox": torch.tensor([[0.4, 0.5, 0.2, 0.3]])}),
        "points": (lambda: RVMStreamingPointTrackingWrapper(stub, D, readout_d_model=WIDTH, readout_num_heads=HEADS,
                                                            mlp_hidden_dim=HIDDEN,
                                                            sequential_core=GatedTransformerCore(**core_kw)),
                   {"query_point": torch.tensor([[[0.3, 0.6], [0.7, 0.2]]]), "query_frame": torch.zeros(1, 2).long()}),
        "pose": (lambda: RVMStreamingCameraPoseWrapper(stub, D, GatedTransformerCore(**core_kw), D,
                                                       readout_d_model=WIDTH, pose_mlp_hidden_dim=HIDDEN), {}),
        "depth": (lambda: RVMStreamingDepthWrapper(stub, D, GatedTransformerCore(**core_kw), readout_d_model=WIDTH,
                                                   readout_num_heads=HEADS, input_size=16, patch_h=8, patch_w=8), {}),
        "classification": (lambda: RVMStreamingClassificationWrapper(stub, D, GatedTransformerCore(**core_kw),
                                                                     num_classes=5, readout_num_params=WIDTH,
                                                                     readout_num_heads=HEADS), {}),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for seed, (name, (build, inputs)) in enumerate(builds.items()):
        model = build()
        randomise(model, seed)
        model.eval()
        fed: list[torch.Tensor] = []  # the box each frame's query is built from (for teacher forcing)
        if name == "tracking":
            def record(module, args, fed=fed):
                fed.append(args[0].clone())

            model.bbox_query_encoder.register_forward_pre_hook(record)
        with torch.no_grad():
            out = model(frames, *inputs.values())
        outputs = out if isinstance(out, dict) else {"output": out}
        if fed:
            outputs["bbox_query_input"] = torch.stack(fed, 1)
        tensors = {f"weights.{k}": v.contiguous() for k, v in model.state_dict().items()
                   if not k.startswith("encoder.")}
        tensors.update({f"input.{k}": v.contiguous() for k, v in {"tokens": tokens, **inputs}.items()})
        tensors.update({f"output.{k}": v.contiguous() for k, v in outputs.items() if isinstance(v, torch.Tensor)})
        save_file(tensors, str(args.out / f"{name}.safetensors"))
        (args.out / f"{name}.json").write_text(json.dumps(
            {"reference": "tue-mps/towards-video-image-frozen", "class": type(model).__name__,
             "sizes": {"D": D, "readout_width": WIDTH, "N": N, "T": T, "B": B, "heads": HEADS, "hidden": HIDDEN,
                       "core_layers": 1}}, indent=2) + "\n")
        print(f"{name}: {sorted(outputs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
