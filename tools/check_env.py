"""Fails the install when the environment drifted from the one torch build we support."""
import importlib.util
import sys

import torch

problems = []
if not torch.__version__.startswith("2.13.0"):
    problems.append(f"torch {torch.__version__} is installed; stillmotion pins torch==2.13.0")
if importlib.util.find_spec("torchvision") is not None:
    problems.append("torchvision is installed; it must not be (no working CPU build here)")
if problems:
    sys.exit("environment check failed:\n  " + "\n  ".join(problems) + "\nRemove .venv and run make again.")
print(f"environment ok: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}")
