"""Readouts by task kind and name: `build_readout(kind, name, spec) -> nn.Module`.

A task's kind says what the model outputs (see `model.VideoModel`); `head.name` picks the
readout. For "classes": `attentive`, `linear`, `mlp` or `reference` (paper 000's, the attentive
probe read per frame at `head.width`). For the other kinds, `reference` picks paper 000's
readout and any other name the task's own. A new readout is one module plus one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from stillmotion.errors import UsageError
from stillmotion.heads.attentive import AttentiveProbe
from stillmotion.heads.depth import DepthHead
from stillmotion.heads.linear import LinearProbe
from stillmotion.heads.mlp import MLPProbe
from stillmotion.heads.patch_depth import PatchDepthReadout
from stillmotion.heads.pose import PoseHead
from stillmotion.heads.reference_tracking import ReferenceBoxes, ReferencePoints
from stillmotion.heads.text_alignment import TextAlignment
from stillmotion.heads.tracking import BoxHead, PointHead


@dataclass(frozen=True)
class ReadoutSpec:
    width: int  # the core's output width D'
    dim: int  # the encoder's token width D (what masked-token prediction rebuilds)
    outputs: int = 1  # classes
    grid: tuple[int, int] = (1, 1)  # the patch grid (readouts that need one read patches only)
    heads: int = 4
    queries: int = 1
    max_frames: int = 16
    resolution: int = 32  # depth map side
    hidden: int = 1024  # MLP hidden width (mlp probe, pose, box and point readouts)
    probe_width: int | None = None  # attentive probe's query/key/value width (None: D')
    layers: int = 1  # decoder layers of the reference box and point readouts
    box_format: str = "cxcywh"  # what the reference box readout reads and writes: cxcywh | xyxy


@dataclass(frozen=True)
class Readout:
    build: Callable[[ReadoutSpec], nn.Module]
    patches_only: bool = False  # reads the patch grid alone (the leading tokens are dropped before it)


def _masked_tokens(s: ReadoutSpec) -> nn.Module:
    return nn.Sequential(nn.LayerNorm(s.width), nn.Linear(s.width, s.dim))


def _probe(s: ReadoutSpec) -> AttentiveProbe:
    return AttentiveProbe(s.width, s.outputs, num_queries=s.queries, num_heads=s.heads, max_frames=s.max_frames,
                          width=s.probe_width)


#: (kind, name) -> readout; "ours" is the task's own for every kind but "classes"
READOUTS: dict[tuple[str, str], Readout] = {
    ("classes", "attentive"): Readout(_probe),
    ("classes", "linear"): Readout(lambda s: LinearProbe(s.width, s.outputs)),
    ("classes", "mlp"): Readout(lambda s: MLPProbe(s.width, s.outputs, s.hidden)),
    ("classes", "reference"): Readout(_probe),
    ("tokens", "ours"): Readout(_masked_tokens),
    ("boxes", "ours"): Readout(lambda s: BoxHead(s.width, s.grid), patches_only=True),
    ("boxes", "reference"): Readout(lambda s: ReferenceBoxes(s.width, s.heads, s.layers, s.hidden,
                                                                           corners=s.box_format == "xyxy")),
    ("points", "ours"): Readout(lambda s: PointHead(s.width, s.grid), patches_only=True),
    ("points", "reference"): Readout(lambda s: ReferencePoints(s.width, s.heads, s.layers, s.hidden)),
    ("depth", "ours"): Readout(lambda s: DepthHead(s.width, s.grid, s.resolution), patches_only=True),
    ("depth", "reference"): Readout(lambda s: PatchDepthReadout(s.width, s.resolution, 8, s.heads, s.probe_width)),
    ("pose", "ours"): Readout(lambda s: PoseHead(s.width, s.hidden)),
    ("pose", "reference"): Readout(lambda s: PoseHead(s.width, s.hidden)),
    ("embedding", "ours"): Readout(lambda s: TextAlignment(s.width, s.outputs, s.heads, s.queries, s.max_frames,
                                                           s.probe_width)),
}

CLASS_HEADS = tuple(name for kind, name in READOUTS if kind == "classes")


def readout_for(kind: str, name: str) -> Readout:
    """The readout a task kind gets for `head.name`."""
    key = (kind, name if kind == "classes" or name == "reference" else "ours")
    if key not in READOUTS:
        names = sorted(n for k, n in READOUTS if k == kind)
        raise UsageError(f"no readout {name!r} for {kind} outputs; choose one of {', '.join(names)}")
    return READOUTS[key]
