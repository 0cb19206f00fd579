"""ONNX export and scoring (issue 36): the ONNX graph scores as the .pt detector does, the score command and the
stand-alone script of docs/howto/deploy-onnx.md read it, and every entry point reads and resizes images one way."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssad.deploy.detector import Detector
from ssad.deploy.inputs import read_input, resize_to
from ssad.method.backbones import build_backbone
from ssad.score import score_images
from tests.conftest import HANG_S, compose_command

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ssad.deploy.onnx_export import export_onnx  # noqa: E402
from ssad.deploy.onnx_scoring import OnnxDetector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "score_onnx.py"
BACKBONES = {  # tiny untrained backbones: (builder arguments, training size, view size)
    "cnn_small": ({"builder": "small_cnn", "width": 8, "depth": 3, "layer_norm": True}, 16, 24),
    # scored by f and a grid of block 2 (the CPU recipe's descriptor)
    "cnn_small_grid": ({"builder": "small_cnn", "width": 8, "depth": 3, "feature_shift": 0.5, "grid_block": 2,
                        "f_weight": 1.5}, 16, 24),
    "resnet18": ({"builder": "resnet18_cifar"}, 16, 16),
    "vit_tiny": ({"builder": "vit_backbone", "name": "vit_tiny_patch16_224", "img_size": 32, "patch_size": 8,
                  "depth": 2, "embed_dim": 48, "num_heads": 3}, 24, 32),
}


def random_images(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random uint8 images (N, 3, size, size): blurred noise, so that features differ between images."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    return torch.from_numpy(resize_to(coarse, size))


def tiny_detector(kind: str = "cnn_small", bank: int = 40, thumbnails: bool = True, scorer=None) -> Detector:
    """A Detector built as ssad.export builds one, on random images, with calibration scores and a threshold at
    their 80% quantile (not equal to any score); ``scorer``: its score (None: Eq. 6)."""
    args, data_size, view_size = BACKBONES[kind]
    torch.manual_seed(0)
    plain = dict(args)
    backbone = build_backbone(plain.pop("builder"), **plain).eval()
    for module in backbone.modules():  # BatchNorm statistics other than the identity, as after training
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    train = random_images(bank, data_size, 1)
    detector = Detector(backbone, torch.zeros(1, 1), args, data_size, view_size, 0.04, 0.0,
                        meta={"dataset": "tiny", "variant": "rot_indist", "seed": 0, "checkpoint": "run/last.ckpt",
                              "threshold_tpr": 0.8, "threshold_from": "test",
                              "held_out_quality": {"photos": {"auroc": 0.91, "fpr95": 0.3, "flagged": 0.5}}},
                        scorer=scorer)
    detector.bank = detector.features(train).half()
    calibration = detector.score(random_images(30, data_size, 2))
    detector.calibration = calibration
    ordered = calibration.sort().values
    detector.threshold = float((ordered[23] + ordered[24]) / 2)  # 24 of 30 = 80% accepted
    if thumbnails:
        detector.thumbnails = torch.from_numpy(resize_to(train.numpy(), min(64, data_size)))
    return detector


@pytest.mark.parametrize("kind", list(BACKBONES))
def test_onnx_graph_scores_as_the_pt_detector(kind, tmp_path, capsys):
    detector = tiny_detector(kind)
    path = export_onnx(detector, tmp_path / "detector.onnx")
    model = onnx.load(path)
    props = {p.key: p.value for p in model.metadata_props}
    assert float(props["threshold"]) == detector.threshold and props["threshold_tpr"] == "0.8"
    assert props["calibration_images"] == "30" and props["data_size"] == str(detector.data_size)
    assert props["temperature"] == "0.04" and props["checkpoint"] == "run/last.ckpt" and props["ssad_version"]
    assert json.loads(props["run"]) == {"dataset": "tiny", "variant": "rot_indist", "seed": 0}

    onnx_detector = OnnxDetector(path)
    images = torch.cat([random_images(25, detector.data_size, 3), random_images(5, detector.data_size, 4) // 3])
    expected, expected_flags = detector.predict(images)
    for batch in (1, 7, 64):  # dynamic batch size
        scores, flags = onnx_detector.predict(images.numpy(), batch_size=batch)
        delta = np.abs(scores - expected.numpy()).max()
        assert delta <= 1e-4, (kind, batch, delta)
        assert np.array_equal(flags, expected_flags.numpy())
    with capsys.disabled():
        print(f"\n{kind}: max |ΔR| onnx vs pt = {delta:.2e} over {len(images)} images")
    assert 0 < expected_flags.sum() < len(images)  # the flags compared are not all alike

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in model.graph.input] == ["images", "threshold"]  # threshold: an input with a default
    assert [i.name for i in session.get_overridable_initializers()] == ["threshold"]
    _, default_flags, _, _ = session.run(None, {"images": images.numpy()})  # threshold not fed: the exported one
    assert np.array_equal(default_flags, expected_flags.numpy())
    strict = detector.threshold_at(1.0)
    _, strict_flags, _, _ = session.run(None, {"images": images.numpy(), "threshold": np.array(strict, np.float32)})
    assert np.array_equal(strict_flags, detector.predict(images, threshold=strict)[1].numpy())
    index, similarity = onnx_detector.neighbours(images.numpy())
    pt_index, pt_similarity = detector.neighbours(images)
    assert index.shape == (len(images), 5) and np.abs(similarity - pt_similarity.numpy()).max() < 1e-4
    assert (index[:, 0] == pt_index[:, 0].numpy()).mean() > 0.9  # ties between nearly equal cosines may swap


def _png_folder(root: Path, n: int = 6, size: int = 20) -> Path:
    root.mkdir()
    images = random_images(n, size, 5).numpy()
    for i, image in enumerate(images):
        Image.fromarray(image.transpose(1, 2, 0)).save(root / f"img{i}.png")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open()))


def test_score_command_reads_onnx_and_the_stand_alone_script_agrees(tmp_path):
    detector = tiny_detector("cnn_small")
    detector.save(tmp_path / "detector.pt")
    export_onnx(detector, tmp_path / "detector.onnx")
    folder = _png_folder(tmp_path / "new")
    for name in ("pt", "onnx"):
        score_images(compose_command("score", f"detector={tmp_path}/detector.{name}", f"input={folder}",
                                     f"out={tmp_path}/{name}.csv", "device=cpu"))
    pt, via_onnx = _rows(tmp_path / "pt.csv"), _rows(tmp_path / "onnx.csv")
    assert [r["file"] for r in pt] == [r["file"] for r in via_onnx]
    assert [r["anomalous"] for r in pt] == [r["anomalous"] for r in via_onnx]
    assert np.abs(np.array([float(r["score"]) for r in pt]) - [float(r["score"]) for r in via_onnx]).max() <= 1e-4
    scores = [float(r["score"]) for r in pt]
    assert scores == sorted(scores, reverse=True) and [r["rank"] for r in pt] == [str(i) for i in range(1, 7)]

    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "detector.onnx"), str(folder),
                           str(tmp_path / "script.csv")], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    script = _rows(tmp_path / "script.csv")
    assert [r["file"] for r in script] == [r["file"] for r in via_onnx]
    assert [float(r["score"]) for r in script] == pytest.approx([float(r["score"]) for r in via_onnx], abs=1e-7)
    assert [r["anomalous"] for r in script] == [r["anomalous"] for r in via_onnx]
    source = SCRIPT.read_text()
    assert "import torch" not in source and "ssad" not in source.split('"""')[2]  # nothing but ort, numpy, Pillow


def test_api_and_command_line_give_one_score_for_one_png(tmp_path):
    """A PNG at another size than the training size: the score command, Detector.score_files and predict on the
    decoded array all resize it once, the same way."""
    detector = tiny_detector("cnn_small")
    detector.save(tmp_path / "detector.pt")
    folder = _png_folder(tmp_path / "new", n=3, size=37)
    png = folder / "img1.png"
    names, cli_scores, _ = score_images(compose_command("score", f"detector={tmp_path}/detector.pt", f"input={png}",
                                                        f"out={tmp_path}/one.csv", "device=cpu"))
    loaded = Detector.load(tmp_path / "detector.pt", device="cpu")
    file_names, api_scores, _ = loaded.score_files(png)
    decoded = torch.from_numpy(np.asarray(Image.open(png).convert("RGB")).transpose(2, 0, 1).copy())[None]
    with pytest.warns(UserWarning, match="resized to the detector's training size") as caught:
        array_scores, _ = loaded.predict(decoded)
    assert names == file_names == ["img1.png"]
    assert float(cli_scores[0]) == float(api_scores[0]) == float(array_scores[0])
    assert caught[0].filename == __file__  # the warning names the caller's line, not one inside ssad
    _, folder_images = read_input(folder, detector.data_size)
    _, one_image = read_input(png, detector.data_size)
    assert np.array_equal(folder_images[1], one_image[0])


def test_export_command_writes_onnx_by_suffix_or_format(tmp_path):
    from ssad.export import export_detector
    from ssad.training.run import train
    from tests.conftest import compose_cfg

    train(compose_cfg(tmp_path, "negatives=rot_indist", "trainer.max_epochs=1"))
    ckpt = f"ckpt={tmp_path}/run/checkpoints/last.ckpt"
    pt = export_detector(compose_command("export", ckpt, f"out={tmp_path}/d.pt"))
    export_detector(compose_command("export", ckpt, f"out={tmp_path}/d.onnx"))
    export_detector(compose_command("export", ckpt, f"out={tmp_path}/d.model", "format=onnx"))
    assert onnx.load(tmp_path / "d.model").graph.input[0].name == "images"
    onnx_detector = OnnxDetector(tmp_path / "d.onnx")
    assert onnx_detector.threshold == pytest.approx(pt.threshold, rel=1e-12)
    assert onnx_detector.meta["threshold_from"] == pt.meta["threshold_from"]
    assert pt.thumbnails is not None and len(pt.thumbnails) == len(pt.bank)
    images = random_images(8, pt.data_size, 7)
    expected, flags = pt.predict(images)
    scores, onnx_flags = onnx_detector.predict(images.numpy())
    assert np.abs(scores - expected.numpy()).max() <= 1e-4 and np.array_equal(onnx_flags, flags.numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small = export_detector(compose_command("export", ckpt, f"out={tmp_path}/small.pt", "thumbnails_max=3"))
    assert small.thumbnails is None and Detector.load(tmp_path / "small.pt", device="cpu").thumbnails is None


@pytest.mark.parametrize("kind", ["cnn_small", "cnn_small_grid"])
def test_a_nearest_neighbour_detector_exports_and_scores_as_the_pt(kind, tmp_path):
    from ssad.scoring.scores import NearestNeighbourScore

    detector = tiny_detector(kind, scorer=NearestNeighbourScore())
    path = export_onnx(detector, tmp_path / "d.onnx")
    onnx_detector = OnnxDetector(path)
    assert {p.key: p.value for p in onnx.load(path).metadata_props}["score"] == "nn"
    images = torch.cat([random_images(25, detector.data_size, 3), random_images(5, detector.data_size, 4) // 3])
    expected, expected_flags = detector.predict(images)
    scores, flags = onnx_detector.predict(images.numpy())
    assert np.abs(scores - expected.numpy()).max() <= 1e-4 and np.array_equal(flags, expected_flags.numpy())
    assert 0 < expected_flags.sum() < len(images)
    _, similarity = onnx_detector.neighbours(images.numpy())
    assert np.allclose(1.0 - similarity[:, 0], scores, atol=1e-6)  # the score is one minus the nearest cosine


def test_onnx_export_refuses_a_detector_that_publishes_another_score(tmp_path):
    from ssad.scoring.scores import KthNeighbourScore

    detector = tiny_detector("cnn_small", scorer=KthNeighbourScore(3))
    with pytest.raises(ValueError, match="computes Eq. 6 or its 1-NN limit .* publishes the 'knn' score"):
        export_onnx(detector, tmp_path / "d.onnx")
    assert not (tmp_path / "d.onnx").exists()


def test_the_calibration_image_at_the_threshold_is_flagged_as_the_pt_does(tmp_path):
    """A threshold picked on the calibration scores is one of them: the float32 graph must not flag that image."""
    detector = tiny_detector("cnn_small")
    detector.threshold = detector.threshold_at(0.8)
    calibration_images = random_images(30, detector.data_size, 2)  # the images tiny_detector calibrated on
    expected = detector.predict(calibration_images)[1].numpy()
    assert expected.sum() == 6  # 24 of 30 accepted, the one at the threshold among them
    path = export_onnx(detector, tmp_path / "d.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert np.array_equal(session.run(None, {"images": calibration_images.numpy()})[1], expected)
    onnx_detector = OnnxDetector(path)
    assert np.array_equal(onnx_detector.predict(calibration_images.numpy())[1], expected)
    lenient = detector.threshold_at(0.5)
    assert np.array_equal(onnx_detector.predict(calibration_images.numpy(), threshold=lenient)[1],
                          detector.predict(calibration_images, threshold=lenient)[1].numpy())
