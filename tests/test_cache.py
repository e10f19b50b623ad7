import numpy as np
import pytest

from stillmotion.cache import CacheMismatchError, TokenStore
from stillmotion.cache.extract import cache_meta, extract
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


def test_half_written_files_are_never_listed(tmp_path):
    store = TokenStore(tmp_path, META)
    store.write("done", np.zeros((2, 3, 4), np.float32))
    (store.videos_dir / ".half.safetensors.123.part").write_bytes(b"partial")
    assert store.videos() == ["done"] and "half" not in store
    with pytest.raises(KeyError, match="'half' is not in the cache"):
        store.read("half")


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
    report = extract(samples, encoder64, store, batch_frames=8, progress=False)
    assert (report.written, report.skipped, report.frames) == (3, 0, 4 + 5 + 6)
    assert [f["path"] for f in store.failures()] == [str(broken)]
    assert report.failed[0][0] == str(broken) and report.failed[0][1].startswith("not a readable video container")
    assert store.videos() == ["v0", "v1", "v2"]

    from stillmotion.video import read_frames

    expected = encoder64.encode_frames(read_frames(samples[2].path)).numpy().astype(np.float16)
    # Batched across videos, the tokens match encoding that video alone (to float16 precision).
    assert np.allclose(store.read("v1").astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=2e-3)

    again = extract(samples, encoder64, TokenStore(tmp_path / "cache", cache_meta(encoder64)), progress=False)
    assert (again.written, again.skipped) == (0, 3)
    assert [f["path"] for f in store.failures()] == [str(broken)]  # tried again, listed once
