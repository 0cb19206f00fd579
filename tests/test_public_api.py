"""The public API (ssad/__init__.py) and the scoring path's dependencies (issue 33 items 2 and 8)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssad
from ssad.method.backbones import build_backbone
from tests.conftest import HANG_S

ROOT = Path(__file__).resolve().parents[1]
# the extras' packages (pyproject.toml): scoring with a detector file needs none of them. torchvision is not among
# them: timm, which the scoring path needs for the ViT backbones, requires it.
EXTRAS = ("lightning", "lightning_fabric", "pytorch_lightning", "hydra", "hydra_plugins", "omegaconf", "wandb",
          "submitit", "matplotlib", "sklearn", "scipy", "torchmetrics")

BLOCKER = """
import importlib.machinery, sys
BLOCKED = set(sys.argv[1].split(","))

class Missing:  # what an absent package does: its import raises ModuleNotFoundError
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked by the test)", name=spec.name)

    def exec_module(self, module):
        raise AssertionError("unreachable")

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, Missing())
        return None

sys.meta_path.insert(0, Block())
"""


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=HANG_S)


def test_the_public_names_resolve_and_say_what_they_are() -> None:
    from ssad import Detector, SSADModule  # noqa: F401  (the import a user writes)

    assert "__version__" in ssad.__all__ and len(set(ssad.__all__)) == len(ssad.__all__)
    for name in ssad.__all__:
        value = getattr(ssad, name)
        if name != "__version__":
            assert value.__doc__ and value.__doc__.strip(), f"ssad.{name} has no docstring"
            assert value.__module__.startswith("ssad."), name
    assert set(ssad.__all__) == {*ssad._EXPORTS, "__version__"}  # every name is exported and lazily importable
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    assert ssad.__version__ == version == "0.2.0"
    assert ssad.distillation_loss.__module__ == "ssad.method.losses" and "Eq. 3" in ssad.distillation_loss.__doc__


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        ssad.NoSuchThing  # noqa: B018
    except AttributeError as err:
        assert "NoSuchThing" in str(err)
    else:
        raise AssertionError("ssad.NoSuchThing resolved")


def test_importing_ssad_and_the_detector_loads_neither_lightning_nor_hydra() -> None:
    code = ("import sys, json, ssad; light = sorted(m for m in sys.modules if m.startswith(('torch', 'lightning')));"
            "from ssad import Detector; print(json.dumps([light, sorted({m.split('.')[0] for m in sys.modules})]))")
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    before, after = json.loads(done.stdout)
    assert before == []  # import ssad alone imports no torch
    # the training stack stays out (timm itself imports wandb where it is installed: optional, as for every timm user)
    assert not set(after) & {"lightning", "lightning_fabric", "hydra", "omegaconf", "torchmetrics", "matplotlib"}


def _detector_file(tmp_path: Path) -> tuple[Path, Path, list[float]]:
    """A detector file written by the current code (a small CNN, its bank the features of 32 random images, a
    threshold calibrated on 16 others), a folder of PNG images and the scores this process gives them."""
    from ssad import Detector
    from ssad.scoring.metrics import threshold_at_tpr

    torch.manual_seed(0)
    args = {"builder": "small_cnn", "width": 4, "depth": 2}
    backbone = build_backbone(args["builder"], **{k: v for k, v in args.items() if k != "builder"})
    images = torch.randint(0, 256, (56, 3, 16, 16), dtype=torch.uint8)
    probe = Detector(backbone, torch.zeros(1, 1), args, 16, 16, 0.04, 0.0)
    bank = probe.features(images[:32])
    fitted = Detector(backbone, bank, args, 16, 16, 0.04, 0.0)
    calibration = fitted.score(images[32:48])
    detector = Detector(backbone, bank, args, 16, 16, 0.04, threshold_at_tpr(calibration, 0.95),
                        calibration=calibration)
    path = detector.save(tmp_path / "detector.pt")
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(images[48:]):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    names, scores, _ = detector.score_files(folder)
    assert names == sorted(names)
    return path, folder, scores.tolist()


def test_a_detector_scores_images_without_the_extras(tmp_path: Path) -> None:
    """Load a detector file and score a folder of images and an array through the Python API in a process where
    importing any extra's package (Lightning, Hydra, OmegaConf, W&B, submitit, matplotlib, scikit-learn, SciPy,
    torchmetrics) raises ImportError, as it would in a fresh venv with only the scoring dependencies (torch, timm,
    NumPy, Pillow: ``pip install ssad``); the same check without building such a venv (no network here). The
    scores equal those of this process, which has every package."""
    path, folder, expected = _detector_file(tmp_path)
    code = BLOCKER + f"""
import json
import numpy as np
import pytest
import torch
from ssad import Detector
detector = Detector.load({str(path)!r}, device="cpu")
names, scores, flags = detector.score_files({str(folder)!r})
array = np.stack([np.asarray(__import__("PIL.Image").Image.open({str(folder)!r} + "/" + n)) for n in names])
again, _ = detector.predict(torch.from_numpy(array).permute(0, 3, 1, 2).contiguous())
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & BLOCKED)
print(json.dumps({{"names": names, "scores": scores.tolist(), "again": again.tolist(), "flags": flags.tolist(),
                  "loaded": loaded}}))
"""
    done = run_python(code, ",".join(EXTRAS))
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert len(out["names"]) == 8 and np.allclose(out["scores"], expected) and np.allclose(out["again"], expected)
    blocked = run_python(BLOCKER + "import lightning", ",".join(EXTRAS))  # the blocker does block
    assert blocked.returncode != 0 and "No module named 'lightning'" in blocked.stderr


def test_the_scoring_dependencies_hold_no_extra() -> None:
    """pyproject.toml: the install without extras is what scoring needs; every extra's package is in an extra."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=\[; ]", d)[0].lower() for d in project["dependencies"]}
    assert core == {"torch", "timm", "numpy", "pillow", "tqdm"}
    extras = project["optional-dependencies"]
    named = {re.split(r"[<>=\[; ]", d)[0].lower() for group in extras.values() for d in group}
    for package in ("lightning", "hydra-core", "omegaconf", "torchmetrics", "wandb", "hydra-submitit-launcher",
                    "matplotlib", "scikit-learn", "scipy"):
        assert package in named and package not in core, package
    assert {"train", "wandb", "slurm", "all", "dev"} <= set(extras)
    assert set(re.findall(r"ssad\[([^\]]+)\]", extras["all"][0])[0].split(",")) >= {"train", "wandb", "slurm"}
