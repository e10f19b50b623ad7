"""`stillmotion eval` scores a checkpoint from the checkpoint alone: the chosen split under its own
name, any checkpoint of the run, per-clip outputs, and only the scored videos read."""

import json
from pathlib import Path

import pytest

from stillmotion.cache.store import TokenStore
from stillmotion.cli import main
from stillmotion.config import load_config
from stillmotion.data.synthetic import MotionTaskConfig, generate_motion_task
from stillmotion.train.trainer import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A classification run on the synthetic motion task (train/val/test splits), 4 steps."""
    root = tmp_path_factory.mktemp("eval")
    manifest = generate_motion_task(root / "data", MotionTaskConfig(size=64, frames=6, train_per_class=2,
                                                                      val_per_class=1, test_per_class=2),
                                    progress=False)
    cfg = load_config(REPO / "configs/cpu/classify.yaml", [
        f"data.train={manifest}", "data.size=64", "data.frames=6", "temporal.kw.hidden=16", "train.batch_size=4",
        "train.steps=4", "train.eval_every=2", "train.checkpoint_every=2", "optim.warmup_steps=1"])
    result = train(cfg, root / "run", progress=False)
    return root / "run", manifest, result


def _eval(capsys, *args) -> tuple[int, dict | None, str]:
    code = main(["eval", *map(str, args), "--quiet"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if code == 0 else None, err


def test_the_test_split_is_scored_under_its_own_name(run, capsys):
    folder, _, result = run
    code, scored, _ = _eval(capsys, folder, "--split", "test")
    assert code == 0 and scored["split"] == "test" and "val" not in scored
    assert scored["test"] == pytest.approx(result["test"]) and scored["videos"] == result["test_videos"] == 8
    code, scored, _ = _eval(capsys, folder)
    assert scored["split"] == "val" and scored["val"] == pytest.approx(result["val"])


def test_only_the_scored_videos_are_read(run, capsys, tmp_path):
    folder, _, result = run
    code, scored, _ = _eval(capsys, folder, f"data.cache={tmp_path / 'fresh'}")
    assert code == 0 and scored["val"] == pytest.approx(result["val"], abs=1e-6)
    assert len(TokenStore(tmp_path / "fresh")) == result["val_videos"] == 4  # the training videos were not extracted


def test_any_checkpoint_of_the_run_can_be_scored(run, capsys):
    folder, _, _ = run
    first = _eval(capsys, folder, "--step", "2")[1]
    last = _eval(capsys, folder, "--step", "4")[1]
    assert first["checkpoint"].endswith("step_00000002") and last["checkpoint"].endswith("step_00000004")
    assert _eval(capsys, folder, "--step", "best")[1]["checkpoint"].endswith("best")
    code, _, err = _eval(capsys, folder, "--step", "3")
    assert code == 2 and "no checkpoint step_00000003" in err and "steps held: 2, 4" in err


def test_per_clip_predictions_agree_with_the_metrics(run, capsys, tmp_path):
    folder, _, _ = run
    code, scored, _ = _eval(capsys, folder, "--split", "test", "--predictions", tmp_path / "p.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(rows) == scored["test"]["clips"] == 8
    for row in rows:
        assert sum(row["probabilities"]) == pytest.approx(1, abs=1e-3) and len(row["rows"]) == 6
        assert row["top"][0][1] == max(row["probabilities"])
    hits = sum(row["top"][0][0] == row["target"] for row in rows)
    assert hits / len(rows) == pytest.approx(scored["test"]["top1"])


def test_settings_that_shape_the_model_are_refused(run, capsys):
    folder, _, _ = run
    code, _, err = _eval(capsys, folder, "temporal.name=rvm")
    assert code == 2 and "temporal.name shapes the model" in err
    code, _, err = _eval(capsys, folder, "--split", "holdout")
    assert code == 2 and "train, val and test" in err


def test_another_manifest_and_one_of_its_splits(run, capsys):
    folder, manifest, result = run
    code, scored, _ = _eval(capsys, folder, "--data", manifest, "--split", "test")
    assert code == 0 and scored["test"] == pytest.approx(result["test"])
    code, scored, _ = _eval(capsys, folder, "--data", manifest)
    assert scored["split"] == "all" and scored["videos"] == 8 + 4 + 8
