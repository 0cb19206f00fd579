import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from ssad.data.datamodule import holdout_split
from ssad.data.sources import load_source
from ssad.detector import Detector
from ssad.evaluate import evaluate_checkpoint
from ssad.export import export_detector
from ssad.metrics import threshold_at_tpr
from ssad.score import score_images
from ssad.train import CONFIG_DIR, train
from tests.conftest import compose_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("detector")
    train(compose_cfg(tmp, "negatives=rot_indist", "trainer.max_epochs=1"))
    return tmp


def _compose(name: str, *overrides: str):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        extra = [] if name == "score" else ["eval.settings.progress=false"]
        return compose(name, overrides=[*extra, *overrides])


@pytest.fixture(scope="module")
def detector_file(trained) -> Path:
    out = trained / "detector.pt"
    export_detector(_compose("export", f"ckpt={trained}/run/checkpoints/last.ckpt", f"out={out}"))
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
        score_images(_compose("score", *base))
    assert not out.exists()
    with pytest.warns(UserWarning, match="corrupt.jpg"):
        names, scores, flags = score_images(_compose("score", *base, "on_error=skip",
                                                     f"histogram={tmp_path}/hist.png"))
    rows = list(csv.DictReader(out.open()))
    assert [r["file"] for r in rows] == names == ["gray16.png", "img0.png", "img1.png", "img2.png"]
    assert [float(r["score"]) for r in rows] == pytest.approx(scores.tolist(), rel=1e-6)
    assert "images flagged as anomalous" in capsys.readouterr().out
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
    np.save(tmp_path / "test.npy", np.ascontiguousarray(test.images.transpose(0, 2, 3, 1)))
    base = [f"detector={detector_file}", f"input={tmp_path}/test.npy", "device=cpu"]
    _, _, exported = score_images(_compose("score", *base, f"out={tmp_path}/a.csv", f"histogram={tmp_path}/h.png"))
    _, _, lenient = score_images(_compose("score", *base, f"out={tmp_path}/b.csv", "tpr=0.5"))
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
    names, scores, _ = score_images(_compose("score", f"detector={detector_file}", f"input={tmp_path}/x.npy",
                                             f"out={tmp_path}/s.csv", "device=cpu"))
    assert names[0] == "x.npy[0]" and scores.shape == (5,)


def test_evaluate_checkpoint_writes_results(trained, tmp_path):
    out = tmp_path / "eval" / "results.json"
    results = evaluate_checkpoint(_compose("evaluate", f"ckpt={trained}/run/checkpoints/last.ckpt", f"out={out}",
                                           "eval.plots=true", "+add_ood.noise={format: synthetic, n: 40}"))
    assert out.is_file() and set(results["ood"]) == {"digits_5to9", "photos", "noise"}
    assert (out.parent / "plots" / "roc_curves.png").is_file()
    # the same checkpoint scores the same as at the end of training
    final = __import__("json").loads((trained / "run" / "results.json").read_text())
    assert results["ood"]["photos"]["auroc"] == pytest.approx(final["ood"]["photos"]["auroc"], abs=1e-6)


def test_detector_of_a_folder_run_is_calibrated_on_the_held_out_images(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (80, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "mine.npy", images)
    train(compose_cfg(tmp_path, "data=folder", f"data.path={tmp_path}/mine.npy", "data.holdout=0.25",
                      "data.num_workers=0", "trainer.max_epochs=1"))
    out = tmp_path / "detector.pt"
    export_detector(_compose("export", f"ckpt={tmp_path}/run/checkpoints/last.ckpt", f"out={out}"))
    detector = Detector.load(out, device="cpu")
    assert detector.meta["threshold_from"] == "test"
    held_out = holdout_split(load_source({"format": "npy", "path": str(tmp_path / "mine.npy")}, 16), 0.25)[1]
    _, flags = detector.predict(torch.from_numpy(np.ascontiguousarray(held_out.images)))
    assert len(held_out) == 20 and (~flags).sum().item() == 19  # 95% of the 20 held-out images accepted
