"""tools/leave_one_set_out.py: the feature views of a small CNN, the scores computed from one cosine matrix, and the
leave-one-set-out choice on a table of scores."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
from leave_one_set_out import set_overrides  # noqa: E402
from leave_one_set_out_views import detail, scores, select, views, with_concatenations  # noqa: E402

from ssad.method.backbones import small_cnn  # noqa: E402
from ssad.scoring.scores import Eq6Score, KthNeighbourScore, NearestNeighbourScore  # noqa: E402


def test_views_of_a_small_cnn_match_what_it_scores_by():
    torch.manual_seed(0)
    cnn = small_cnn(width=4, depth=3, feature_shift=0.5, grid_block=2).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 16, 16), dtype=np.uint8)
    v = with_concatenations(views(cnn, images, 16))
    from ssad.scoring.features import preprocess
    with torch.no_grad():
        f, scored = cnn.describe(preprocess(torch.from_numpy(images), 16))
    assert torch.allclose(v["f"], f, atol=1e-6)
    assert torch.allclose(v["f+grid2"], scored, atol=1e-6)  # the preset's view is the backbone's own descriptor
    assert v["grid3"].shape == (6, 16 * 16)


def test_scores_from_one_cosine_matrix_rank_as_ssads_scores():
    gen = torch.Generator().manual_seed(1)
    bank = torch.nn.functional.normalize(torch.randn(40, 8, generator=gen), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(15, 8, generator=gen), dim=1)
    ours = scores(queries, bank)
    for name, scorer in (("eq6", Eq6Score(0.04)), ("nn", NearestNeighbourScore()), ("knn5", KthNeighbourScore(5))):
        theirs = scorer.fit(bank).score(queries)
        assert torch.equal(ours[name].argsort(), theirs.argsort()), name


def _row(trained: float, untrained: float, pixels: float) -> dict:
    return {"trained": {"a/u/nn/near": trained, "a/u/nn/far": trained, "b/u/nn/near": trained - 1,
                        "b/u/nn/far": trained + 3},
            "untrained": {k: untrained for k in ("a/u/nn/near", "a/u/nn/far", "b/u/nn/near", "b/u/nn/far")},
            "pixels": {"u/nn/near": pixels, "u/nn/far": pixels}}


def test_the_choice_on_four_sets_is_reported_on_the_fifth(tmp_path, capsys):
    # option b (trained − 1 near, + 3 far) beats a by one point on every set but "e"; held out, e gets the option
    # chosen on the other four, b, and its row must show b's figures there, below both baselines
    table = {f"{name}/{seed}": _row(90.0, 89.0, 88.0) for name in "abcde" for seed in (0, 1)}
    for seed in (0, 1):
        table[f"e/{seed}"]["trained"]["b/u/nn/far"] = 80.0
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "scores.json").write_text(json.dumps(table))
    select(tmp_path, ["r"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| e |")]
    assert rows[0].startswith("| e | `b/u/nn` (r) | 89.0 ± 0.0 | 80.0 ± 0.0 | 84.5 ± 0.0 | 88.0 ± 0.0 | 89.0 ± 0.0 "
                              "| -3.5")
    detail(tmp_path, "r", "a/u/nn")
    out = capsys.readouterr().out
    assert "| a | 90.0 ± 0.0 | 90.0 ± 0.0 | 88.0 ± 0.0 | 88.0 ± 0.0 | 89.0 ± 0.0 | 89.0 ± 0.0 |" in out


def test_class_split_sets_take_the_other_set_as_far_ood(tmp_path):
    mnist = " ".join(set_overrides("mnist", tmp_path))
    assert f"path: {tmp_path}/mnist/tr_x.npy" in mnist
    assert f"+data.ood.far={{format: npy, path: {tmp_path}/animals" in mnist
    assert set_overrides("letters", tmp_path) == ["data=glyphs"]
