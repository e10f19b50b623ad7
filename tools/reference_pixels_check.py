"""Compare our `resize=reference` preprocessing with paper 000's own on real clips, and write the
small fixture tests/data/reference-pixels from the reference's output.

The reference (tue-mps/towards-video-image-frozen, a checkout given by --reference) decodes with
decord and preprocesses in `scripts_inference/utils.py::load_video_frames`; this runs that
function unchanged (decord must be importable: `pip install --target DIR decord` and put DIR on
PYTHONPATH) and ours (PyAV decoding of the same frame indices, `square_input(resize="reference")`,
the encoder's normalisation) and prints, per clip, key=value lines:
max_abs_diff (ours, reference resize), max_abs_diff_antialias (ours, our default resize).

    PYTHONPATH=/tmp/decord_pkg python tools/reference_pixels_check.py --reference ../towards-video-image-frozen
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def ours(path: Path, indices: list[int], size: int, resize: str) -> torch.Tensor:
    from stillmotion.video.decode import read_frames
    from stillmotion.video.transforms import normalize, square_input, to_tensor

    mean, std = (tuple(255 * v for v in s) for s in IMAGENET)
    return normalize(square_input(to_tensor(read_frames(path, indices), torch.uint8), size, resize).float(), mean, std)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--clips", nargs="*", type=Path, default=sorted((REPO / "tests/data/real-clips").glob("*.mp4")))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fps", type=float, default=12.0)
    parser.add_argument("--fixture", type=Path, help="also write the first clip's reference output at 64 px here")
    args = parser.parse_args()
    sys.path.insert(0, str(args.reference))
    import decord
    from scripts_inference.utils import IMAGENET_MEAN, IMAGENET_STD, load_video_frames

    assert (IMAGENET_MEAN, IMAGENET_STD) == IMAGENET
    for clip in args.clips:
        reference = load_video_frames(str(clip), None, args.fps, args.size)  # (T, 3, S, S), every frame at fps
        reader = decord.VideoReader(str(clip))
        step = max(1, int(round((reader.get_avg_fps() or args.fps) / args.fps)))
        indices = list(range(0, len(reader), step))
        diff = (ours(clip, indices, args.size, "reference") - reference).abs().max().item()
        plain = (ours(clip, indices, args.size, "antialias") - reference).abs().max().item()
        print(f"clip={clip.name} frames={len(indices)} size={args.size} max_abs_diff={diff:.3g} "
              f"max_abs_diff_antialias={plain:.3g}", flush=True)
    if args.fixture:
        from safetensors.torch import save_file

        clip = args.clips[0]
        frames = load_video_frames(str(clip), 3, args.fps, 64)  # the 3 centre frames at fps, 64 px
        reader = decord.VideoReader(str(clip))
        step = max(1, int(round((reader.get_avg_fps() or args.fps) / args.fps)))
        start = (len(reader) - 1 - 2 * step) // 2
        args.fixture.mkdir(parents=True, exist_ok=True)
        save_file({"pixels": frames.contiguous(), "indices": torch.tensor([start, start + step, start + 2 * step])},
                  str(args.fixture / f"{clip.stem}.safetensors"))
        print(f"wrote {args.fixture / clip.stem}.safetensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
