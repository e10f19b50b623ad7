"""Make tests/data/reference-stream: paper 000's reference code streaming a real clip from pixels
through a tiny `--arch rvm` classification model (the fixtures' RVM backbone and readout,
../shared/data/reference-models), as its SSv2 inference script does: `load_video_frames` at 6 fps
(decord; float, plain bilinear; RVM's 0..1 pixels) at the fixture's 48 px, then the wrapper's
per-frame logits; and the same at 12 fps, the rate of the pt/scannet/nuscenes scripts, where the
reference's frame step round(30/12) = 2 gives 15 frames a second (`logits_12fps`). Nothing of the
reference is copied; a checkout is given by --reference, decord must be importable and `mamba_ssm`
only needs to import (the classification path never runs it).

    PYTHONPATH=/tmp/shim:/tmp/decord_pkg python tools/reference_stream_fixture.py \\
        --reference ../towards-video-image-frozen --fixtures ../shared/data/reference-models
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "tests/data/real-clips/clip_h264_340x256_30fps.mp4"
FPS = 6  # the SSv2 script's TARGET_FPS
FPS_12 = 12  # the TARGET_FPS of the pt, scannet and nuscenes scripts


def fixture_digests(fixtures: Path) -> dict:
    """sha256 of the fixture files the model is made of (the test checks it uses the same set)."""
    import hashlib

    names = ("tasks/classification_rvm.weights.safetensors", "rvm/npz_conversion.npz")
    return {name: hashlib.sha256((fixtures / name).read_bytes()).hexdigest() for name in names}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--fixtures", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=REPO / "tests/data/reference-stream")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    import decord
    from models.rvm_modules.rvm_blocks import GatedTransformerCore
    from models.rvm_modules.rvm_wrapper import RVMStreamingClassificationWrapper, RVMViTEncoder
    from scripts_inference.utils import _load_rvm_backbone_into, load_video_frames, normalization_for

    meta = json.loads((args.fixtures / "tasks/classification_rvm.json").read_text())
    kwargs = dict(meta["constructor"]["kwargs"])
    encoder = RVMViTEncoder(**kwargs.pop("encoder")["kwargs"])
    core = GatedTransformerCore(**kwargs.pop("sequential_core")["kwargs"])
    backbone = args.out / "backbone.pth"
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(load_file(str(args.fixtures / "rvm/npz_conversion.weights.safetensors")), backbone)
    _load_rvm_backbone_into(encoder, core, str(backbone))  # as build_architecture("rvm", ...) does
    backbone.unlink()
    model = RVMStreamingClassificationWrapper(encoder=encoder, sequential_core=core, **kwargs)
    readout = load_file(str(args.fixtures / "tasks/classification_rvm.weights.safetensors"))
    missing, unknown = model.load_state_dict(readout, strict=False)
    assert not unknown and all(k.startswith(("encoder.", "sequential_core.")) for k in missing), (missing, unknown)
    model.eval()
    mean, std = normalization_for("rvm")
    side = meta["sizes"]["image"]
    reader = decord.VideoReader(str(CLIP))
    tensors = {}
    for fps, suffix in ((FPS, ""), (FPS_12, "_12fps")):
        frames = load_video_frames(str(CLIP), None, fps, side, mean=mean, std=std)  # every frame at fps
        with torch.no_grad():
            tensors[f"logits{suffix}"] = model(frames[None], reset_state=True)[0].contiguous()  # (T, classes)
        step = max(1, int(round(reader.get_avg_fps() / fps)))
        tensors[f"indices{suffix}"] = torch.arange(0, len(reader), step)
        print(f"{len(frames)} frames at {fps} fps (every {step}th frame of the clip)")
    save_file(tensors, str(args.out / "classification_rvm.safetensors"))
    (args.out / "classification_rvm.json").write_text(json.dumps(
        {"reference": "tue-mps/towards-video-image-frozen", "clip": CLIP.name, "fps": FPS, "size": side,
         "fps_12": FPS_12,
         "model": "fixtures tasks/classification_rvm on rvm/npz_conversion", "frames": len(tensors["logits"]),
         "fixtures_sha256": fixture_digests(args.fixtures)}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
