"""Run configuration: a YAML file checked against a schema, then `key=value` overrides.

The schema is the dataclasses below, read through OmegaConf: a key the schema does not have or a
value of the wrong type is a `ConfigError` that names the key (`optim.lr`) and the file.

    cfg = load_config("configs/cpu/prp.yaml", ["data.train=videos/", "train.steps=200"])
    cfg = load_config("prp", ["data.train=videos/"])   # a shipped config, by name
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from stillmotion.errors import UsageError
from stillmotion.tasks.config import TaskConfig


class ConfigError(UsageError):
    """A config file or override the schema refuses; the message names the key."""


@dataclass
class DataConfig:
    train: str = MISSING  # a folder of videos or a manifest (any format `stillmotion data check` reads)
    val: Optional[str] = None  # the same; None: the train videos (self-supervised pretexts) or split "val"
    format: str = "auto"
    root: Optional[str] = None  # video folder of a manifest (default: the manifest's folder)
    splits: Optional[str] = None  # UCF101 / HMDB51 split files' folder
    fold: int = 1  # which official split (UCF101 / HMDB51: 1-3)
    labels: Optional[str] = None  # SSv2 labels JSON
    val_split: Optional[str] = None  # keep only this split of data.val (e.g. test)
    # hold out this share of data.train's videos for validation (by file, chosen by split_seed);
    # None: 0.2 for the self-supervised tasks when nothing else names validation videos; 0: score
    # on the training videos themselves (a warning says so)
    val_fraction: Optional[float] = None
    split_seed: int = 0  # which videos val_fraction holds out (train.seed leaves the split alone)
    cache: Optional[str] = None  # token cache folder; None: RUN_DIR/cache. Missing videos are extracted into it
    encoder: str = "efficientnet-lite0"
    size: Optional[int] = None  # encoder input size; None: the encoder's default
    tokens: str = "patches"  # patches | all (the class token and registers kept in front: paper 000's models)
    layers: int = 1  # K blocks' outputs, evenly spaced to the last, mixed by a trained LayerMix (paper 000: 4)
    fps: Optional[float] = None  # resample videos to this rate before encoding; None keeps every frame
    resample: str = "time"  # how: time (frame on screen each 1/fps) | stride (every round(native/fps)-th: paper 000)
    resize: str = "antialias"  # frames to the square input: antialias (ours) | reference (paper 000's inference)
    views: int = 0  # augmented views cached per video besides the plain one
    pool_space: Optional[int] = None  # average-pool each frame's token grid to s x s (AdViSe's SFU)
    pool_channels: Optional[int] = None  # and/or the token width to c
    dtype: str = "float16"
    frames: int = 8  # frames per clip
    clips_per_video: int = 4  # training clips drawn per video per epoch
    online: bool = False  # encode through the frozen encoder at every step, with pixel augmentation


@dataclass
class TemporalConfig:
    name: str = "gru"
    size: str = "small"
    input: str = "tokens"  # what the core is fed: tokens | diff (x_t - x_{t-1}) | both (concatenated)
    norm: bool = False  # LayerNorm each input token (each part of `both` alone) before the core
    kw: dict[str, Any] = field(default_factory=dict)  # constructor keywords over the size's


@dataclass
class HeadConfig:
    # classification: attentive | linear | mlp (AdViSe's: mean, Linear, ReLU, Linear) | reference (paper 000's);
    # other tasks: reference for paper 000's readout, any other name for the task's own
    name: str = "attentive"
    mode: str = "stream"  # stream: one prediction per frame, the last one answers; clip: all T x N tokens at once
    heads: int = 4
    queries: int = 1
    hidden: int = 1024  # hidden width: the mlp head's, and the pose, box and point readouts' (paper 000: 512)
    width: Optional[int] = None  # attentive / reference probe width (paper 000's classification: 3/4 of D)
    layers: int = 1  # decoder layers of the reference box and point readouts
    box_format: str = "cxcywh"  # the reference box readout's own boxes: cxcywh (its modules) | xyxy
    # a Linear from the core's width to this one before the readout, which then runs at it (paper 000's
    # proj_to_readout: its box, point and pose readouts at 1024 over ViT-S/B tokens); None: none
    readout_width: Optional[int] = None


@dataclass
class OptimConfig:
    lr: float = 1e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 20
    min_lr: float = 1e-7
    grad_clip: float = 1.0


@dataclass
class TrainConfig:
    steps: int = 200
    batch_size: int = 16  # over all ranks
    eval_every: int = 100
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    device: str = "auto"  # auto: cuda when present
    workers: int = 0  # DataLoader workers
    threads: int = 1  # CPU threads for the training math (0: one per core); 1 keeps every run bitwise reproducible


@dataclass
class InitConfig:
    core: Optional[str] = None  # a run folder or checkpoint whose temporal core starts this run
    compare_scratch: bool = True  # with `core`: also train from scratch and report the Delta
    freeze: bool = False  # with `core`: the core stays as loaded, only the readout trains (a probe); so does scratch's


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)


_CHOICES = {
    "head.name": ("attentive", "linear", "mlp", "reference"),
    "head.mode": ("stream", "clip"),
    "head.box_format": ("cxcywh", "xyxy"),
    "data.dtype": ("float16", "float32", "int8"),
    "data.tokens": ("patches", "all"),
    "data.resize": ("antialias", "reference"),  # video.transforms.RESIZES
    "data.resample": ("time", "stride"),  # video.sampling.RESAMPLE_RULES
    "temporal.input": ("tokens", "diff", "both"),
    "task.tower": ("frozen", "harvest"),
}


def _explain(exc: Exception, where: str) -> ConfigError:
    """One line for a config that OmegaConf refused or that is not YAML at all."""
    if isinstance(exc, yaml.YAMLError):
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return ConfigError(f"{where}: not valid YAML{at}: {problem}; fix the file (key: value lines)")
    key = getattr(exc, "full_key", None) or "?"
    first = str(exc).splitlines()[0]
    return ConfigError(f"{where}: {key}: {first}")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """The schema's defaults, then the YAML file, then `key=value` overrides -> a checked Config."""
    merged = OmegaConf.structured(Config)
    try:
        if path is not None:
            path = resolve(path)
            merged = OmegaConf.merge(merged, _renamed(OmegaConf.load(path)))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise _explain(exc, str(path)) from None
    return _finish(_apply(merged, overrides), str(path or "config"))


def resolve(path: str | Path) -> Path:
    """A config file, or the shipped config of that name (`stillmotion.configs`: "prp", "cpu/prp")."""
    from stillmotion import configs

    if Path(path).is_file():
        return Path(path)
    shipped = configs.find(str(path))
    if shipped is None:
        raise ConfigError(f"{path}: no such config file, and no shipped config of that name (`stillmotion configs "
                          f"list`: {', '.join(configs.names())})")
    return shipped


def with_overrides(cfg: Config, overrides: list[str] | tuple[str, ...]) -> Config:
    """A checked copy of `cfg` with `key=value` overrides applied (a saved run's config, say)."""
    return _finish(_apply(OmegaConf.structured(cfg), overrides), "config")


def _apply(merged, overrides) -> object:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: write it as key=value, e.g. train.steps=100")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise _explain(exc, f"override {item!r}") from None
    return merged


def _finish(merged, where: str) -> Config:
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"{where}: {', '.join(missing)} must be set (e.g. {missing[0]}=...)")
    cfg: Config = OmegaConf.to_object(merged)
    check(cfg)
    return cfg


def check(cfg: Config) -> None:
    """Checks a type cannot express: names from fixed sets, and positive counts."""
    from stillmotion.tasks import TASKS
    from stillmotion.temporal import REGISTRY, SIZES

    choices = {**_CHOICES, "task.name": tuple(TASKS), "temporal.name": tuple(REGISTRY),
               "temporal.size": tuple(SIZES)}
    for key, allowed in choices.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    for key in ("data.frames", "data.layers", "data.clips_per_video", "train.steps", "train.batch_size",
                "task.eval_clips", "task.resolution"):
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) < 1:
            raise ConfigError(f"{key}: must be at least 1, got {getattr(getattr(cfg, section), name)}")
    if cfg.train.threads < 0:
        raise ConfigError(f"train.threads: must be 0 (one per core) or more, got {cfg.train.threads}")
    d = cfg.data
    if (d.tokens == "all" or d.layers > 1) and (d.pool_space or d.pool_channels):
        raise ConfigError("data.pool_space / data.pool_channels: pooling works on one layer of patch tokens; "
                          "leave them unset with data.tokens=all or data.layers > 1")
    if not 0 < cfg.task.keep <= 1:
        raise ConfigError(f"task.keep: the share of patches kept must be in (0, 1], got {cfg.task.keep}")
    if cfg.task.tower == "harvest" and (cfg.task.name != "video_text" or not d.online):
        raise ConfigError("task.tower=harvest trains the vision tower on pixels: it needs task.name=video_text and "
                          "data.online=true")
    if cfg.init.freeze and not cfg.init.core:
        raise ConfigError("init.freeze keeps the core that init.core loads as it is; give init.core=RUN_DIR too")
    if d.layers > 1 and cfg.task.name == "masked_tokens":
        raise ConfigError("data.layers: masked_tokens rebuilds one layer's tokens; use data.layers=1")


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def from_yaml(text: str, where: str = "config") -> Config:
    """A Config from YAML text (a saved run's); `where` names it in the ConfigError of bad text."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), _renamed(OmegaConf.create(text))))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        raise _explain(exc, where) from None


def _renamed(node):
    """A config written before a key was renamed, with the key's new name: data.split (the
    official split number) is data.fold since `split` came to mean train / val / test only."""
    data = node.get("data") if hasattr(node, "get") else None
    if data is not None and isinstance(data.get("split"), int):
        data["fold"] = data.pop("split")
    return node


def differences(a: Config, b: Config, ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two configs."""
    flat_a, flat_b = _flatten(OmegaConf.to_container(OmegaConf.structured(a))), _flatten(
        OmegaConf.to_container(OmegaConf.structured(b)))
    return sorted(k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k) != flat_b.get(k) and k not in ignore)


def _flatten(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "kw":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out
