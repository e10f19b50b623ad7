import numpy as np
import pytest

from stillmotion.errors import UsageError
from stillmotion.video import sampling as S


def test_uniform_takes_segment_centres():
    assert S.uniform(100, 4).tolist() == [12, 37, 62, 87]
    assert S.uniform(8, 8).tolist() == list(range(8))
    assert S.uniform(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # short clip, "pad": even repeats
    with pytest.raises(S.ClipTooShortError, match="3 frames but the window spans 6"):
        S.uniform(3, 6, policy="reject")


def test_random_window_stays_inside_and_covers_every_start():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(500):
        idx = S.random_window(20, 4, 3, rng)
        assert np.array_equal(np.diff(idx), [3, 3, 3]) and idx[0] >= 0 and idx[-1] <= 19
        starts.add(int(idx[0]))
    assert starts == set(range(0, 20 - 10 + 1))


def test_short_clip_policy_pad_repeats_the_last_frame_and_reject_raises():
    rng = np.random.default_rng(0)
    assert S.random_window(5, 4, 2, rng).tolist() == [0, 2, 4, 4]
    with pytest.raises(S.ClipTooShortError) as info:
        S.random_window(5, 4, 2, rng, policy="reject")
    assert (info.value.num_frames, info.value.needed) == (5, 7)
    with pytest.raises(ValueError, match="policy must be one of"):
        S.random_window(5, 4, 2, rng, policy="loop")


def test_consecutive_rows_stop_at_the_end_and_spaced_starts_span_the_video():
    assert S.consecutive(3, 4, 10) == (3, 4, 5, 6)
    assert S.consecutive(8, 4, 10) == (8, 9)  # cut at the end; the clip reader pads
    assert S.spaced_starts(20, 5, 4) == [0, 5, 10, 15]  # from the first to the last start that fits
    assert S.spaced_starts(20, 5, 1) == [7]  # one clip: the middle
    assert S.spaced_starts(4, 6, 3) == [0, 0, 0]  # shorter than the clip: every start is 0


def test_the_arrow_task_draws_its_clips_with_the_sampler():
    from stillmotion.tasks.arrow import ArrowOfTime
    from stillmotion.tasks.base import Video
    from stillmotion.tasks.config import TaskConfig

    task = ArrowOfTime(TaskConfig(name="arrow_of_time", rates=[1, 3]), 4, None)
    video = Video("v", 12)
    clips = task.train_clips(video, 6, np.random.default_rng(5))
    rng, strides = np.random.default_rng(5), [1, 3]
    for clip in clips:
        stride = strides[int(rng.integers(2))]
        rows, label = S.arrow_of_time(12, 4, stride, rng, policy="reject")
        assert (clip.rows, clip.target) == (tuple(int(r) for r in rows), label)


def test_playback_rate_labels_the_stride_and_only_draws_fitting_rates():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        idx, label = S.playback_rate(40, 8, rng, rates=(1, 2, 4, 8), jitter=0.2)
        rate = (1, 2, 4, 8)[label]
        assert 0 <= idx[0] and idx[-1] < 40
        step = (idx[-1] - idx[0]) / 7
        assert rate * 0.8 - 0.15 <= step <= rate * 1.2 + 0.15
        seen.add(label)
    assert seen == {0, 1, 2}  # rate 8 needs 57 frames: never drawn for a 40-frame video
    idx, label = S.playback_rate(5, 8, rng)
    assert label == 0 and idx.max() == 4  # nothing fits: the smallest rate, padded


def test_arrow_of_time_reverses_half_the_clips():
    rng = np.random.default_rng(1)
    labels = []
    for _ in range(200):
        idx, label = S.arrow_of_time(30, 5, 2, rng)
        assert np.all(np.diff(idx) == (-2 if label else 2))
        labels.append(label)
    assert 70 < sum(labels) < 130


def test_resample_to_a_target_fps():
    times = np.arange(30) / 30.0  # 1 s at 30 fps
    assert S.resample(times, 10).tolist() == list(range(0, 30, 3))
    assert S.resample(times, 60).tolist() == [i // 2 for i in range(60)]
    vfr = np.array([0.0, 0.1, 0.5, 0.55, 1.0])  # shown until 1.25 s
    assert S.resample(vfr, 4).tolist() == [0, 1, 2, 3, 4]  # ticks 0, .25, .5, .75, 1.0


def test_stride_steps_as_paper_000s_inference_scripts():
    # round(native / fps), Python's round (2.5 -> 2), at least 1
    assert [S.stride(30, 12), S.stride(25, 12), S.stride(30, 6), S.stride(30, 5)] == [2, 2, 5, 6]
    assert S.stride(29.97, 12) == 2
    assert S.stride(30, 60) == 1 and S.stride(30, 8.6) == 3 and S.stride(30, 8.5) == 4
    times = np.arange(30) / 30.0
    assert S.resample_positions(times, 12, "stride", 30.0).tolist() == list(range(0, 30, 2))  # 15 a second
    assert S.resample_positions(times, 12, "time", 30.0).tolist() == S.resample(times, 12).tolist()
    assert S.resample(times, 12).tolist() == [0, 2, 5, 7, 10, 12, 15, 17, 20, 22, 25, 27]  # the other rule: 12 a second
    with pytest.raises(UsageError, match="resample rule must be one of"):
        S.resample_positions(times, 12, "nearest", 30.0)
    with pytest.raises(UsageError, match="fps must be > 0"):
        S.stride(30, 0)
