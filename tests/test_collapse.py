"""The collapse monitor in real (tiny) runs: a stop ends the run with last.ckpt and results.json, and a resumed run
measures the drift from the true start of the run (issue 15)."""

import json
from pathlib import Path

import pytest
import torch

from ssad.collapse import CollapseStopError, find_monitor
from ssad.train import build, train
from tests.conftest import compose_cfg


def test_stop_ends_the_run_with_checkpoint_results_and_an_error(tmp_path):
    cfg = compose_cfg(tmp_path, "optim.base_lr=1e-9", "trainer.max_epochs=3", "eval.every_n_epochs=1",
                      "callbacks.collapse.stop=true", "callbacks.collapse.patience=1")
    with pytest.raises(CollapseStopError, match="teacher_not_moving.*callbacks.collapse.stop"):
        train(cfg)
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    results = json.loads((run / "results.json").read_text())
    assert results["epoch"] == 1  # the first evaluation after the one-epoch warm-up, not max_epochs
    assert "teacher_not_moving" in [w["code"] for w in results["warnings"]]
    assert results["teacher_drift"] < 1e-5 and len(results["drift_curve"]) == 1


def _fit(cfg, ckpt: str | None = None):
    datamodule, model, trainer = build(cfg)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt)
    return model, find_monitor(trainer)


def test_resumed_run_measures_drift_from_the_start_of_the_run(tmp_path):
    torch.manual_seed(0)
    common = ("eval.every_n_epochs=5", "callbacks.evaluation.plots=false")
    _, first = _fit(compose_cfg(tmp_path, *common, "trainer.max_epochs=1"))
    start = [t.clone() for t in first.reference]
    assert first.drift_curve[0]["student_drift"] > 0
    # another seed builds other initial weights: the reference must come from the checkpoint, not the new network
    ckpt = str(Path(tmp_path) / "run" / "checkpoints" / "last.ckpt")
    model, resumed = _fit(compose_cfg(tmp_path, *common, "trainer.max_epochs=2", "seed=1"), ckpt)
    assert all(torch.equal(a, b) for a, b in zip(resumed.reference, start))
    assert [d["epoch"] for d in resumed.drift_curve] == [1, 2]
    assert resumed.drift_curve[0] == first.drift_curve[0]
