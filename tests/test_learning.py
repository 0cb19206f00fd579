"""The quick-start preset learns on a real labelled set: Fashion-MNIST, class-split (0–4 in, 5–9 near-OOD),
through the documented command line. A few minutes of training: run by ``make test-learning``, not ``make test``.

The embedded sets cannot show it (README "Quick-start": on the font letters training lowers near-OOD AUROC),
so this test reads Fashion-MNIST's real idx files where Debian's ``dataset-fashion-mnist`` package put them
(CI installs it; elsewhere the test is skipped and says how to get the files).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssad.data.benchmarks import mnist
from tests.test_class_split import class_split_overrides

ROOT = Path(__file__).parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
pytestmark = [pytest.mark.learning,
              pytest.mark.skipif(not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                                 reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist")]


def write_subset(folder: Path, n_train: int = 5000, n_test: int = 2000) -> None:
    """A seeded subset of Fashion-MNIST as the .npy files of the class-split command (gray N×28×28 uint8);
    the far-OOD array beside it is uniform noise."""
    rng = np.random.default_rng(0)
    for split, n, prefix in (("train", n_train, "tr"), ("test", n_test, "te")):
        images, labels = mnist(str(FASHION_MNIST), 28, split)
        keep = rng.permutation(len(images))[:n]
        np.save(folder / f"{prefix}_x.npy", images[keep, 0])
        np.save(folder / f"{prefix}_y.npy", labels[keep])


def test_demo_preset_learns_on_fashion_mnist_beyond_the_untrained_network(tmp_path):
    write_subset(tmp_path)
    np.save(tmp_path / "other_x.npy", np.random.default_rng(1).integers(0, 256, (200, 28, 28), dtype=np.uint8))
    run = tmp_path / "RUN"
    common = [*class_split_overrides(tmp_path), "logger=none", "eval.plots=false", "eval.settings.progress=false",
              "++trainer.enable_progress_bar=false", f"hydra.run.dir={run}"]
    for module in ("ssad.baselines", "ssad.train"):
        proc = subprocess.run([sys.executable, "-m", module, *common], cwd=ROOT, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    trained = json.loads((run / "results.json").read_text())["ood"]["near"]["auroc"]
    baselines = json.loads((run / "baselines.json").read_text())
    untrained = baselines["untrained"]["ood"]["near"]["auroc"]
    # measured (seed 0, 6 epochs = 468 steps): untrained 0.84, trained 0.92, raw pixels 0.90
    assert trained > untrained + 0.04, (trained, untrained, baselines["raw_pixels"]["ood"]["near"]["auroc"])
