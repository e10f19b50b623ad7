"""Frame samplers: pure index arithmetic over a video of `num_frames` frames, the one place
where clips' frames are chosen (the tasks, the synthetic data, streaming and the benches use
these).

- whole-video: `uniform` (segment centres), `spread` (first to last, mirror-symmetric),
  `segments` (one random frame per segment: TSN's training draw);
- windows: `random_window`, `consecutive` (rows from a start, cut at the end), `spaced_starts`
  (evaluation's evenly spaced starts);
- pretexts: `playback_rate` (AdViSe's PRP), `arrow_of_time`;
- `resample`: positions that play a video at another frame rate (by timestamp), `stride`: every
  round(native / fps)-th frame instead, as paper 000's inference scripts step (RESAMPLE_RULES).

Samplers return frame positions (int64 arrays, or tuples of rows) for `read_frames` and the
token cache. When a video is shorter than the span a sampler needs, `policy` decides: "pad"
(default) keeps the indices that exist and repeats the last frame for the rest; "reject" raises
ClipTooShortError.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from stillmotion.errors import UsageError

POLICIES = ("pad", "reject")
#: how a video is brought to a frame rate: "time" (`resample`: the frame on screen at each 1/fps
#: tick, the rate exactly fps) or "stride" (`stride`: every round(native/fps)-th frame from the
#: first, paper 000's `load_video_frames`; 30 fps to 12 keeps every 2nd frame, i.e. 15 a second)
RESAMPLE_RULES = ("time", "stride")


class ClipTooShortError(UsageError):
    """The video has fewer frames than the sampler's window needs (policy "reject")."""

    def __init__(self, num_frames: int, needed: int):
        self.num_frames, self.needed = num_frames, needed
        super().__init__(f"the clip has {num_frames} frames but the window spans {needed}; "
                         f"use policy='pad' to repeat the last frame, or a shorter window")


def _check(num_frames: int, n: int, stride: int = 1) -> None:
    if num_frames < 1:
        raise UsageError(f"num_frames must be >= 1, got {num_frames}")
    if n < 1 or stride < 1:
        raise UsageError(f"n and stride must be >= 1, got n={n}, stride={stride}")


def _fit(indices: np.ndarray, num_frames: int, policy: str) -> np.ndarray:
    """Indices past the end become the last frame ("pad") or raise ("reject")."""
    if policy not in POLICIES:
        raise UsageError(f"policy must be one of {POLICIES}, got {policy!r}")
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and indices.max() >= num_frames:
        if policy == "reject":
            raise ClipTooShortError(num_frames, int(indices.max()) + 1)
        indices = np.minimum(indices, num_frames - 1)
    return indices


def span(n: int, stride: int) -> int:
    """Frames covered by n samples at `stride`."""
    return (n - 1) * stride + 1


def uniform(num_frames: int, n: int, policy: str = "pad") -> np.ndarray:
    """n frames spread evenly over the whole video: the centre of each of n equal segments.
    A video shorter than n repeats frames evenly under "pad"."""
    _check(num_frames, n)
    if num_frames < n and policy == "reject":
        raise ClipTooShortError(num_frames, n)
    return _fit(np.floor((np.arange(n) + 0.5) * num_frames / n), num_frames, policy)


def spread(num_frames: int, n: int) -> np.ndarray:
    """n frames evenly spaced from the first to the last (rounded to the nearest), mirrored by
    construction: a video and its reversal get the same set of frames (`uniform`'s segment
    centres do not), but for the middle frame when n is odd and num_frames even."""
    _check(num_frames, n)
    rows = np.floor(np.linspace(0, num_frames - 1, n) + 0.5).astype(np.int64)
    half = n // 2
    rows[n - half:] = (num_frames - 1 - rows[:half])[::-1]
    return rows


def segments(num_frames: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n frames spread over the whole video, one drawn at random inside each of n equal
    segments (TSN's training sampling; `uniform` takes each segment's centre). A video shorter
    than n repeats frames."""
    _check(num_frames, n)
    edges = np.arange(n + 1) * num_frames / n
    low, high = np.floor(edges[:-1]), np.maximum(np.ceil(edges[1:]), np.floor(edges[:-1]) + 1)
    return np.minimum(rng.integers(low.astype(np.int64), high.astype(np.int64)), num_frames - 1)


def random_window(num_frames: int, n: int, stride: int, rng: np.random.Generator, policy: str = "pad") -> np.ndarray:
    """n frames at `stride` from a start drawn uniformly among those whose window fits."""
    _check(num_frames, n, stride)
    start = rng.integers(0, max(num_frames - span(n, stride), 0) + 1)
    return _fit(start + stride * np.arange(n), num_frames, policy)


def spaced_starts(num_frames: int, span: int, count: int) -> list[int]:
    """`count` start rows from the first to the last at which a clip of `span` rows fits,
    evenly spaced (one: the middle; repeats when the video allows fewer distinct starts)."""
    room = max(num_frames - span, 0)
    return [room * i // (count - 1) for i in range(count)] if count > 1 else [room // 2]


def consecutive(start: int, frames: int, num_frames: int) -> tuple[int, ...]:
    """`frames` rows from `start`, stopping at the video's end (a shorter clip is padded)."""
    return tuple(range(start, min(start + frames, num_frames)))


def playback_rate(num_frames: int, n: int, rng: np.random.Generator, rates: Sequence[int] = (1, 2, 4, 8),
                  jitter: float = 0.2, policy: str = "pad") -> tuple[np.ndarray, int]:
    """A clip for the playback-rate pretext: returns (indices, label), label = position of the
    rate in `rates`. The rate is drawn among those whose window fits the video (a clip padded
    with a frozen tail would give its rate away); the clip's stride is rate * (1 + u), u drawn
    from [-jitter, jitter]. If even the smallest rate does not fit, `policy` applies to it."""
    _check(num_frames, n)
    fitting = [i for i, r in enumerate(rates) if span(n, r) <= num_frames] or [int(np.argmin(rates))]
    label = int(rng.choice(fitting))
    stride = rates[label] * (1 + rng.uniform(-jitter, jitter))
    offsets = np.round(stride * np.arange(n)).astype(np.int64)
    start = rng.integers(0, max(num_frames - int(offsets[-1]) - 1, 0) + 1)
    return _fit(start + offsets, num_frames, policy), label


def arrow_of_time(num_frames: int, n: int, stride: int, rng: np.random.Generator,
                  policy: str = "pad") -> tuple[np.ndarray, int]:
    """A clip for the arrow-of-time pretext: a random window played forwards (label 0) or
    backwards (label 1), each with probability 1/2."""
    indices = random_window(num_frames, n, stride, rng, policy)
    backwards = int(rng.integers(2))
    return (indices[::-1].copy() if backwards else indices), backwards


def resample(times: np.ndarray, fps: float) -> np.ndarray:
    """Positions that resample a video whose frames show at `times` (seconds, increasing) to
    `fps`: at each tick k / fps, the frame on screen (the last one shown at or before it)."""
    times = np.asarray(times, dtype=np.float64)
    if fps <= 0:
        raise UsageError(f"fps must be > 0, got {fps}")
    end = times[-1] + (times[-1] - times[0]) / max(len(times) - 1, 1)  # the last frame's end
    ticks = times[0] + np.arange(int(np.floor((end - times[0]) * fps - 1e-9)) + 1) / fps
    return np.searchsorted(times, ticks + 1e-9, side="right").astype(np.int64) - 1


def stride(native_fps: float, fps: float) -> int:
    """The frame step paper 000's inference scripts take to bring `native_fps` to `fps`:
    round(native / fps) (Python's round: 2.5 -> 2), at least 1."""
    if fps <= 0:
        raise UsageError(f"fps must be > 0, got {fps}")
    return max(1, int(round(native_fps / fps)))


def resample_positions(times: np.ndarray, fps: float, rule: str, native_fps: float) -> np.ndarray:
    """Positions of the frames shown at `times` (seconds, increasing) brought to `fps` by `rule`
    (RESAMPLE_RULES): "time" is `resample`, "stride" every `stride(native_fps, fps)`-th from the first."""
    if rule == "time":
        return resample(times, fps)
    if rule != "stride":
        raise UsageError(f"resample rule must be one of {RESAMPLE_RULES}, got {rule!r}")
    return np.arange(0, len(times), stride(native_fps, fps), dtype=np.int64)
