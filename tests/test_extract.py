import numpy as np
import pytest
import torch

from stillmotion.cache import TokenStore
from stillmotion.cache.decoding import frame_positions
from stillmotion.cache.extract import ExtractConfig, cache_meta, extract
from stillmotion.cache.pool import pool_tokens
from stillmotion.cache.views import ViewMaker, ViewParams, augment, view_params
from stillmotion.data import Sample
from stillmotion.errors import UsageError
from stillmotion.video import read_frames, transforms as Tr, write_video


def test_spatial_pooling_averages_blocks_and_channel_pooling_averages_groups():
    grid = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    tokens = torch.stack([grid.flatten(), 10 * grid.flatten()], -1)[None, None]  # (1, 1, 16, 2)
    pooled = pool_tokens(tokens, (4, 4), space=2)
    assert pooled.shape == (1, 1, 4, 2)
    assert pooled[0, 0, :, 0].tolist() == [2.5, 4.5, 10.5, 12.5]  # means of the 2x2 blocks
    assert torch.equal(pooled[..., 1], 10 * pooled[..., 0])
    assert pool_tokens(tokens, (4, 4), space=1)[0, 0, 0].tolist() == [7.5, 75.0]
    wide = torch.arange(12, dtype=torch.float32).reshape(1, 1, 12)  # one token, D = 12
    assert pool_tokens(wide, (1, 1), channels=3)[0, 0].tolist() == [1.5, 5.5, 9.5]
    with pytest.raises(ValueError, match="--pool-space must be between 1 and 4"):
        pool_tokens(tokens, (4, 4), space=5)
    with pytest.raises(ValueError, match="--pool-channels must be between 1 and the token width 2"):
        pool_tokens(tokens, (4, 4), channels=3)


def test_view_parameters_depend_only_on_seed_video_and_view():
    a = view_params(0, "clip", 1)
    assert a == view_params(0, "clip", 1)
    assert len({view_params(0, "clip", v) for v in range(1, 6)}) == 5
    assert view_params(1, "clip", 1) != a and view_params(0, "other", 1) != a
    assert 1.0 <= a.zoom <= 1.3 and 0.6 <= a.brightness <= 1.4


def test_view_zero_is_the_encoders_own_input_and_augmented_views_follow_their_parameters(encoder64):
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    maker = ViewMaker(64, views=2, seed=0, video_id="v")
    crops = np.stack([maker(f) for f in frames])  # (T, V, S, S, 3)
    assert crops.shape == (3, 3, 64, 64, 3) and crops.dtype == np.uint8
    assert torch.equal(encoder64.normalize_crops(crops[:, 0]), encoder64.preprocess(frames))
    p = ViewParams(zoom=1.0, top=0.0, left=1.0, flip=True, brightness=1.0, contrast=1.0, saturation=1.0)
    x = Tr.to_tensor(frames, torch.uint8)
    expected = Tr.hflip(Tr.resize_short_side(x, 64)[..., :, -64:])  # right-hand crop, mirrored
    assert torch.equal(augment(x, 64, p), expected)
    assert not np.array_equal(crops[:, 1], crops[:, 2])


def _video(tmp_path, name, n, fps=10, size=64, seed=0):
    frames = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return str(write_video(tmp_path / f"{name}.mp4", frames, fps=fps))


def test_frame_positions_follow_fps_and_start_end(tmp_path):
    path = _video(tmp_path, "v", 20, fps=10)  # 2 s
    assert frame_positions(Sample("v", path), None) is None
    assert frame_positions(Sample("v", path), 5).tolist() == list(range(0, 20, 2))
    assert frame_positions(Sample("v", path), 20).tolist() == [i // 2 for i in range(40)]
    assert frame_positions(Sample("v", path, start=0.5, end=1.0), None).tolist() == [5, 6, 7, 8, 9]
    assert frame_positions(Sample("v", path, start=0.5, end=1.5), 5).tolist() == [5, 7, 9, 11, 13]
    # paper 000's stride: every round(10/4)=2nd frame (5 a second), from the first of the span
    assert frame_positions(Sample("v", path), 4, "stride").tolist() == list(range(0, 20, 2))
    assert frame_positions(Sample("v", path), 4).tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    assert frame_positions(Sample("v", path, start=0.5, end=1.5), 3, "stride").tolist() == [5, 8, 11, 14]
    from stillmotion.video import VideoDecodeError

    with pytest.raises(VideoDecodeError,
                       match=r"no frame lies between start=3.0 and end=4.0 s \(the video lasts 1.90 s\)"):
        frame_positions(Sample("v", path, start=3.0, end=4.0), None)


def test_extract_matches_encoding_each_video_alone_with_views_fps_pooling_and_int8(tmp_path, encoder64):
    samples = [Sample(f"v{i}", _video(tmp_path, f"v{i}", 6 + 3 * i, seed=i)) for i in range(3)]
    cfg = ExtractConfig(fps=5, views=2, dtype="float32", batch_frames=5, workers=0)
    store = TokenStore(tmp_path / "views", cache_meta(encoder64, cfg))
    report = extract(samples, encoder64, store, cfg, progress=False)
    assert store.num_views == 3 and store.videos() == ["v0", "v1", "v2"]
    assert report.frames == 3 * (3 + 5 + 6)  # every other frame, three views each
    for sample in samples:
        positions = store.frame_indices(sample.id)
        assert positions.tolist() == list(range(0, len(read_frames(sample.path)), 2))
        alone = encoder64.encode_frames(read_frames(sample.path, positions))
        assert torch.allclose(torch.from_numpy(store.read(sample.id)), alone, atol=1e-4)
        assert not np.allclose(store.read(sample.id, view=1), store.read(sample.id, view=2))

    pooled_cfg = ExtractConfig(pool_space=2, pool_channels=28, dtype="int8", workers=0)
    pooled = TokenStore(tmp_path / "pooled", cache_meta(encoder64, pooled_cfg))
    extract(samples, encoder64, pooled, pooled_cfg, progress=False)
    assert pooled.grid == (2, 2) and pooled.dim == 28
    tokens = pooled.read("v1")
    expected = torch.nn.functional.avg_pool2d(
        encoder64.encode_frames(read_frames(samples[1].path)).reshape(-1, 4, 4, 112).permute(0, 3, 1, 2), 2)
    expected = expected.permute(0, 2, 3, 1).reshape(-1, 4, 28, 4).mean(-1)  # (T, 4, 28)
    step = expected.abs().amax(-1, keepdim=True) / 127
    assert tokens.shape == (9, 4, 28)
    assert torch.all((torch.from_numpy(tokens) - expected).abs() <= step / 2 + 1e-4)


def test_a_cache_of_other_settings_is_refused_naming_them(tmp_path, encoder64):
    from stillmotion.cache import CacheMismatchError

    TokenStore(tmp_path, cache_meta(encoder64, ExtractConfig()))
    with pytest.raises(CacheMismatchError,
                       match=r"(?s)dtype: cache has 'float16', asked for 'int8'.*views: cache has 1, asked for 3"):
        TokenStore(tmp_path, cache_meta(encoder64, ExtractConfig(dtype="int8", views=2)))
    assert "resample" not in cache_meta(encoder64, ExtractConfig(fps=5))  # caches made by time keep their meta
    assert "resample" not in cache_meta(encoder64, ExtractConfig(rule="stride"))  # no fps: every frame either way
    TokenStore(tmp_path / "t", cache_meta(encoder64, ExtractConfig(fps=5)))
    with pytest.raises(CacheMismatchError, match="resample: cache has 'time', asked for 'stride'"):
        TokenStore(tmp_path / "t", cache_meta(encoder64, ExtractConfig(fps=5, rule="stride")))
    TokenStore(tmp_path / "s", cache_meta(encoder64, ExtractConfig(fps=5, rule="stride")))
    with pytest.raises(CacheMismatchError, match="resample: cache has 'stride', asked for 'time'"):
        TokenStore(tmp_path / "s", cache_meta(encoder64, ExtractConfig(fps=5)))
    with pytest.raises(UsageError, match=r"resample rule must be one of \('time', 'stride'\), got 'nearest'"):
        ExtractConfig(fps=5, rule="nearest")


def test_a_stride_cache_holds_every_round_native_over_fps_th_frame(tmp_path, encoder64, real_clips):
    clip = real_clips / "clip_h264_340x256_30fps.mp4"
    cfg = ExtractConfig(fps=12, rule="stride", dtype="float32", workers=0)
    store = TokenStore(tmp_path / "c", cache_meta(encoder64, cfg))
    extract([Sample("clip", str(clip))], encoder64, store, cfg, progress=False)
    positions = store.frame_indices("clip")
    assert positions.tolist() == list(range(0, len(read_frames(clip)), 2))  # 30 -> 12: every 2nd frame (15 a second)
    alone = encoder64.encode_frames(read_frames(clip, positions))
    assert torch.allclose(torch.from_numpy(store.read("clip")), alone, atol=1e-4)


def test_sample_ids_must_be_unique(tmp_path, encoder64):
    store = TokenStore(tmp_path, cache_meta(encoder64))
    with pytest.raises(ValueError, match=r"appear more than once: \['a'\]"):
        extract([Sample("a", "x.mp4"), Sample("a", "y.mp4")], encoder64, store, progress=False)


def test_each_video_is_encoded_in_batches_of_its_own_so_its_tokens_depend_on_it_alone(tmp_path, encoder64,
                                                                                     monkeypatch):
    samples = [Sample(f"v{i}", _video(tmp_path, f"v{i}", n, seed=i)) for i, n in enumerate((5, 3, 9))]
    sizes = []
    encode = encoder64.encode
    monkeypatch.setattr(encoder64, "encode",
                        lambda pixels, batch_size: sizes.append(len(pixels)) or encode(pixels, batch_size))
    cfg = ExtractConfig(dtype="float32", batch_frames=4, workers=0)
    store = TokenStore(tmp_path / "c", cache_meta(encoder64, cfg))
    extract(samples, encoder64, store, cfg, progress=False)
    assert sizes == [4, 1, 3, 4, 4, 1]  # 5, 3 and 9 frames: no batch mixes two videos
    for s in samples:  # bit for bit what the video's frames give encoded alone
        frames = encoder64.preprocess(read_frames(s.path))
        alone = torch.cat([encode(frames[i:i + 4], batch_size=4) for i in range(0, len(frames), 4)])
        assert torch.equal(torch.from_numpy(store.read(s.id)), alone)
    # the middle video again, in a cache where the other two are done: the same bits
    again = TokenStore(tmp_path / "again", cache_meta(encoder64, cfg))
    for s in (samples[0], samples[2]):
        again.write(s.id, store.read(s.id), store.frame_indices(s.id))
    assert extract(samples, encoder64, again, cfg, progress=False).written == 1
    assert np.array_equal(again.read("v1"), store.read("v1"))


def test_online_clips_are_cropped_by_the_run_s_resize_as_a_cache_s_views_are(tmp_path):
    from stillmotion.config import load_config
    from stillmotion.tasks.base import Clip
    from stillmotion.train.data import PixelClips

    sample = Sample("v0", _video(tmp_path, "v0", 5))
    frames = read_frames(sample.path)
    clip = Clip("v0", (0, 2, 4), None)
    for resize in ("antialias", "reference"):
        maker = ViewMaker(32, views=1, seed=0, video_id="v0", resize=resize)
        views = np.stack([maker(f) for f in frames[[0, 2, 4]]])  # (T, V, S, S, 3): view 0 plain, view 1 augmented
        plain = PixelClips({"v0": sample}, {"v0": np.arange(5)}, [clip], 32, augment=False, resize=resize)[0]
        assert torch.equal(plain["pixels"], torch.from_numpy(views[:, 0]))  # dtype included
        augmented = PixelClips({"v0": sample}, {"v0": np.arange(5)}, [clip], 32, key="k", resize=resize)[0]["pixels"]
        assert augmented.dtype == plain["pixels"].dtype and augmented.shape == plain["pixels"].shape
        assert torch.equal(augmented, augmented.round())  # ours: whole pixel values
    cfg = load_config(None, ["data.train=v.jsonl", "data.online=true", "data.resize=reference"])
    assert cfg.data.online and cfg.data.resize == "reference"  # no longer refused


def test_the_reference_resize_reaches_the_cache_and_the_encoders_own_input(tmp_path):
    from stillmotion.encoders import load

    encoder = load("efficientnet-lite0", size=64, resize="reference")
    frames = np.random.default_rng(0).integers(0, 256, (3, 48, 80, 3), dtype=np.uint8)
    crops = np.stack([ViewMaker(64, views=1, seed=0, video_id="v", resize="reference")(f) for f in frames])
    assert crops.dtype == np.float32  # not rounded to uint8
    x = Tr.to_tensor(frames, torch.uint8)
    assert torch.equal(encoder.normalize_crops(crops[:, 0]), encoder.preprocess(frames))
    assert torch.equal(encoder.preprocess(frames), encoder.normalize_crops(Tr.reference_resize_center_crop(x, 64)))
    assert "without antialias" in encoder.settings()["resize"]
    assert load("efficientnet-lite0", size=64).fingerprint != encoder.fingerprint  # caches never mix them
    sample = Sample("v0", _video(tmp_path, "v0", 5))
    store = TokenStore(tmp_path / "ref", cache_meta(encoder, ExtractConfig(dtype="float32", workers=0)))
    extract([sample], encoder, store, ExtractConfig(dtype="float32", workers=0), progress=False)
    alone = encoder.encode_frames(read_frames(sample.path))
    assert torch.allclose(torch.from_numpy(store.read("v0")), alone, atol=1e-5)
