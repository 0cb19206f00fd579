"""OOD scores as components (ssad.scoring.scores): each built-in score against a hand computation, Eq. 6 through
its component equal to the pure function, a detector file storing its score by name, and a score defined in a file
outside the package, selected from the command line, evaluating a checkpoint."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssad.cli.errors import ConfigError, InputError
from ssad.config.validation import validate
from ssad.deploy.detector import Detector
from ssad.export import export_detector
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.scoring.evaluation import EvalSettings, evaluate_features
from ssad.scoring.metrics import (
    mean_feature_score,
    nearest_neighbour_score,
    ood_metrics,
    ood_score,
    readable_score,
    sensitivity,
)
from ssad.scoring.scores import (
    SCORERS,
    Eq6Score,
    KthNeighbourScore,
    MeanFeatureScore,
    NearestNeighbourScore,
    build_scorer,
    scorer_from_spec,
    scorer_spec,
)
from ssad.training.run import train
from tests.conftest import HANG_S, compose_cfg, compose_command

ROOT = Path(__file__).resolve().parents[1]
# the example of docs/howto/ood-score.md: its two code blocks, the score's file and its YAML
HOWTO = (ROOT / "docs" / "howto" / "ood-score.md").read_text()
MY_SCORES = HOWTO.split("```python\n", 1)[1].split("```", 1)[0]
MY_YAML = HOWTO.split("```yaml\n", 1)[1].split("```", 1)[0]

# four training features (rows e1, 2·e2, e2, −e1: normalised e1, e2, e2, −e1) and a query at cos 0.8, 0.6, 0.6, −0.8
BANK = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 1.0], [-1.0, 0.0]])
QUERY = torch.tensor([[4.0, 3.0]])


def test_each_built_in_score_by_hand():
    assert set(SCORERS) == {"eq6", "nn", "mean", "knn"}
    # Eq. 6 at τ = 0.5: S = −(e^1.6 + 2·e^1.2 + e^−1.6)/4, published as R = 1 − τ·log(−S)
    s = -(math.exp(1.6) + 2 * math.exp(1.2) + math.exp(-1.6)) / 4
    eq6 = Eq6Score(0.5).fit(BANK)
    assert eq6.score(QUERY).item() == pytest.approx(s, rel=1e-6)
    assert eq6.readable(eq6.score(QUERY)).item() == pytest.approx(1 - 0.5 * math.log(-s), rel=1e-6)
    # τ → 0: 1 − the largest cosine; τ → ∞: 1 − cos to the mean normalised feature (0, ½) → e2
    assert NearestNeighbourScore().fit(BANK).score(QUERY).item() == pytest.approx(0.2, abs=1e-6)
    assert MeanFeatureScore().fit(BANK).score(QUERY).item() == pytest.approx(0.4, abs=1e-6)
    # Sun et al.: the distance to the k-th nearest normalised feature, √(2 − 2·cos_(k)); k beyond M is clamped
    for k, cos_k in ((1, 0.8), (2, 0.6), (3, 0.6), (4, -0.8), (50, -0.8)):
        assert KthNeighbourScore(k).fit(BANK).score(QUERY).item() == pytest.approx(math.sqrt(2 - 2 * cos_k), abs=1e-6)
    # leave-one-out, each row against the other three
    assert NearestNeighbourScore().fit(BANK).leave_one_out().tolist() == pytest.approx([1, 0, 0, 1], abs=1e-6)
    mean_loo = 1 + 1 / math.sqrt(5)  # e1 against the mean of (e2, e2, −e1) ∝ (−1, 2)
    assert MeanFeatureScore().fit(BANK).leave_one_out().tolist() == pytest.approx([mean_loo, 0, 0, mean_loo],
                                                                                  abs=1e-6)
    root2 = math.sqrt(2)  # the nearest other feature of ±e1 is at cos 0; of each e2, the other e2 (cos 1, distance 0)
    assert KthNeighbourScore(1).fit(BANK).leave_one_out().tolist() == pytest.approx([root2, 0, 0, root2], abs=1e-3)
    loo = [-sum(math.exp(c / 0.5) for c in row) / 3 for row in ([0, 0, -1], [0, 1, 0], [0, 1, 0], [-1, 0, 0])]
    assert eq6.leave_one_out().tolist() == pytest.approx(loo, rel=1e-6)


def test_eq6_through_the_component_is_the_pure_function_bit_for_bit():
    gen = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 16, generator=gen), torch.randn(70, 16, generator=gen)
    ood = {"near": torch.randn(50, 16, generator=gen) + 0.3, "far": torch.randn(40, 16, generator=gen) + 2.0}
    scorer = Eq6Score(0.04).fit(train)
    assert torch.equal(scorer.score(test), ood_score(test, train, 0.04))
    assert torch.equal(scorer.leave_one_out(), ood_score(train, train, 0.04, exclude_self=True))
    assert torch.equal(scorer.readable(scorer.score(test)), readable_score(ood_score(test, train, 0.04), 0.04))
    # the evaluation: Eq. 6's metrics, its limits through the nn and mean scores, sensitivity, as the pure functions
    results, scores = evaluate_features(train, test, ood, EvalSettings(progress=False))
    assert torch.equal(scores["test"], ood_score(test, train, 0.04))
    for name, feats in ood.items():
        want = ood_metrics(ood_score(test, train, 0.04), ood_score(feats, train, 0.04))
        want["auroc_1nn"] = ood_metrics(nearest_neighbour_score(test, train),
                                        nearest_neighbour_score(feats, train))["auroc"]
        want["auroc_mean"] = ood_metrics(mean_feature_score(test, train), mean_feature_score(feats, train))["auroc"]
        assert results["ood"][name] == want
    loo = ood_metrics(ood_score(train, train, 0.04, exclude_self=True), ood_score(test, train, 0.04))["auroc"]
    assert results["sensitivity"] == loo == sensitivity(train, test, Eq6Score(0.04))
    # another score replaces Eq. 6 in the metrics; the limit columns stay
    knn, _ = evaluate_features(train, test, ood, EvalSettings(progress=False), scorer=KthNeighbourScore(5))
    want = ood_metrics(KthNeighbourScore(5).fit(train).score(test), KthNeighbourScore(5).fit(train).score(ood["far"]))
    assert knn["ood"]["far"] == {**want, "auroc_1nn": results["ood"]["far"]["auroc_1nn"],
                                 "auroc_mean": results["ood"]["far"]["auroc_mean"]}


def test_scores_as_plain_values_and_the_configs_that_select_them(tmp_path, monkeypatch):
    for scorer in (Eq6Score(0.1), NearestNeighbourScore(), MeanFeatureScore(), KthNeighbourScore(7)):
        spec = scorer_spec(scorer)
        assert spec["name"] == scorer.name and repr(scorer_from_spec(spec, "f")) == repr(scorer)
    (tmp_path / "my_scores.py").write_text(MY_SCORES)
    monkeypatch.syspath_prepend(str(tmp_path))
    from my_scores import MeanKNNScore

    spec = scorer_spec(MeanKNNScore(3))
    assert spec == {"target": "my_scores.MeanKNNScore", "params": {"k": 3}}
    with pytest.raises(InputError, match="a score of your own.*trust_file=true"):
        scorer_from_spec(spec, "detector file d.pt")
    assert repr(scorer_from_spec(spec, "d.pt", trust_file=True)) == "MeanKNNScore(k=3)"
    # the config group: scorer=knn and its k; a bad value is refused with its key
    knn = build_scorer(compose_command("evaluate", "ckpt=x", "scorer=knn").scorer)
    assert repr(knn) == "KthNeighbourScore(k=50)"
    assert build_scorer(compose_command("evaluate", "ckpt=x").scorer).temperature == 0.04
    with pytest.raises(ValueError, match="scorer.k=0 must be a positive integer"):
        validate(compose_command("export", "ckpt=x", "scorer=knn", "scorer.k=0"), "export")
    with pytest.raises(ConfigError, match="not an OOD score"):
        build_scorer({"_target_": "collections.OrderedDict"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("scores")
    train(compose_cfg(tmp, "negatives=rot_indist", "trainer.max_epochs=1"))
    return tmp


def test_a_detector_file_stores_its_score(trained, tmp_path, monkeypatch):
    ckpt = f"ckpt={trained}/run/checkpoints/last.ckpt"
    out = tmp_path / "knn.pt"
    exported = export_detector(compose_command("export", ckpt, f"out={out}", "scorer=knn", "scorer.k=3"))
    detector = Detector.load(out, device="cpu")
    assert repr(detector.scorer) == "KthNeighbourScore(k=3)" and torch.equal(detector.calibration,
                                                                              exported.calibration)
    images = torch.randint(0, 256, (6, 3, detector.data_size, detector.data_size), dtype=torch.uint8)
    features, bank = detector.features(images), detector.bank.float()
    want = KthNeighbourScore(3).fit(bank).score(features)
    assert torch.equal(detector.score(images), want.cpu())
    # a score of the user's own: stored by its dotted path, loaded only from a trusted file
    (tmp_path / "my_scores.py").write_text(MY_SCORES)
    monkeypatch.syspath_prepend(str(tmp_path))
    mine = tmp_path / "mine.pt"
    export_detector(compose_command("export", ckpt, f"out={mine}", "scorer=knn",
                                    "scorer._target_=my_scores.MeanKNNScore"))
    with pytest.raises(InputError, match="my_scores.MeanKNNScore, a score of your own"):
        Detector.load(mine, device="cpu")
    assert repr(Detector.load(mine, device="cpu", trust_file=True).scorer) == "MeanKNNScore(k=50)"


def test_a_score_of_the_users_own_evaluates_a_checkpoint_from_the_command_line(trained, tmp_path):
    """docs/howto/ood-score.md's example: my_scores.py and conf/scorer/my.yaml outside the package, scorer=my.
    With k=1 the mean of the k nearest cosines is the nearest one: every metric equals scorer=nn's, and not Eq. 6's."""
    (tmp_path / "my_scores.py").write_text(MY_SCORES)
    (tmp_path / "conf" / "scorer").mkdir(parents=True)
    (tmp_path / "conf" / "scorer" / "my.yaml").write_text(MY_YAML)
    ckpt = f"ckpt={trained}/run/checkpoints/last.ckpt"
    out = tmp_path / "my" / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = subprocess.run([sys.executable, "-m", "ssad.evaluate", ckpt, "scorer=my", "scorer.k=1", f"out={out}",
                           "eval.plots=false", "eval.settings.progress=false", "--config-dir", str(tmp_path / "conf")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    mine = json.loads(out.read_text())
    nearest = evaluate_checkpoint(compose_command("evaluate", ckpt, "scorer=nn", f"out={tmp_path}/nn/results.json",
                                                  "eval.plots=false"))
    eq6 = evaluate_checkpoint(compose_command("evaluate", ckpt, f"out={tmp_path}/eq6/results.json",
                                              "eval.plots=false"))
    assert set(mine["ood"]) == {"digits_5to9", "photos"}
    for name, metrics in mine["ood"].items():
        assert metrics["auroc"] == nearest["ood"][name]["auroc"] == metrics["auroc_1nn"]
        assert {k: metrics[k] for k in ("aupr_in", "aupr_out", "fpr95")} == \
            {k: nearest["ood"][name][k] for k in ("aupr_in", "aupr_out", "fpr95")}
    # the check can tell the scores apart: Eq. 6 ranks these sets otherwise than the nearest neighbour
    assert any(eq6["ood"][name]["auroc"] != mine["ood"][name]["auroc"] for name in mine["ood"])
    assert mine["sensitivity"] is None  # the example has no leave-one-out form
