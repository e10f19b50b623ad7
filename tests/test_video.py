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
    with pytest.raises(VideoDecodeError, match=r"bar\.mp4: frame 10 was requested but the video decodes to only 10"):
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
        with pytest.raises(VideoDecodeError, match=f"only {count} frames"):
            read_frames(path, [count])
