import numpy as np
import pytest

from stillmotion.video import VideoDecodeError, probe, read_frames, write_video


def _moving_bar(t=10, size=64):
    frames = np.full((t, size, size, 3), 40, np.uint8)
    for i in range(t):
        frames[i, :, 4 * i : 4 * i + 12] = (220, 180, 30)
    return frames


def test_write_then_read_round_trip(tmp_path):
    frames = _moving_bar()
    path = write_video(tmp_path / "bar.mp4", frames, fps=10)
    info = probe(path)
    assert (info.num_frames, info.width, info.height, info.codec) == (10, 64, 64, "h264")
    assert info.fps == pytest.approx(10.0)
    back = read_frames(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames.astype(int)).mean() < 3.0
    assert not list(tmp_path.glob(".*part"))  # nothing temporary left behind


def test_read_subset_equals_full_decode_at_those_positions(tmp_path):
    path = write_video(tmp_path / "bar.mp4", _moving_bar(), fps=10)
    full = read_frames(path)
    idx = [7, 0, 3, 3, 9]
    assert np.array_equal(read_frames(path, idx), full[idx])


def test_index_past_the_end_names_the_file(tmp_path):
    path = write_video(tmp_path / "bar.mp4", _moving_bar(), fps=10)
    with pytest.raises(VideoDecodeError, match=r"bar\.mp4: frame 10 was requested but the video holds only 10"):
        read_frames(path, [2, 10])


@pytest.mark.parametrize("make,problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("this is not a video\n" * 20), "not a readable video"),
    (lambda p: p.mkdir(), "not a regular file"),
])
def test_unreadable_inputs_raise_a_named_error(tmp_path, make, problem):
    path = tmp_path / "broken.mp4"
    make(path)
    with pytest.raises(VideoDecodeError, match=problem) as info:
        read_frames(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_real_clips_decode_to_their_documented_frame_counts(real_clips):
    from conftest import REAL_CLIP_FRAMES

    for name, count in REAL_CLIP_FRAMES.items():
        path = real_clips / name
        last = read_frames(path, [count - 1])
        assert last.shape[0] == 1 and last.shape[-1] == 3
        with pytest.raises(VideoDecodeError, match=f"(holds|decodes to) only {count} frames"):
            read_frames(path, [count])


def _numbered(t=120, h=32, w=48):
    """Frames whose colour encodes their position, so a wrong frame cannot pass for a right one."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = (i * 37) % 256
        frames[i, ..., 1] = (i * 11) % 256
        frames[i, : h // 4, : w // 4] = 255
    return frames


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("odd")
    frames = _numbered()
    times = np.cumsum(np.random.default_rng(0).uniform(0.01, 0.2, len(frames)))
    return {
        "vfr": (write_video(d / "vfr.mp4", frames, fps=25, gop=10, times=times - times[0]), times - times[0]),
        "short_gop": (write_video(d / "gop.mp4", frames, fps=25, gop=8), None),
        "low_fps": (write_video(d / "low.mp4", frames[:24], fps=1, gop=4), None),
    }


@pytest.mark.parametrize("name", ["vfr", "short_gop", "low_fps"])
def test_seeking_returns_the_frames_of_a_sequential_decode(odd_videos, name, monkeypatch):
    import stillmotion.video.decode as decode

    path, _ = odd_videos[name]
    full = read_frames(path, seek=False)
    rng = np.random.default_rng(1)
    # Counting from the start is switched off: every read below must find its frames by seeking.
    monkeypatch.setattr(decode, "_decode_counting", lambda *a, **k: pytest.fail("fell back to counting"))
    for _ in range(15):
        idx = rng.choice(len(full), size=int(rng.integers(1, 9)), replace=True).tolist()
        assert np.array_equal(read_frames(path, idx), full[idx]), idx
    assert np.array_equal(read_frames(path, [len(full) - 1, 0]), full[[-1, 0]])


def test_vfr_frame_times_and_resampling(odd_videos):
    from stillmotion.video.index import frame_index
    from stillmotion.video.sampling import resample

    path, times = odd_videos["vfr"]
    index = frame_index(path)
    assert index.seekable and index.num_frames == 120
    assert np.allclose(index.times(fps=25), times, atol=1e-3)
    picks = resample(index.times(fps=25), 5)
    assert np.all(np.diff(picks) >= 0) and picks[-1] == 119
    assert abs(len(picks) - probe(path).duration * 5) <= 1


def test_avi_is_read_by_counting_and_matches_a_full_decode(real_clips):
    from stillmotion.video.index import frame_index

    path = real_clips / "clip_mpeg4_320x240.avi"  # MPEG-4 part 2 with B-frames: made-up timestamps
    assert not frame_index(path).seekable
    full = read_frames(path)
    assert len(full) == 164
    idx = [163, 0, 81, 82, 5]
    assert np.array_equal(read_frames(path, idx), full[idx])


@pytest.mark.parametrize("name", ["arm_wrestling_h264_340x256.mp4", "people_h264_340x256_6fps.mp4"])
def test_real_mp4_random_access_matches_a_full_decode(real_clips, name):
    path = real_clips / name
    full = read_frames(path, seek=False)
    rng = np.random.default_rng(2)
    for _ in range(5):
        idx = sorted(rng.choice(len(full), 6, replace=False).tolist())
        assert np.array_equal(read_frames(path, idx), full[idx])


@pytest.mark.parametrize("rotation,turns", [(90, 1), (-90, 3), (180, 2)])
def test_rotation_metadata_is_applied(tmp_path, rotation, turns):
    frames = _numbered(t=3)  # 32 x 48 with a white top-left corner
    path = write_video(tmp_path / "rot.mp4", frames, fps=5, rotation=rotation)
    info = probe(path)
    assert info.rotation == turns * 90
    assert (info.width, info.height) == ((32, 48) if turns % 2 else (48, 32))
    back = read_frames(path)
    assert back.shape[1:3] == (info.height, info.width)
    assert np.abs(back.astype(int) - np.rot90(frames, k=turns, axes=(1, 2)).astype(int)).mean() < 3


def test_probe_reads_count_fps_duration_and_codec(real_clips):
    info = probe(real_clips / "people_h264_340x256_6fps.mp4")
    assert (info.num_frames, info.fps, info.width, info.height, info.codec) == (57, 6.0, 340, 256, "h264")
    assert info.duration == pytest.approx(57 / 6)
    avi = probe(real_clips / "ntu_rgbd_sample_h264_1920x1080.avi")
    assert (avi.num_frames, avi.fps, avi.width, avi.height) == (103, 30.0, 1920, 1080)


def test_unknown_or_unusable_backend_is_named(tmp_path):
    from stillmotion.video.backends import torchcodec_available

    path = write_video(tmp_path / "bar.mp4", _moving_bar(), fps=10)
    with pytest.raises(ValueError, match="backend must be one of"):
        read_frames(path, [0], backend="opencv")
    if not torchcodec_available():
        with pytest.raises(ValueError, match="pip install torchcodec"):
            read_frames(path, [0], backend="torchcodec")
        assert np.array_equal(read_frames(path, [1], backend="auto"), read_frames(path, [1]))


def test_torchcodec_gives_the_same_frames_as_pyav(real_clips):
    from stillmotion.video.backends import torchcodec_available

    if not torchcodec_available():
        pytest.skip("torchcodec is not installed (optional backend)")
    for name in ("arm_wrestling_h264_340x256.mp4", "people_h264_340x256_6fps.mp4"):
        idx = [0, 17, 3, 40]
        assert np.array_equal(read_frames(real_clips / name, idx, backend="torchcodec"),
                              read_frames(real_clips / name, idx))

