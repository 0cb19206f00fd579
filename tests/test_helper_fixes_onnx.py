"""``python -m ssad.score`` with an ``.onnx`` detector imports no PyTorch: run in a subprocess where importing torch
(or timm, torchvision, Lightning, torchmetrics) fails as on a deploy machine without it, it scores a folder of PNGs
and a ``.npy`` array, writes the histogram and the HTML report, and gives the scores of the in-process command."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssad.score import score_images
from tests.conftest import HANG_S, compose_command
from tests.test_public_api import BLOCKER

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from ssad.deploy.onnx_export import export_onnx  # noqa: E402
from tests.test_onnx import _png_folder, tiny_detector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TORCH = ("torch", "torchvision", "timm", "lightning", "lightning_fabric", "pytorch_lightning", "torchmetrics")
SCORE = """
import runpy
sys.argv = ["ssad.score", *sys.argv[2:]]
try:
    runpy.run_module("ssad.score", run_name="__main__")
finally:
    print("loaded:", sorted({m.split(".")[0] for m in sys.modules} & BLOCKED))
"""


def scores(path: Path) -> dict[str, float]:
    return {r["file"]: float(r["score"]) for r in csv.DictReader(path.open())}


@pytest.fixture(scope="module")
def onnx_detector(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "detector.onnx"
    export_onnx(tiny_detector("cnn_small"), path)
    return path


def test_scoring_an_onnx_detector_imports_no_torch(onnx_detector: Path, tmp_path: Path) -> None:
    folder = _png_folder(tmp_path / "new", n=5, size=20)
    array = np.stack([np.asarray(__import__("PIL.Image").Image.open(p)) for p in sorted(folder.iterdir())])
    np.save(tmp_path / "new.npy", array)  # N×H×W×3 at another size than the training size: resized on the way
    for source in (folder, tmp_path / "new.npy"):
        name = source.stem
        args = [f"detector={onnx_detector}", f"input={source}", f"out={tmp_path}/{name}.csv",
                f"histogram={tmp_path}/{name}.png", f"report={tmp_path}/{name}_report", "tpr=0.9", "device=cpu"]
        done = subprocess.run([sys.executable, "-c", BLOCKER + SCORE, ",".join(TORCH), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=HANG_S)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "loaded: []" in done.stdout, done.stdout[-2000:]
        assert (tmp_path / f"{name}.png").is_file() and (tmp_path / f"{name}_report" / "index.html").is_file()
        score_images(compose_command("score", *(a.replace(f"{name}.csv", f"{name}_here.csv") for a in args[:3]),
                                     "tpr=0.9", "device=cpu"))
        without, within = scores(tmp_path / f"{name}.csv"), scores(tmp_path / f"{name}_here.csv")
        assert len(without) == 5 and without.keys() == within.keys()
        assert [without[k] for k in within] == pytest.approx(list(within.values()), abs=1e-9)


def test_the_blocker_blocks_torch() -> None:
    done = subprocess.run([sys.executable, "-c", BLOCKER + "import torch", ",".join(TORCH)], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode != 0 and "No module named 'torch'" in done.stderr


def test_a_pt_detector_without_torch_is_one_error_line_naming_the_onnx_way(tmp_path: Path) -> None:
    image = _png_folder(tmp_path / "new", n=1) / "img0.png"
    (tmp_path / "detector.pt").write_bytes(b"")  # never read: the missing PyTorch is found first
    args = [f"detector={tmp_path}/detector.pt", f"input={image}", f"out={tmp_path}/s.csv"]
    done = subprocess.run([sys.executable, "-c", BLOCKER + SCORE, ",".join(TORCH), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.stderr.startswith("error: detector=") and "torch is not installed" in done.stderr
    assert "out=detector.onnx" in done.stderr and not (tmp_path / "s.csv").exists()
