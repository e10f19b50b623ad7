"""`stillmotion data check`: probe every video of a manifest and report what is usable.

Counts per class (and split), missing files, undecodable files with the reason, and a histogram
of durations. Every file is probed (header, packet count, first frame), in parallel threads.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from stillmotion.data.manifest import Sample
from stillmotion.video.decode import probe
from stillmotion.video.errors import VideoDecodeError

#: duration histogram bin edges, seconds
DURATION_BINS = (0, 1, 2, 5, 10, 30, 60, 300, float("inf"))


@dataclass
class CheckReport:
    total: int = 0
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)  # split -> label -> count (good files)
    missing: list[str] = field(default_factory=list)
    undecodable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    durations: list[float] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[str, str]]:
        return [(p, "missing: no such file") for p in self.missing] + self.undecodable

    def histogram(self) -> list[tuple[str, int]]:
        rows = []
        for lo, hi in zip(DURATION_BINS[:-1], DURATION_BINS[1:]):
            count = sum(lo <= d < hi for d in self.durations)
            rows.append((f"{lo:g}-{hi:g} s" if hi != float("inf") else f">= {lo:g} s", count))
        return rows

    def to_dict(self) -> dict:
        return {"total": self.total, "good": len(self.durations), "per_class": self.per_class, "missing": self.missing,
                "undecodable": [{"path": p, "reason": r} for p, r in self.undecodable],
                "duration_histogram": dict(self.histogram())}

    def format(self) -> str:
        lines = [f"{self.total} samples: {len(self.durations)} readable, {len(self.missing)} missing, "
                 f"{len(self.undecodable)} undecodable"]
        for split, counts in sorted(self.per_class.items()):
            lines.append(f"\nclasses in {split} ({len(counts)}):")
            width = max(len(c) for c in counts) if counts else 0
            lines += [f"  {label:<{width}}  {n}" for label, n in sorted(counts.items())]
        if self.durations:
            lines.append("\ndurations:")
            peak = max(n for _, n in self.histogram()) or 1
            lines += [f"  {name:>12}  {n:>6}  {'#' * round(30 * n / peak)}".rstrip() for name, n in self.histogram()]
        for path in self.missing[:20]:
            lines.append(f"missing: {path}")
        for path, reason in self.undecodable[:20]:
            lines.append(f"undecodable: {path}: {reason}")
        if len(self.failures) > 40:
            lines.append(f"... {len(self.failures) - 40} more in the failures file")
        return "\n".join(lines)


def _probe(sample: Sample):
    if not Path(sample.path).exists() and not Path(sample.path).is_symlink():
        return sample, None, "missing"
    try:
        return sample, probe(sample.path), None
    except VideoDecodeError as exc:
        return sample, None, exc.problem


def check_samples(samples: list[Sample], workers: int = 4, progress: bool = True) -> CheckReport:
    report = CheckReport(total=len(samples))
    per_class: dict[str, Counter] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for sample, info, error in tqdm(pool.map(_probe, samples), total=len(samples), desc="check videos",
                                        unit="video", disable=not progress):
            if error == "missing":
                report.missing.append(sample.path)
            elif error is not None:
                report.undecodable.append((sample.path, error))
            else:
                report.durations.append(info.duration)
                per_class.setdefault(sample.split or "all", Counter())[sample.label or "(unlabelled)"] += 1
    report.per_class = {split: dict(c) for split, c in per_class.items()}
    return report
