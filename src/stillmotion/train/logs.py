"""What a run records: RUN_DIR/log.jsonl (one JSON object per logged step or evaluation),
TensorBoard events in RUN_DIR/tensorboard, and RUN_DIR/curves.png at the end. Only rank 0 writes.

A run resumed from step s keeps the records of steps up to s and drops the later ones, which it
makes again: from log.jsonl (rewritten by a rename; a line a kill cut short is dropped) and
from TensorBoard (its events from step s + 1 on are purged), so both read as one unbroken run."""

from __future__ import annotations

import json
import os
from pathlib import Path


class RunLog:
    def __init__(self, run_dir: Path, enabled: bool = True, resumed_at: int = 0):
        self.path = Path(run_dir) / "log.jsonl"
        self.enabled = enabled
        self.writer = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self._truncate_after(resumed_at)
            self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=resumed_at + 1)

    def _truncate_after(self, step: int) -> None:
        """Keep the complete records of steps up to `step` (all of them at 0: a fresh run has none)."""
        if not self.path.is_file():
            return
        kept = [line for line in self.path.read_text().splitlines() if (record := _parsed(line)) is not None
                and record["step"] <= step]
        tmp = self.path.with_name(f".{self.path.name}.part")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, step: int, kind: str, values: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"step": step, "kind": kind, **values}) + "\n")
        for key, value in values.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [record for line in self.path.read_text().splitlines() if (record := _parsed(line)) is not None]


def _parsed(line: str) -> dict | None:
    """A log line's record; None for an empty line or one a kill cut short."""
    try:
        record = json.loads(line) if line.strip() else None
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "step" in record else None


def plot_curves(runs: dict[str, list[dict]], path: Path, metric: str) -> None:
    """Training loss and the validation `metric` against step, side by side, one line per run
    (label -> its log records); the same metric on fixed clips of training videos dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    for label, records in runs.items():
        train = [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
        val = [(r["step"], r[metric]) for r in records if r["kind"] == "val" and metric in r]
        if train:
            ax_loss.plot(*zip(*train), label=label)
        if val:
            line, = ax_val.plot(*zip(*val), marker="o", label=f"{label} (validation)")
            fit = [(r["step"], r[metric]) for r in records if r["kind"] == "fit" and metric in r]
            if fit:
                ax_val.plot(*zip(*fit), marker=".", linestyle="--", color=line.get_color(),
                            label=f"{label} (training videos)")
    ax_loss.set(title="training loss", xlabel="step")
    ax_val.set(title=metric, xlabel="step")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
        if len(runs) > 1 or ax is ax_val:
            ax.legend()
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.part{path.suffix}")  # renamed into place: never half a picture
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
