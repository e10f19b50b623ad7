import numpy as np
import pytest
import torch

from stillmotion.video import transforms as Tr


def _clip(h=6, w=10):
    return Tr.to_tensor(np.arange(2 * h * w * 3, dtype=np.int64).reshape(2, h, w, 3).astype(np.uint8))


def test_to_tensor_layout_and_grey_input():
    frames = np.random.default_rng(0).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    x = Tr.to_tensor(frames)
    assert x.shape == (2, 3, 4, 5) and x.dtype == torch.float32
    assert x[1, 2, 3, 4] == frames[1, 3, 4, 2]
    grey = Tr.to_tensor(frames[..., 0])
    assert torch.equal(grey[:, 0], grey[:, 2])


def test_resize_short_side_keeps_aspect():
    assert Tr.resize_short_side(torch.zeros(1, 3, 240, 320), 120).shape == (1, 3, 120, 160)
    assert Tr.resize_short_side(torch.zeros(1, 3, 300, 100), 50).shape == (1, 3, 150, 50)
    constant = torch.full((1, 3, 40, 60), 77.0)
    assert torch.allclose(Tr.resize_short_side(constant, 20), torch.full((1, 3, 20, 30), 77.0))


def test_crops_take_the_right_pixels():
    x = _clip()
    assert torch.equal(Tr.center_crop(x, 4), x[..., 1:5, 3:7])
    assert torch.equal(Tr.crop_at(x, 6, 0), x[..., :, 0:6])
    assert torch.equal(Tr.crop_at(x, 6, 2), x[..., :, 4:10])
    g = torch.Generator().manual_seed(0)
    crop = Tr.random_crop(x, 4, generator=g)
    found = [(top, left) for top in range(3) for left in range(7)
             if torch.equal(crop, x[..., top : top + 4, left : left + 4])]
    assert len(found) == 1
    with pytest.raises(ValueError, match="cannot crop 8x8 from 10x6"):
        Tr.center_crop(x, 8)


def test_flip_and_normalize_values():
    x = _clip()
    assert torch.equal(Tr.hflip(x)[..., 0], x[..., -1])
    out = Tr.normalize(torch.full((1, 3, 1, 1), 127.0), (127.0, 100.0, 27.0), (128.0, 1.0, 50.0))
    assert out.flatten().tolist() == [0.0, 27.0, 2.0]


def test_color_jitter_stays_in_range_and_zero_strength_is_identity():
    x = _clip()
    assert torch.allclose(Tr.color_jitter(x, 0, 0, 0), x)
    g = torch.Generator().manual_seed(0)
    y = Tr.color_jitter(x, 0.5, 0.5, 0.5, generator=g)
    assert y.min() >= 0 and y.max() <= 255 and not torch.allclose(x, y)


def test_uint8_resize_is_rounded_float_resize_within_one_level():
    frames = np.random.default_rng(1).integers(0, 256, (2, 90, 120, 3), dtype=np.uint8)
    small = Tr.resize_short_side(Tr.to_tensor(frames, torch.uint8), 32)
    ref = Tr.resize_short_side(Tr.to_tensor(frames), 32).round()
    assert small.dtype == torch.uint8 and small.shape == (2, 3, 32, 43)
    assert (small.float() - ref).abs().max() <= 1
    one_at_a_time = torch.cat([Tr.resize_short_side(Tr.to_tensor(f[None], torch.uint8), 32) for f in frames])
    assert torch.equal(one_at_a_time, small)  # per-frame (decode workers) == batched (preprocess)


def test_adjust_color_factors_of_one_change_nothing_and_brightness_scales():
    x = _clip()
    assert torch.allclose(Tr.adjust_color(x, 1.0, 1.0, 1.0), x.clamp(0, 255))
    assert torch.allclose(Tr.adjust_color(torch.full((1, 3, 2, 2), 100.0), 1.5, 1.0, 1.0),
                          torch.full((1, 3, 2, 2), 150.0))


def test_reference_resize_gives_paper_000s_pixels_on_a_real_clip():
    """tests/data/reference-pixels holds the reference's own `load_video_frames` output (decord,
    float bilinear, ImageNet normalisation) for 3 frames of a real clip at 64 px, made by
    tools/reference_pixels_check.py; PyAV decoding of the same frames and our reference resize
    give the same pixels, our default (antialiased) resize does not."""
    from pathlib import Path

    from safetensors.torch import load_file

    from stillmotion.video.decode import read_frames

    name, data_dir = "arm_wrestling_h264_340x256", Path(__file__).parent / "data"
    data = load_file(str(data_dir / "reference-pixels" / f"{name}.safetensors"))
    frames = Tr.to_tensor(read_frames(data_dir / "real-clips" / f"{name}.mp4", data["indices"].tolist()), torch.uint8)
    mean, std = (0.485 * 255, 0.456 * 255, 0.406 * 255), (0.229 * 255, 0.224 * 255, 0.225 * 255)
    ours = Tr.normalize(Tr.square_input(frames, 64, "reference"), mean, std)
    assert ours.shape == data["pixels"].shape and (ours - data["pixels"]).abs().max().item() < 1e-5
    antialiased = Tr.normalize(Tr.square_input(frames, 64).float(), mean, std)
    assert (antialiased - data["pixels"]).abs().max().item() > 0.1
    with pytest.raises(ValueError, match="resize must be one of antialias, reference"):
        Tr.square_input(frames, 64, "nearest")
