"""The collapse monitor in real (tiny) runs: a stop ends the run with last.ckpt and results.json, and a resumed run
measures the drift from the true start of the run (issue 15)."""

import json
from pathlib import Path

import pytest
import torch

from ssad.scoring.collapse import CollapseStopError, find_monitor
from ssad.training.run import build, train
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


# The quick-start (experiment=demo: small CNN, embedded glyphs) at the tests' tiny sizes, a few steps per epoch.
QUICK = ("model=cnn_small", "data=glyphs", "eval.every_n_epochs=2")


@pytest.fixture(scope="module")
def glyph_cache(tmp_path_factory) -> str:
    """One dataset cache for this module's quick-start runs (the glyphs are rendered once)."""
    return f"paths.cache_dir={tmp_path_factory.mktemp('cache')}"


def _results(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_quick_start_that_does_not_learn_ends_with_teacher_not_moving(tmp_path, glyph_cache):
    train(compose_cfg(tmp_path, *QUICK, glyph_cache, "optim.base_lr=1e-9"))
    results = _results(tmp_path)
    assert "teacher_not_moving" in [w["code"] for w in results["warnings"]]
    assert "optim.base_lr" in results["warnings"][0]["message"]


def test_healthy_quick_start_ends_without_warning(tmp_path, glyph_cache):
    # the demo's effective lr (0.004 × 32/256 = 5e-4) at the tests' batch of 16, 10 steps per epoch
    cfg = compose_cfg(tmp_path, *QUICK, glyph_cache, "optim.base_lr=0.008", "++trainer.limit_train_batches=10")
    train(cfg)
    results = _results(tmp_path)
    assert results["warnings"] == []
    assert results["teacher_drift"] > 2 * cfg.callbacks.collapse.min_teacher_drift  # 1.1e-3 measured
    assert results["teacher_entropy"] < 0.5 * results["log_k"] < results["teacher_entropy_of_mean"]
