"""A manifest is a JSONL file, one sample a line: every data source becomes a list of `Sample`.

Fields: `id`, `path` (relative paths are relative to the manifest's folder), and optionally
`label`, `split`, `start`, `end` (seconds), `caption`, `annotations` (a per-frame annotation
file, see `data.annotations`; relative like `path`), plus any extra keys (kept in `extra`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from stillmotion.errors import UsageError

_FIELDS = ("id", "path", "label", "split", "start", "end", "caption", "annotations")


@dataclass
class Sample:
    id: str
    path: str
    label: str | None = None
    split: str | None = None
    start: float | None = None
    end: float | None = None
    caption: str | list[str] | None = None  # one caption, or several of the same video
    annotations: str | None = None
    extra: dict = field(default_factory=dict)


def read_manifest(path: str | Path, split: str | None = None) -> list[Sample]:
    """Read a JSONL manifest; keep only `split` when given. Errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: manifest not found")
    samples = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
        if not isinstance(row, dict) or "path" not in row:
            raise UsageError(f"{path}:{lineno}: each line needs at least a \"path\" key")
        for key in ("path", "annotations"):
            if row.get(key) is not None:
                row[key] = str(beside(path, row[key]))
        row.setdefault("id", Path(row["path"]).stem)
        extra = {k: v for k, v in row.items() if k not in _FIELDS}
        sample = Sample(**{k: row[k] for k in _FIELDS if k in row}, extra=extra)
        if split is None or sample.split == split:
            samples.append(sample)
    return samples


def beside(manifest: Path, name: str) -> Path:
    """A path from a manifest line: relative ones are relative to the manifest's folder."""
    return Path(name) if Path(name).is_absolute() else manifest.parent / name


def write_manifest(path: str | Path, samples: list[Sample]) -> Path:
    """Write samples as JSONL; paths under the manifest's folder are stored relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for s in samples:
        row = {k: v for k, v in asdict(s).items() if k != "extra" and v is not None}
        for key in ("path", "annotations"):
            if key in row:
                try:
                    row[key] = str(Path(row[key]).resolve().relative_to(path.parent.resolve()))
                except ValueError:
                    pass
        row.update(s.extra)
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n")
    return path


def class_names(samples: list[Sample]) -> list[str]:
    """The sorted distinct labels: label index i is class_names(...)[i]."""
    return sorted({s.label for s in samples if s.label is not None})
