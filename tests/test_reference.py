"""Our modules against paper 000's reference code, through fixtures made by running that code on
tiny random models (weights under the reference's names, inputs, outputs; a README beside them).

The folder comes from STILLMOTION_REFERENCE_FIXTURES (default: ../shared/data/reference-models
beside the repository). Without the variable and without the default folder the tests skip,
saying so; with the variable set, a missing or mismatching fixture fails. Every size is read
from the fixture's JSON, so any set made the same way (other sizes, seeds, frame counts) runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from stillmotion.reference.cores import ARCHS, core_from_reference, core_settings, load_strict

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference-models"
FIXTURES = Path(os.environ.get("STILLMOTION_REFERENCE_FIXTURES", DEFAULT))
CORES = ["gated_transformer", "mamba", "mambamix", "gatedmambamix"]


def fixture(stem: str) -> tuple[dict, dict, dict]:
    """(the JSON, the weights, the inputs and outputs) of fixture `stem`."""
    path = FIXTURES / stem
    if not path.with_suffix(".json").is_file():
        if "STILLMOTION_REFERENCE_FIXTURES" in os.environ:
            pytest.fail(f"reference fixture {path}.json not found in STILLMOTION_REFERENCE_FIXTURES")
        pytest.skip(f"reference fixtures not found at {FIXTURES} (set STILLMOTION_REFERENCE_FIXTURES to their folder)")
    meta = json.loads(path.with_suffix(".json").read_text())
    return meta, load_file(f"{path}.weights.safetensors"), load_file(f"{path}.io.safetensors")


@pytest.mark.parametrize("stem", CORES)
def test_reference_cores_match_clip_and_stream(stem):
    meta, weights, io = fixture(f"cores/{stem}")
    core = core_from_reference(meta["arch_in_reference"], meta["constructor"]["kwargs"], weights).eval()
    x = io["input.tokens"]
    assert x.shape[-1] == meta["constructor"]["kwargs"]["d_model"]
    with torch.no_grad():
        clip = core(x)
        state, steps = core.init_state(x.shape[0], x.shape[2]), []
        for t in range(x.shape[1]):
            y, state = core.step(x[:, t], state)
            steps.append(y)
    assert (clip - io["output.clip"]).abs().max().item() < 1e-4
    assert (torch.stack(steps, 1) - io["output.step"]).abs().max().item() < 1e-4


def test_reference_core_settings_and_weights_are_checked():
    meta, weights, _ = fixture("cores/gatedmambamix")
    kwargs = meta["constructor"]["kwargs"]
    assert core_settings("dinov3_gatedmambamix", kwargs)[:2] == ("gmmix", kwargs["d_model"])
    with pytest.raises(ValueError, match="unknown reference architecture 'dinov3_lstm'"):
        core_settings("dinov3_lstm", kwargs)
    with pytest.raises(ValueError, match="reference setting.* colour have no counterpart"):
        core_settings("dinov3_gatedmambamix", {**kwargs, "colour": 1})
    with pytest.raises(ValueError, match="an MLP gate"):
        core_settings("dinov3_gatedmambamix", {**kwargs, "gate_hidden": 8})
    broken = dict(weights)
    broken["extra.weight"] = broken.pop("gates.0.weight")
    with pytest.raises(ValueError, match=r"missing gates\.0\.weight; unknown extra\.weight"):
        core_from_reference("dinov3_gatedmambamix", kwargs, broken)
    assert set(ARCHS.values()) == {"rvm", "mamba", "mmix", "gmmix"}


def test_a_strict_load_names_wrong_shapes():
    module = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match=r"layer: the weights do not fit: wrong shape weight \(2, 4\) \(expected \(2, 3\)\)"):
        load_strict(module, {"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}, "layer")
