import numpy as np
import pytest
import torch

from stillmotion.config import TaskConfig
from stillmotion.tasks import TASKS, Clip, Video
from stillmotion.tasks.masked import MaskedTokens, _last_visible, hidden_frames


def test_prp_clips_keep_jittered_strides_inside_the_video():
    task = TASKS["prp"](TaskConfig(rates=[1, 2, 4, 8], jitter=0.2), frames=8)
    video = Video("v", 100)
    clips = task.train_clips(video, 200, np.random.default_rng(0))
    assert {c.target for c in clips} == {0, 1, 2, 3}
    strides = {k: [] for k in range(4)}
    for c in clips:
        rate = task.rates[c.target]
        assert len(c.rows) == 8 and c.rows[0] >= 0 and c.rows[-1] < 100
        stride = (c.rows[-1] - c.rows[0]) / 7  # one jittered stride for the whole clip
        assert rate * 0.8 - 0.5 / 7 <= stride <= rate * 1.2 + 0.5 / 7
        assert np.ptp(np.diff(c.rows)) <= 1  # rounded positions of one stride, not a jitter per gap
        strides[c.target].append(stride)
    assert all(max(s) - min(s) > 0.2 * task.rates[k] for k, s in strides.items() if task.rates[k] > 1)
    evals = task.eval_clips(video)
    assert len(evals) == 4 * 2 and [len(set(np.diff(c.rows))) for c in evals] == [1] * 8
    assert [int(np.diff(c.rows)[0]) for c in evals] == [1, 1, 2, 2, 4, 4, 8, 8]
    assert not task.usable(Video("short", task.span(8) - 1)) and task.usable(Video("ok", task.span(8)))


def test_arrow_of_time_clips_run_both_ways_and_evaluation_is_balanced():
    task = TASKS["arrow_of_time"](TaskConfig(rates=[1, 2, 4], eval_clips=3), frames=5)
    video = Video("v", 12)  # stride 4 needs 17 frames: only strides 1 and 2 are used
    clips = task.train_clips(video, 100, np.random.default_rng(1))
    for c in clips:
        step = np.diff(c.rows)
        assert (step > 0).all() if c.target == 0 else (step < 0).all()
        assert set(np.abs(step)) <= {1, 2}
    assert 30 < sum(c.target for c in clips) < 70
    evals = task.eval_clips(video)
    assert len(evals) == 2 * 3 * 2 and sum(c.target for c in evals) == len(evals) // 2
    assert all(a.rows == b.rows[::-1] for a, b in zip(evals[::2], evals[1::2]))


def test_classification_clips_and_video_level_metrics():
    task = TASKS["classification"](TaskConfig(eval_clips=2), frames=4, classes=["a", "b"])
    assert task.eval_clips(Video("v", 10, "b")) == [Clip("v", (0, 1, 2, 3), 1), Clip("v", (6, 7, 8, 9), 1)]
    assert task.eval_clips(Video("short", 3, "a")) == [Clip("short", (0, 1, 2), 0)] * 2  # padded later
    assert not task.usable(Video("unlabelled", 10, None))
    clips = [Clip("v", (0,), 1), Clip("v", (1,), 1), Clip("w", (0,), 0)]
    # video v: one clip says a (strongly), one says b (weakly): the average says a -> wrong
    outputs = task.score(torch.tensor([[4.0, 0.0], [0.0, 1.0], [2.0, 0.0]]), {})
    m = task.metrics(outputs, clips)
    assert m["top1"] == pytest.approx(0.5) and m["clip_top1"] == pytest.approx(2 / 3) and m["videos"] == 2


def test_masked_tokens_hide_later_frames_and_score_against_copying():
    rng = np.random.default_rng(0)
    for _ in range(20):
        hidden = hidden_frames(8, 0.5, rng)
        assert len(hidden) == 4 and 0 not in hidden and max(hidden) < 8
    hide = torch.tensor([[False, True, True, False]])
    x = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 1)
    assert _last_visible(x, hide)[0, :, 0, 0].tolist() == [0.0, 0.0, 0.0, 3.0]
    task = MaskedTokens(TaskConfig(mask_ratio=0.5), frames=4)
    tokens = torch.randn(1, 4, 2, 6)
    perfect = task.target(tokens)
    [(se, cos, copy_se, count)] = task.score(perfect, {"tokens": tokens, "hide": hide})
    assert se == pytest.approx(0.0, abs=1e-10) and cos == pytest.approx(count) and count == 4 and copy_se > 0
    assert task.metrics([[6.0, 1.0, 3.0, 2.0], [2.0, 1.0, 1.0, 2.0]], []) == {
        "mse": 2.0, "cosine": 0.5, "copy_last_mse": 1.0}
