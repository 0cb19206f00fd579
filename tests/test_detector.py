import csv
import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ssad.cli.errors import InputError
from ssad.data.datamodule import holdout_split
from ssad.data.sources import load_source
from ssad.deploy.detector import Detector
from ssad.deploy.inputs import resize_to
from ssad.export import _images, export_detector, export_report
from ssad.score import score_images
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.scoring.metrics import ood_metrics, ood_score, threshold_at_tpr
from ssad.training.run import train
from tests.conftest import compose_cfg, compose_command


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("detector")
    train(compose_cfg(tmp, "negatives=rot_indist", "trainer.max_epochs=1"))
    return tmp


@pytest.fixture(scope="module")
def detector_file(trained) -> Path:
    out = trained / "detector.pt"
    export_detector(compose_command("export", f"ckpt={trained}/run/checkpoints/last.ckpt", f"out={out}"))
    return out


def test_threshold_accepts_95_percent():
    scores = torch.arange(100, dtype=torch.float64)
    thr = threshold_at_tpr(scores, 0.95)
    assert (scores <= thr).float().mean().item() == pytest.approx(0.95)
    assert threshold_at_tpr(torch.tensor([3.0]), 0.95) == 3.0


def test_exported_detector_is_self_contained_and_calibrated(detector_file):
    detector = Detector.load(detector_file, device="cpu")
    assert detector.bank.dtype == torch.float16 and detector.meta["variant"] == "rot_indist"
    test = load_source({"format": "digits", "split": "test", "classes": [0, 1, 2, 3, 4]}, detector.data_size)
    scores, flags = detector.predict(torch.from_numpy(np.ascontiguousarray(test.images)))
    # the threshold was set at 95% TPR of exactly this set
    assert 0.93 <= 1 - flags.float().mean().item() <= 0.97
    photos = load_source({"format": "sklearn_photos", "n": 50}, detector.data_size)
    photo_scores = detector.score(torch.from_numpy(np.ascontiguousarray(photos.images)))
    assert photo_scores.shape == (50,) and torch.isfinite(photo_scores).all()


def test_export_views_at_the_runs_eval_size_unless_told_otherwise(trained, detector_file, tmp_path):
    assert Detector.load(detector_file).view_size == 16  # the run's eval.size (= its augment.global_size)
    ckpt = f"ckpt={trained}/run/checkpoints/last.ckpt"
    resized = export_detector(compose_command("export", ckpt, f"out={tmp_path}/d.pt", "eval.size=24"))
    assert resized.view_size == 24


def test_detector_rejects_bad_input(detector_file, tmp_path):
    detector = Detector.load(detector_file, device="cpu")
    with pytest.raises(ValueError, match="uint8 images of shape"):
        detector.score(torch.rand(2, 3, 16, 16))
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a detector")
    with pytest.raises(ValueError, match="export it again"):
        Detector.load(broken)
    with pytest.raises(FileNotFoundError, match="ssad.export"):
        Detector.load(tmp_path / "missing.pt")


def _image_folder(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    Image.fromarray(rng.integers(0, 65535, (10, 10), dtype=np.uint16)).save(root / "gray16.png")
    (root / "notes.txt").write_text("not an image")
    (root / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return root


def test_score_folder_csv_and_corrupt_files(detector_file, tmp_path, capsys):
    folder = _image_folder(tmp_path / "images")
    out = tmp_path / "scores.csv"
    base = [f"detector={detector_file}", f"input={folder}", f"out={out}", "device=cpu"]
    with pytest.raises(ValueError, match="corrupt.jpg"):
        score_images(compose_command("score", *base))
    assert not out.exists()
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        names, scores, flags = score_images(compose_command("score", *base, "on_error=skip",
                                                     f"histogram={tmp_path}/hist.png"))
    rows = list(csv.DictReader(out.open()))  # most anomalous first
    assert names == ["gray16.png", "img0.png", "img1.png", "img2.png"]
    by_score = sorted(zip(scores.tolist(), names), key=lambda pair: -pair[0])
    assert [r["file"] for r in rows] == [name for _, name in by_score] and [r["rank"] for r in rows] == list("1234")
    assert [float(r["score"]) for r in rows] == pytest.approx([s for s, _ in by_score], rel=1e-6)
    assert re.search(r"\b\d of 4 images \(\d+\.\d%\) flagged as anomalous", capsys.readouterr().out)
    assert (tmp_path / "hist.png").stat().st_size > 0


def test_threshold_for_any_tpr_from_the_calibration_scores(detector_file, tmp_path, capsys):
    detector = Detector.load(detector_file, device="cpu")
    assert detector.threshold_at(detector.meta["threshold_tpr"]) == detector.threshold
    calibration = detector.calibration
    for tpr in (0.5, 0.99):
        assert (calibration <= detector.threshold_at(tpr)).double().mean() >= tpr
    assert detector.threshold_at(0.5) < detector.threshold < detector.threshold_at(1.0) == calibration.max()
    with pytest.raises(ValueError, match=r"tpr=1.5 must be a share in \(0, 1\]"):
        detector.threshold_at(1.5)

    test = load_source({"format": "digits", "split": "test", "classes": [0, 1, 2, 3, 4]}, detector.data_size)
    np.save(tmp_path / "test.npy", np.asarray(test.images).transpose(0, 2, 3, 1))
    base = [f"detector={detector_file}", f"input={tmp_path}/test.npy", "device=cpu"]
    _, _, exported = score_images(compose_command("score", *base, f"out={tmp_path}/a.csv",
                                                  f"histogram={tmp_path}/h.png"))
    _, _, lenient = score_images(compose_command("score", *base, f"out={tmp_path}/b.csv", "tpr=0.5"))
    assert lenient.sum() > exported.sum()  # a lower TPR flags more in-distribution images
    assert 0.45 <= lenient.float().mean().item() <= 0.55  # these are the very images the detector calibrated on
    assert (tmp_path / "h.png").stat().st_size > 0


def test_a_detector_file_without_calibration_scores_asks_for_a_new_export(detector_file, tmp_path):
    state = torch.load(detector_file, weights_only=False)
    del state["calibration"]
    torch.save(state, tmp_path / "old.pt")
    detector = Detector.load(tmp_path / "old.pt", device="cpu")
    with pytest.raises(ValueError, match="export it again"):
        detector.threshold_at(0.99)


def test_score_npy(detector_file, tmp_path):
    array = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "x.npy", array)
    names, scores, _ = score_images(compose_command("score", f"detector={detector_file}", f"input={tmp_path}/x.npy",
                                             f"out={tmp_path}/s.csv", "device=cpu"))
    assert names[0] == "x.npy[0]" and scores.shape == (5,)


def test_evaluate_checkpoint_writes_results(trained, tmp_path):
    out = tmp_path / "eval" / "results.json"
    results = evaluate_checkpoint(compose_command("evaluate", f"ckpt={trained}/run/checkpoints/last.ckpt", f"out={out}",
                                           "eval.plots=true", "+add_ood.noise={format: synthetic, n: 40}"))
    assert out.is_file() and set(results["ood"]) == {"digits_5to9", "photos", "noise"}
    assert (out.parent / "plots" / "roc_curves.png").is_file()
    # the same checkpoint scores the same as at the end of training
    final = __import__("json").loads((trained / "run" / "results.json").read_text())
    assert results["ood"]["photos"]["auroc"] == pytest.approx(final["ood"]["photos"]["auroc"], abs=1e-6)


def test_detector_of_a_folder_run_is_calibrated_on_the_held_out_images(tmp_path, capsys):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (80, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "mine.npy", images)
    cfg = compose_cfg(tmp_path, "data=folder", f"data.path={tmp_path}/mine.npy", "data.holdout=0.25",
                      "data.num_workers=0", "trainer.max_epochs=1")
    train(cfg)
    out = tmp_path / "detector.pt"
    capsys.readouterr()
    export_detector(compose_command("export", f"ckpt={tmp_path}/run/checkpoints/last.ckpt", f"out={out}"))
    printed = capsys.readouterr().out
    assert "accepts 95% of the 20 in-distribution images of test" in printed
    assert "warning: the threshold was calibrated on only 20 in-distribution images (fewer than 200)" in printed
    assert "how many it needs: docs/howto/own-images.md#threshold-calibration" in printed
    page = (Path(__file__).resolve().parent.parent / "docs/howto/own-images.md").read_text(encoding="utf-8")
    assert "(threshold-calibration)=" in page
    assert "held-out quality not measured: the run has no OOD sets" in printed
    detector = Detector.load(out, device="cpu")
    assert detector.meta["threshold_from"] == "test"
    score_images(compose_command("score", f"detector={out}", f"input={tmp_path}/mine.npy", f"out={tmp_path}/s.csv",
                          "device=cpu"))
    printed = capsys.readouterr().out
    assert "of 80 images (" in printed and "note: the threshold was calibrated on only 20" in printed
    held_out = holdout_split(load_source({"format": "npy", "path": str(tmp_path / "mine.npy")}, 16), 0.25,
                             cfg.data.holdout_seed)[1]
    _, flags = detector.predict(torch.from_numpy(np.ascontiguousarray(held_out.images)))
    assert len(held_out) == 20 and (~flags).sum().item() == 19  # 95% of the 20 held-out images accepted


# ------------------------------------------------------------------------------------------ issue 11, items 1-3
def test_scores_are_one_readable_transform_of_eq6(detector_file):
    detector = Detector.load(detector_file, device="cpu")
    test = load_source({"format": "digits", "split": "test", "classes": [0, 1, 2, 3, 4]}, detector.data_size)
    photos = load_source({"format": "sklearn_photos", "n": 50}, detector.data_size)
    images = {name: torch.from_numpy(np.ascontiguousarray(s.images)) for name, s in (("in", test), ("out", photos))}
    readable = {name: detector.score(x) for name, x in images.items()}
    eq6 = {name: ood_score(detector.features(x), detector.bank.float(), detector.temperature).cpu()
           for name, x in images.items()}
    for name in images:
        assert torch.allclose(readable[name], 1 - detector.temperature * torch.log(-eq6[name]), rtol=0, atol=1e-12)
        assert ((readable[name] >= 0) & (readable[name] <= 2)).all() and (eq6[name] < -1).all()
    # the same ranking: the same AUROC, and the threshold and calibration on the same scale
    assert ood_metrics(readable["in"], readable["out"])["auroc"] == ood_metrics(eq6["in"], eq6["out"])["auroc"]
    assert 0 <= detector.threshold <= 2 and ((detector.calibration >= 0) & (detector.calibration <= 2)).all()


def test_a_detector_file_of_another_format_is_refused_with_the_way_to_a_new_one(detector_file, tmp_path):
    state = torch.load(detector_file, weights_only=True)
    state.update(format="ssad-detector-v1")  # the format of ssad 0.1 (Eq. 6 S, not R)
    torch.save(state, tmp_path / "v1.pt")
    with pytest.raises(InputError, match=r"v1\.pt is a detector file of format ssad-detector-v1, .*reads "
                                         r"ssad-detector-v2.*python -m ssad\.export ckpt="):
        Detector.load(tmp_path / "v1.pt", device="cpu")


def test_export_reports_calibration_size_and_held_out_quality(trained, detector_file):
    detector = Detector.load(detector_file, device="cpu")
    report = export_report(detector, "detector.pt")
    n = detector.calibration_size
    assert n == detector.meta["calibration_images"] == 271 and detector.calibration_note() is None
    assert f"accepts 95% of the {n} in-distribution images of test" in report and "warning" not in report
    quality = detector.meta["held_out_quality"]
    final = json.loads((trained / "run" / "results.json").read_text())
    for name in ("digits_5to9", "photos"):
        assert f"  {name}: AUROC {100 * quality[name]['auroc']:.1f}%, FPR95" in report
        # the detector (fp16 bank) measures what the run's evaluation measured
        assert quality[name]["auroc"] == pytest.approx(final["ood"][name]["auroc"], abs=0.01)
        assert quality[name]["fpr95"] == pytest.approx(final["ood"][name]["fpr95"], abs=0.02)


def test_predict_at_another_size_resizes_as_the_cli_does_and_says_so(detector_file, tmp_path):
    detector = Detector.load(detector_file, device="cpu")
    assert detector.data_size == 16
    big = torch.from_numpy(np.random.default_rng(3).integers(0, 256, (6, 3, 40, 28), dtype=np.uint8))
    with pytest.warns(UserWarning, match="images of size 40×28 resized to the detector's training size 16×16"):
        scores, flags = detector.predict(big)
    assert torch.equal(scores, detector.score(torch.from_numpy(resize_to(big.numpy(), 16))))
    np.save(tmp_path / "big.npy", big.numpy())
    _, cli_scores, cli_flags = score_images(compose_command("score", f"detector={detector_file}",
                                                     f"input={tmp_path}/big.npy", f"out={tmp_path}/s.csv",
                                                     "device=cpu"))
    assert torch.equal(scores, cli_scores) and torch.equal(flags, cli_flags)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        detector.predict(torch.from_numpy(resize_to(big.numpy(), 16)))  # the training size: no warning


def test_export_scores_a_copy_of_a_cached_set_not_its_read_only_memory_map(tmp_path):
    """A cached set is a read-only memory map; PyTorch warns on a tensor over it, so export scores a copy."""
    np.save(tmp_path / "images.npy", np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4))
    cached = np.load(tmp_path / "images.npy", mmap_mode="r")
    images = _images(SimpleNamespace(images=cached))
    assert torch.equal(images, torch.from_numpy(np.array(cached)))
    assert not np.shares_memory(images.numpy(), cached)
