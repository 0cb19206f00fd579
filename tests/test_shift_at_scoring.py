"""tools/shift_at_scoring.py: with β = 0 it reproduces a run's own Eq. 6 AUROCs (results.json) and its
untrained network's (ssad.scoring.baselines), so the other β differ from them only by the scoring-time shift."""

import json
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ssad.scoring.baselines import compute_baselines
from ssad.training.run import train
from tests.conftest import compose_cfg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from shift_at_scoring import shifted_aurocs  # noqa: E402


def test_beta_zero_is_the_runs_own_evaluation_and_the_shift_changes_the_scores(tmp_path):
    cfg = compose_cfg(tmp_path, "model=cnn_small", "model.backbone.width=4", "model.backbone.feature_shift=0.5",
                      "trainer.max_epochs=1", "++trainer.limit_train_batches=2")
    train(cfg)
    run = tmp_path / "run"
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)  # what Hydra writes for a command-line run
    table = shifted_aurocs(run, [0.0, 1.0])
    results = json.loads((run / "results.json").read_text())
    untrained = compute_baselines(cfg)["untrained"]
    assert set(table["trained"][0.0]) == set(results["ood"]) == set(untrained["ood"])
    for name in results["ood"]:
        assert table["trained"][0.0][name] == pytest.approx(results["ood"][name]["auroc"], abs=1e-6)
        assert table["untrained"][0.0][name] == pytest.approx(untrained["ood"][name]["auroc"], abs=1e-6)
    assert table["trained"][1.0] != table["trained"][0.0]
