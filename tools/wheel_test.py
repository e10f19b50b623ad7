"""stillmotion as a user installs it: build the wheel, install it into a fresh virtual environment
that already holds torch, and check that torch stayed as it was and the installed commands work.

1. `python -m build --wheel` -> dist/stillmotion-<version>-py3-none-any.whl (isolated build env);
2. a new venv (outside the repository) gets torch==<this interpreter's torch version> first, as a
   user with their own (CUDA) build has it;
3. `pip install dist/stillmotion-*.whl` with no constraints file: torch's version and files must
   be untouched (the package asks for a range, not a pin);
4. from a folder outside the repository, the installed `stillmotion` runs `configs list`,
   `configs show prp` and `demo --quick --out d` (the whole pipeline on a small task; the full demo's
   code is the same, and its figures are `make demo`'s).

    python tools/wheel_test.py [--work build/wheel-test] [--demo-args "--epochs 2 ..."]

Exits non-zero, saying which step failed, on any failure.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(*command, cwd: Path | None = None, quiet: bool = False) -> str:
    shown = " ".join(str(c) for c in command)
    print(f"$ {shown}", flush=True)
    start = time.perf_counter()
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True)
    print(f"  ({time.perf_counter() - start:.1f} s)", flush=True)
    if done.returncode:
        sys.exit(f"wheel test: `{shown}` failed with status {done.returncode}:\n{done.stdout[-3000:]}\n"
                 f"{done.stderr[-3000:]}")
    if not quiet:
        print(done.stdout[-2000:], end="")
    return done.stdout


def torch_state(python: Path) -> tuple[str, str, float]:
    """(version, file, modification time) of the torch a venv imports."""
    out = run(python, "-c", "import os, torch; f = torch.__file__; print(torch.__version__); print(f); "
              "print(os.path.getmtime(f))", quiet=True)
    version, path, mtime = out.split()
    return version, path, float(mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=None, help="a folder for the venv and the demo (default: a "
                        "temporary folder outside the repository, removed afterwards)")
    parser.add_argument("--demo-args", default="", help="extra arguments of `stillmotion demo --quick` "
                        "(e.g. \"--epochs 15 --size 128\" for more of the full demo)")
    args = parser.parse_args()
    import torch

    torch_version = torch.__version__.split("+")[0]
    dist = REPO / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    run(sys.executable, "-m", "build", "--wheel", "--outdir", dist, REPO, quiet=True)
    wheels = sorted(dist.glob("stillmotion-*.whl"))
    if len(wheels) != 1:
        sys.exit(f"wheel test: expected one wheel in {dist}, found {[w.name for w in wheels]}")
    wheel = wheels[0]
    run(sys.executable, "-c", f"import zipfile, sys; names = zipfile.ZipFile({str(wheel)!r}).namelist(); "
        "sys.exit(0 if 'stillmotion/configs/cpu/prp.yaml' in names else 'the wheel lacks its configs')")
    print(f"built {wheel.name}")

    work = args.work or Path(tempfile.mkdtemp(prefix="stillmotion-wheel-"))
    try:
        shutil.rmtree(work / "venv", ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        run(base, "-m", "venv", work / "venv")
        python = work / "venv" / "bin" / "python"
        run(python, "-m", "pip", "install", "-q", "--no-compile", f"torch=={torch_version}")
        before = torch_state(python)
        run(python, "-m", "pip", "install", "-q", "--no-compile", wheel)
        after = torch_state(python)
        if after != before:
            sys.exit(f"wheel test: installing the wheel changed torch: {before} -> {after}")
        print(f"torch kept: {after[0]} at {after[1]}")
        stillmotion = work / "venv" / "bin" / "stillmotion"
        outside = work / "user"
        outside.mkdir(exist_ok=True)
        listed = run(stillmotion, "configs", "list", cwd=outside)
        if "cpu/prp" not in listed or "gpu/ssv2_dinov3_gmmix_stream" not in listed:
            sys.exit("wheel test: `stillmotion configs list` does not list the shipped configs")
        run(stillmotion, "configs", "show", "prp", cwd=outside, quiet=True)
        run(stillmotion, "train", "prp", "data.train=videos/", "--print-config", cwd=outside, quiet=True)
        run(stillmotion, "demo", "--quick", "--out", "d", "--quiet", *shlex.split(args.demo_args), cwd=outside)
        for name in ("report.json", "report.md", "curves.png", "predictions.gif"):
            if not (outside / "d" / name).is_file():
                sys.exit(f"wheel test: the installed demo wrote no {name}")
        print("wheel test passed: the wheel installs beside an existing torch, and its configs and demo work")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
