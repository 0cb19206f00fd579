"""A smaller bank by k-center greedy coreset selection (issue 36 item 4): ``ssad.deploy.coreset`` and
``python -m ssad.export bank_size=N``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssad.deploy.coreset import coverage_radius, k_center_greedy
from ssad.deploy.detector import Detector
from ssad.export import export_detector, leave_one_out_calibration
from ssad.scoring.metrics import ood_score, readable_score
from ssad.training.run import train
from tests.conftest import compose_cfg, compose_command


def _clusters(sizes: list[int], dim: int = 16, spread: float = 0.05,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around ``len(sizes)`` random directions (``sizes[c]`` around the c-th) and each point's cluster."""
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(len(sizes), dim, generator=g), dim=1)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(sizes)])
    points = centres[labels] + spread * torch.randn(len(labels), dim, generator=g)
    order = torch.randperm(len(labels), generator=g)
    return 3 * points[order], labels[order]  # not normalised: the selection normalises


def test_the_coreset_of_clustered_points_covers_every_cluster():
    sizes = [300, 200, 5, 3, 2, 1]  # a uniform sample of six would likely miss the small ones
    points, labels = _clusters(sizes)
    for seed in range(3):
        chosen = k_center_greedy(points, len(sizes), seed)
        assert sorted(labels[chosen].tolist()) == list(range(len(sizes)))
        apart = min(1 - float(F.cosine_similarity(points[labels == a].mean(0), points[labels == b].mean(0), dim=0))
                    for a in range(len(sizes)) for b in range(a))
        assert coverage_radius(points, chosen) < apart / 4  # every point near a chosen one of its own cluster
    assert len(set(k_center_greedy(points, 50, 0).tolist())) == 50


def test_each_new_row_is_the_farthest_from_the_chosen_ones():
    points, _ = _clusters([40, 30, 20], dim=8, spread=0.3, seed=1)
    chosen = k_center_greedy(points, 12, seed=5)
    x = F.normalize(points, dim=1)
    for k in range(1, len(chosen)):
        distance = (1 - x @ x[chosen[:k]].T).min(dim=1).values
        assert float(distance[chosen[k]]) == pytest.approx(float(distance.max()), abs=1e-6)
    assert torch.equal(k_center_greedy(points, 5, seed=5), chosen[:5])  # a smaller coreset is a prefix
    assert torch.equal(k_center_greedy(points, 12, seed=5), chosen)  # seeded
    assert int(k_center_greedy(points, 1, seed=6)[0]) != int(chosen[0]) or int(
        k_center_greedy(points, 1, seed=7)[0]) != int(chosen[0])


def test_n_at_least_the_bank_keeps_the_whole_bank_and_copies_come_last():
    points, _ = _clusters([10, 10], seed=2)
    assert torch.equal(k_center_greedy(points, 20), torch.arange(20))
    assert torch.equal(k_center_greedy(points, 1000), torch.arange(20))
    doubled = torch.cat([points, points])
    chosen = k_center_greedy(doubled, 25)
    assert len({int(i) % 20 for i in chosen[:20]}) == 20  # every distinct row before any copy
    with pytest.raises(ValueError, match="at least one row"):
        k_center_greedy(points, 0)


def test_leave_one_out_calibration_of_a_coreset_is_each_training_image_against_the_bank_without_itself():
    features = F.normalize(torch.randn(30, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    kept = k_center_greedy(features, 10, seed=0)
    detector = Detector(torch.nn.Identity(), features[kept], {}, 8, 8, 0.1, 0.0)
    calibration = leave_one_out_calibration(detector, features, kept)
    bank = features[kept].half().float()
    expected = []
    for i in [*kept.tolist(), *(j for j in range(30) if j not in set(kept.tolist()))]:
        others = bank[[r for r, row in enumerate(kept.tolist()) if row != i]]
        expected.append(float(readable_score(ood_score(features[i:i + 1].half().float(), others, 0.1), 0.1)))
    assert calibration.shape == (30,)
    assert calibration.tolist() == pytest.approx(expected, abs=1e-6)
    assert leave_one_out_calibration(detector, features, None).shape == (10,)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("coreset")
    train(compose_cfg(tmp, "negatives=rot_indist", "trainer.max_epochs=1"))
    return f"{tmp}/run/checkpoints/last.ckpt"


def test_a_detector_exported_with_bank_size_keeps_n_rows_and_scores(checkpoint, tmp_path, capsys):
    whole = export_detector(compose_command("export", f"ckpt={checkpoint}", f"out={tmp_path}/whole.pt"))
    export_detector(compose_command("export", f"ckpt={checkpoint}", f"out={tmp_path}/small.pt", "bank_size=40"))
    printed = capsys.readouterr().out
    assert f"bank: 40 of the {len(whole.bank)} training features, chosen by k-center greedy" in printed
    loaded = Detector.load(tmp_path / "small.pt", device="cpu")
    assert loaded.bank.shape == (40, whole.bank.shape[1]) and len(whole.bank) > 40
    assert loaded.meta["bank"] == {"rows": 40, "training_images": len(whole.bank),
                                   "selection": "k-center greedy coreset (cosine)"}
    flat = whole.thumbnails.flatten(1)  # the training images (at the training size, 16 px)
    rows = [int((flat == image).all(dim=1).nonzero()[0]) for image in loaded.thumbnails.flatten(1)]
    assert len(set(rows)) == 40  # 40 distinct training images, and their features are the bank's rows:
    assert torch.equal(loaded.bank, whole.bank[rows])  # the report's thumbnails follow the chosen rows
    images = whole.thumbnails[:8]  # training images at the training size
    scores, flags = loaded.predict(images)
    assert torch.isfinite(scores).all() and flags.dtype == torch.bool
    assert torch.equal(flags, scores > loaded.threshold)
    assert loaded.calibration_size == whole.calibration_size and math.isfinite(loaded.threshold)
    same = export_detector(compose_command("export", f"ckpt={checkpoint}", f"out={tmp_path}/same.pt",
                                           f"bank_size={len(whole.bank)}"))
    assert torch.equal(same.bank, whole.bank) and same.meta["bank"]["selection"] == "all"
