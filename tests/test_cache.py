import numpy as np
import pytest

from stillmotion.cache import CacheMismatchError, TokenStore
from stillmotion.cache.extract import ExtractConfig, cache_meta, extract
from stillmotion.data import Sample
from stillmotion.video import write_video

META = {"fingerprint": "enc:abc", "image_size": 64}


def test_float32_store_returns_exactly_what_was_written(tmp_path):
    store = TokenStore(tmp_path, {**META, "dtype": "float32"})
    tokens = np.random.default_rng(0).normal(size=(5, 16, 8)).astype(np.float32)
    store.write("clip/a b", tokens, frame_indices=[0, 2, 4, 6, 8])
    assert store.videos() == ["clip/a b"]
    assert np.array_equal(store.read("clip/a b"), tokens)
    assert np.array_equal(store.read("clip/a b", frames=[4, 1]), tokens[[4, 1]])
    assert np.array_equal(store.read("clip/a b", frames=slice(1, 3)), tokens[1:3])
    assert store.frame_indices("clip/a b").tolist() == [0, 2, 4, 6, 8]


def test_float16_store_is_the_exact_float16_cast(tmp_path):
    store = TokenStore(tmp_path, META)
    tokens = np.random.default_rng(1).normal(size=(3, 4, 8)).astype(np.float32)
    store.write("v", tokens)
    back = store.read("v")
    assert back.dtype == np.float16 and np.array_equal(back, tokens.astype(np.float16))


def test_reopening_with_other_settings_is_refused_naming_what_differs(tmp_path):
    TokenStore(tmp_path, META)
    TokenStore(tmp_path, META)  # same settings: fine
    with pytest.raises(CacheMismatchError, match=r"fingerprint: cache has 'enc:abc', asked for 'enc:xyz'"):
        TokenStore(tmp_path, {**META, "fingerprint": "enc:xyz"})
    with pytest.raises(FileNotFoundError, match="no token cache"):
        TokenStore(tmp_path / "elsewhere")


def test_half_written_files_are_never_listed_and_are_cleaned_up(tmp_path):
    store = TokenStore(tmp_path, META)
    store.write("done", np.zeros((2, 3, 4), np.float32))
    (store.videos_dir / ".half.safetensors.123.part").write_bytes(b"partial")
    assert store.videos() == ["done"] and "half" not in store
    with pytest.raises(KeyError, match="'half' is not in the cache"):
        store.read("half")
    assert store.remove_partial() == 1 and [p.name for p in store.videos_dir.iterdir()] == ["done.safetensors"]


def test_views_are_stored_together_and_read_one_at_a_time(tmp_path):
    store = TokenStore(tmp_path, {**META, "dtype": "float32", "views": 3})
    tokens = np.random.default_rng(2).normal(size=(3, 6, 4, 5)).astype(np.float32)  # (V, T, N, D)
    store.write("v", tokens, frame_indices=range(0, 12, 2))
    for view in range(3):
        assert np.array_equal(store.read("v", view=view), tokens[view])
    assert np.array_equal(store.read("v", frames=[5, 0, 0], view=2), tokens[2][[5, 0, 0]])
    assert np.array_equal(store.read("v", frames=[0, 5], view=1), tokens[1][[0, 5]])  # sparse rows
    assert np.array_equal(store.read("v", frames=slice(2, 4), view=1), tokens[1][2:4])
    assert store.num_frames("v") == 6
    with pytest.raises(IndexError, match=r"view 3 asked for, the cache holds views 0..2"):
        store.read("v", view=3)
    with pytest.raises(IndexError, match="out of range for 6 stored frames"):
        store.read("v", frames=[6])
    with pytest.raises(ValueError, match="1 views given, the cache holds 3 per video"):
        store.write("w", tokens[0])


def test_int8_store_keeps_each_value_within_half_a_step_of_its_token(tmp_path):
    store = TokenStore(tmp_path, {**META, "dtype": "int8"})
    rng = np.random.default_rng(3)
    tokens = (rng.normal(size=(4, 9, 16)) * rng.uniform(0.01, 50, size=(4, 9, 1))).astype(np.float32)
    tokens[1, 2] = 0.0  # an all-zero token stays exactly zero
    store.write("v", tokens)
    back = store.read("v")
    step = np.abs(tokens).max(axis=-1, keepdims=True) / 127
    assert back.dtype == np.float32 and back.shape == tokens.shape
    assert np.all(np.abs(back - tokens) <= step / 2 * (1 + 1e-5) + 1e-12)
    assert np.array_equal(back[1, 2], np.zeros(16, np.float32))
    raw = np.abs(tokens).argmax(axis=-1)  # the largest value of each token is exact up to rounding
    picked = np.take_along_axis(back, raw[..., None], -1)[..., 0]
    assert np.allclose(np.abs(picked), np.abs(tokens).max(axis=-1), rtol=1e-6)
    assert np.array_equal(store.read("v", frames=[3, 1]), back[[3, 1]])


def test_failures_are_one_record_per_video_and_clear_on_success(tmp_path):
    store = TokenStore(tmp_path, META)
    store.record_failure("a/b", "/data/a b.mp4", "not a video")
    store.record_failure("a/b", "/data/a b.mp4", "still not a video")
    store.record_failure("c", "/data/c.mp4", "empty")
    assert store.failures() == [{"id": "a/b", "path": "/data/a b.mp4", "reason": "still not a video"},
                                {"id": "c", "path": "/data/c.mp4", "reason": "empty"}]
    store.write("c", np.zeros((1, 2, 3), np.float32))
    assert [f["id"] for f in store.failures()] == ["a/b"]


def test_extract_writes_every_frame_skips_finished_and_records_failures(tmp_path, encoder64):
    rng = np.random.default_rng(0)
    samples = []
    for i in range(3):
        path = write_video(tmp_path / f"v{i}.mp4", rng.integers(0, 256, (4 + i, 64, 64, 3), dtype=np.uint8), fps=5)
        samples.append(Sample(id=f"v{i}", path=str(path)))
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    samples.insert(1, Sample(id="broken", path=str(broken)))

    store = TokenStore(tmp_path / "cache", cache_meta(encoder64))
    report = extract(samples, encoder64, store, ExtractConfig(batch_frames=8, workers=0), progress=False)
    assert (report.written, report.skipped, report.frames) == (3, 0, 4 + 5 + 6)
    assert [(f["id"], f["path"]) for f in store.failures()] == [("broken", str(broken))]
    assert report.failed[0][0] == str(broken) and report.failed[0][1].startswith("not a readable video container")
    assert store.videos() == ["v0", "v1", "v2"]

    from stillmotion.video import read_frames

    expected = encoder64.encode_frames(read_frames(samples[2].path)).numpy().astype(np.float16)
    # Each video is batched alone: its tokens are its frames encoded (stored to float16 precision).
    assert np.allclose(store.read("v1").astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=2e-3)

    again = extract(samples, encoder64, TokenStore(tmp_path / "cache", cache_meta(encoder64)),
                    ExtractConfig(workers=0), progress=False)
    assert (again.written, again.skipped) == (0, 3)
    assert [f["path"] for f in store.failures()] == [str(broken)]  # tried again, listed once

    write_video(broken, rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8), fps=5)  # mended
    extract(samples, encoder64, store, ExtractConfig(workers=0), progress=False)
    assert "broken" in store and store.failures() == []


def test_token_clips_read_view_zero_or_draw_a_view_per_key_when_augmenting(tmp_path):
    import torch

    from stillmotion.tasks.base import Clip
    from stillmotion.train.data import TokenClips

    store = TokenStore(tmp_path, {**META, "dtype": "float32", "views": 3, "view_seed": 0})
    for k, vid in enumerate(("a", "b")):
        store.write(vid, np.stack([np.full((2, 4, 8), 10 * k + v, np.float32) for v in range(3)]))
    clips = [Clip("a", (0, 1), 0), Clip("b", (1,), 1)]
    item = TokenClips(store, clips)[1]
    assert item["clip"].target == 1 and torch.equal(item["tokens"], torch.full((1, 4, 8), 10.0))
    seen = {int(TokenClips(store, clips, key=f"0/{epoch}", augment=True)[0]["tokens"][0, 0, 0]) for epoch in range(30)}
    assert seen == {0, 1, 2}
    again = [TokenClips(store, clips, key="0/7", augment=True)[0]["tokens"] for _ in range(2)]
    assert torch.equal(*again)


def test_a_cache_records_the_precision_its_tokens_were_computed_in(tmp_path, encoder64, monkeypatch):
    import json as _json

    import torch as _torch

    from stillmotion.cache.extract import ExtractConfig, cache_meta
    from stillmotion.cache.store import CacheMismatchError, TokenStore

    cpu = cache_meta(encoder64, ExtractConfig())
    assert cpu["compute"] == "float32"
    TokenStore(tmp_path / "c", cpu)
    # a cache written before the key existed holds float32 tokens: it still opens on the CPU
    meta_file = tmp_path / "c" / "meta.json"
    old = _json.loads(meta_file.read_text())
    old.pop("compute")
    meta_file.write_text(_json.dumps(old))
    TokenStore(tmp_path / "c", cpu)
    # the same encoder on a GPU computes in bf16 autocast: that cache is refused, saying why
    monkeypatch.setattr(type(encoder64), "device", property(lambda self: _torch.device("cuda", 0)))
    gpu = cache_meta(encoder64, ExtractConfig())
    assert gpu["compute"] == "bfloat16" and gpu["fingerprint"] == cpu["fingerprint"]
    with pytest.raises(CacheMismatchError, match="compute: cache has 'float32', asked for 'bfloat16'"):
        TokenStore(tmp_path / "c", gpu)
