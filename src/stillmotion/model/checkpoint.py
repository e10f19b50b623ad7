"""Checkpoints: RUN_DIR/checkpoints/step_00000100/ holds `model.safetensors` (the weights),
`training.pt` (optimizer, scheduler, step and the trainer's own running state) and `config.yaml`;
RUN_DIR/checkpoints/latest names the newest. RUN_DIR/checkpoints/best holds the weights and
config that scored best on validation so far, and `best.json` (step, metric, value).

A kill can land between any two writes and a resumed run still ends exactly as an uninterrupted
one (tools/resume_stress.py kills runs at random points to check it): a checkpoint is written to
a temporary folder and renamed into place, `latest` is replaced by a rename, and a folder that
replaces an older one of the same name (`best`) first moves the older one to `.old_NAME`, which
readers take while NAME is missing and the next save puts back before anything else."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stillmotion.config import Config, from_yaml, to_yaml
from stillmotion.errors import UsageError

WEIGHTS, TRAINING, CONFIG, BEST = "model.safetensors", "training.pt", "config.yaml", "best.json"


def _stage(root: Path, name: str, model: torch.nn.Module, cfg: Config) -> Path:
    """A fresh hidden folder RUN_DIR/checkpoints/.tmp_NAME holding the weights and the config."""
    tmp = root / f".tmp_{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(to_yaml(cfg))
    return tmp


def _aside(final: Path) -> Path:
    return final.with_name(f".old_{final.name}")


def _settled(final: Path) -> Path:
    """`final`, or while it is missing the complete older copy a kill inside `_publish` left aside."""
    old = _aside(final)
    return old if not final.exists() and old.exists() else final


def _publish(tmp: Path, final: Path) -> Path:
    """Rename a staged folder into place; an older `final` is moved aside first, then removed.
    A kill between the two renames leaves only the older copy, aside: it is put back first."""
    old = _aside(final)
    if not final.exists() and old.exists():
        os.replace(old, final)
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def tidy(run_dir: Path) -> None:
    """What a kill left half-done in a run's checkpoints: staging folders go, a folder left aside
    goes back in place (or goes, when its replacement made it). Call while nothing writes there."""
    root = Path(run_dir) / "checkpoints"
    for staged in root.glob(".tmp_*"):
        shutil.rmtree(staged, ignore_errors=True)
    for old in root.glob(".old_*"):
        final = root / old.name[len(".old_"):]
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, final)
    (root / ".latest.tmp").unlink(missing_ok=True)


def save(run_dir: Path, step: int, model: torch.nn.Module, optimizer, scheduler, cfg: Config,
         state: dict | None = None) -> Path:
    """A resumable checkpoint of `step`; `state` holds the trainer's other running values
    (tensors, numbers, strings, lists and dicts of them: `load_training` reads it without unpickling code)."""
    root = Path(run_dir) / "checkpoints"
    name = f"step_{step:08d}"
    tmp = _stage(root, name, model, cfg)
    torch.save({**(state or {}), "step": step, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, tmp / TRAINING)
    return _point_latest(_publish(tmp, root / name))


def save_weights(run_dir: Path, step: int, model: torch.nn.Module, cfg: Config) -> Path:
    """A checkpoint of weights and config alone (an imported model's): it evaluates and streams,
    and starts other runs through `init.core`, but does not resume training."""
    root = Path(run_dir) / "checkpoints"
    name = f"step_{step:08d}"
    return _point_latest(_publish(_stage(root, name, model, cfg), root / name))


def _point_latest(final: Path) -> Path:
    pointer = final.parent / ".latest.tmp"
    pointer.write_text(final.name)
    os.replace(pointer, final.parent / "latest")
    return final


def save_best(run_dir: Path, step: int, model: torch.nn.Module, cfg: Config, metric: str, value: float) -> Path:
    """Replace RUN_DIR/checkpoints/best with these weights (no optimizer state: it is not resumed)."""
    root = Path(run_dir) / "checkpoints"
    tmp = _stage(root, "best", model, cfg)
    (tmp / BEST).write_text(json.dumps({"step": step, "metric": metric, "value": value}))
    return _publish(tmp, root / "best")


def best(run_dir: Path) -> dict | None:
    """{"step", "metric", "value"} of the run's best checkpoint, or None before there is one."""
    path = _settled(Path(run_dir) / "checkpoints" / "best") / BEST
    return json.loads(path.read_text()) if path.is_file() else None


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = _settled(pointer.parent / pointer.read_text().strip())
    return path if (path / WEIGHTS).is_file() else None


def resolve(path: str | Path, step: int | str | None = None) -> Path:
    """A run folder or a checkpoint folder -> the checkpoint folder; errors say what was found.
    `step` picks one of a run's checkpoints: a step number, "best", or None for the latest."""
    path = Path(path)
    if step is not None:
        return _pick(path, step)
    if (path / WEIGHTS).is_file():
        return path
    found = latest(path)
    if found is None:
        raise FileNotFoundError(f"{path}: neither a checkpoint (no {WEIGHTS}) nor a run folder with "
                                "checkpoints/latest; give the --out folder of a `stillmotion train` run")
    return found


def steps(run_dir: str | Path) -> list[int]:
    """The steps a run holds complete checkpoints of, in order."""
    root = Path(run_dir) / "checkpoints"
    found = [p for p in root.glob("step_*") if (p / WEIGHTS).is_file()] if root.is_dir() else []
    return sorted(int(p.name[len("step_"):]) for p in found)


def _pick(run_dir: Path, step: int | str) -> Path:
    name = "best" if str(step) == "best" else f"step_{int(step):08d}"
    folder = _settled(run_dir / "checkpoints" / name)
    if not (folder / WEIGHTS).is_file():
        held = ", ".join(str(s) for s in steps(run_dir)) or "none"
        raise FileNotFoundError(f"{run_dir}: no checkpoint {name} (steps held: {held}"
                                f"{', best' if best(run_dir) else ''}); give the run folder and one of those")
    return folder


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    file = resolve(path) / WEIGHTS
    try:
        return load_file(str(file))
    except SafetensorError as exc:
        raise UsageError(f"{file}: damaged weights ({exc}); give another checkpoint of the run (--step) or "
                         "train it again") from None


def load_config(path: str | Path) -> Config:
    file = resolve(path) / CONFIG
    if not file.is_file():
        raise FileNotFoundError(f"{file.parent}: a checkpoint without its {CONFIG}; give a whole checkpoint folder")
    return from_yaml(file.read_text(), str(file))


def load_training(checkpoint: Path) -> dict:
    """The optimizer, scheduler, step and random generators' state saved beside the weights."""
    path = checkpoint / TRAINING
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: weights without a training state (an imported model); it cannot be "
                                "resumed: start a new run from it with init.core, or choose another --out")
    return torch.load(path, weights_only=True)
