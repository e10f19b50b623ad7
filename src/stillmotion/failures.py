"""How every batch job reports what it could not read: JSON lines {"path", "reason"}, written
atomically, and exit status 3 once everything readable is done."""

from __future__ import annotations

import json
import os
from pathlib import Path

#: exit status of a batch job that finished every good file but could not read some
EXIT_SOME_FAILED = 3


def write_failures(path: str | Path, failures: list[tuple[str, str]]) -> Path:
    """One JSON line {"path", "reason"} per failed file; the file is replaced whole, never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_text("".join(json.dumps({"path": p, "reason": r}) + "\n" for p, r in failures))
    os.replace(tmp, path)
    return path
