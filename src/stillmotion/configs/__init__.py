"""The run configs shipped with stillmotion, as package data, found by name.

`cpu/` holds configs for the embedded encoder on a laptop CPU; `gpu/` the papers' settings for
real backbones and datasets. `stillmotion train prp data.train=...` and `load_config("prp")`
find `cpu/prp.yaml`; a name may carry its folder (`gpu/ssv2_dinov3_gmmix_stream`) and `.yaml`.

    names()              # ["cpu/arrow_of_time", ..., "gpu/webvid_clip_b16_harvest"]
    find("prp")          # Path of cpu/prp.yaml, or None
    get("prp")           # the same, or a UsageError naming the shipped configs
    summary("prp")       # the file's first comment line
"""

from __future__ import annotations

from pathlib import Path

from stillmotion.errors import UsageError

FOLDER = Path(__file__).parent


def names() -> list[str]:
    """Every shipped config as "folder/name", sorted."""
    return sorted(f"{p.parent.name}/{p.stem}" for p in FOLDER.glob("*/*.yaml"))


def find(name: str) -> Path | None:
    """The shipped config called `name` ("prp", "cpu/prp" or "cpu/prp.yaml"), or None. A short
    name must be unique across the folders."""
    name = name.removesuffix(".yaml")
    matches = [n for n in names() if n == name or n.split("/", 1)[1] == name]
    if len(matches) > 1:
        raise UsageError(f"config name {name!r} is shipped more than once ({', '.join(matches)}); give the folder too")
    return FOLDER / f"{matches[0]}.yaml" if matches else None


def get(name: str) -> Path:
    """The shipped config called `name`; a UsageError naming the shipped ones if there is none."""
    path = find(name)
    if path is None:
        raise UsageError(f"no shipped config {name!r}; shipped: {', '.join(names())}")
    return path


def summary(name: str) -> str:
    """The first comment line of a shipped config (what it is for)."""
    for line in get(name).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
