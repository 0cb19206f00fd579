"""The OpenOOD v1.5 presets: composed from the real conf/ tree, and read end to end from tiny files written in each
set's real format (CIFAR pickles, SVHN .mat, MNIST idx, image folders for TIN, Texture and Places365)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image
from scipy.io import savemat

from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate
from ssad.data.sources import check_ood_groups
from tests.conftest import compose_cfg
from tests.test_formats import random_images, write_cifar10, write_pickle
from tests.test_idx import write_split

FAR = ["mnist", "svhn", "texture", "places365"]
NEAR = {"openood_cifar10": ["cifar100", "tin"], "openood_cifar100": ["cifar10", "tin"]}
FORMATS = {"cifar10": "cifar10", "cifar100": "cifar100", "tin": "tinyimagenet", "mnist": "mnist", "svhn": "svhn",
           "texture": "dtd", "places365": "places365"}


@pytest.mark.parametrize("preset", ["openood_cifar10", "openood_cifar100"])
def test_experiment_presets_are_the_paper_setting_on_openood_sets(preset):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={preset}"])
        paper = compose("train", overrides=[f"experiment={preset.removeprefix('openood_')}"])
    validate(cfg)  # every key is one the code reads, every value in range
    assert cfg.task_name == cfg.data.name == preset
    groups = OmegaConf.to_container(cfg.data.ood_groups)
    assert groups == {"near": NEAR[preset], "far": FAR}
    assert list(cfg.data.ood) == [*NEAR[preset], *FAR]
    assert {name: spec.format for name, spec in cfg.data.ood.items()} == {n: FORMATS[n] for n in cfg.data.ood}
    assert cfg.data.ood.mnist.split == "all" and cfg.data.train == paper.data.train
    for key in ("model", "negatives", "optim", "trainer", "augment"):  # everything but the data is the paper's
        assert cfg[key] == paper[key], key


def test_ood_groups_must_name_ood_sets():
    ood = {"cifar100": {}, "svhn": {}}
    assert check_ood_groups(None, ood) == {}
    assert check_ood_groups({"near": ["cifar100"], "far": ["svhn"]}, ood) == {"near": ["cifar100"], "far": ["svhn"]}
    with pytest.raises(ValueError, match=r"data.ood_groups.far names \['places365'\].*\['cifar100', 'svhn'\]"):
        check_ood_groups({"near": ["cifar100"], "far": ["svhn", "places365"]}, ood)
    with pytest.raises(ValueError, match="mapping of group names to lists"):
        check_ood_groups({"near": "cifar100"}, ood)


def _folder(root: Path, n: int, side: int, classes: int = 1) -> None:
    """``n`` JPEG files of ``side``² in ``classes`` class folders (as TIN, DTD and Places365 ship)."""
    rng = np.random.default_rng(side)
    for i in range(n):
        path = root / f"class{i % classes}" / f"{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)


def write_openood_files(data: Path) -> None:
    """Tiny files in each set's real format where the data=openood_cifar10 preset looks for them."""
    write_cifar10(data / "cifar10", random_images(20, 32, 1), np.arange(20) % 10, random_images(6, 32, 2))
    test = random_images(5, 32, 3)
    write_pickle(data / "cifar100" / "cifar-100-python" / "test", {b"data": test.reshape(5, -1),
                                                                   b"fine_labels": list(range(5))})
    write_split(data / "mnist", "train", 4, gz=True)
    write_split(data / "mnist", "test", 3, gz=True)
    (data / "svhn").mkdir(parents=True)
    savemat(data / "svhn" / "test_32x32.mat", {"X": random_images(7, 32, 4).transpose(2, 3, 1, 0),
                                               "y": np.arange(1, 8)[:, None]})
    _folder(data / "openood" / "tin", 4, 64)
    _folder(data / "dtd" / "images", 6, 40, classes=3)
    _folder(data / "openood" / "places365", 5, 48, classes=5)


def test_openood_cifar10_reads_every_set_from_its_real_format(tmp_path):
    write_openood_files(tmp_path / "data")
    cfg = compose_cfg(tmp_path, "data=openood_cifar10", "data.size=32")
    datamodule = instantiate(cfg.data)
    datamodule.check_sources()
    sets = datamodule.eval_sets()
    sizes = {name: len(data) for name, data in sets.items()}
    assert sizes == {"train": 20, "test": 6, "cifar100": 5, "tin": 4, "mnist": 7, "svhn": 7, "texture": 6,
                     "places365": 5}
    assert all(data.images.shape[1:] == (3, 32, 32) for data in sets.values())
    assert datamodule.ood_groups == {"near": ["cifar100", "tin"], "far": FAR}
    mnist = np.asarray(sets["mnist"].images)
    assert (mnist[:, 0] == mnist[:, 2]).all()  # gray digits as three equal channels


def test_a_missing_set_fails_at_start_up_naming_it(tmp_path):
    write_openood_files(tmp_path / "data")
    for path in (tmp_path / "data" / "mnist").glob("train-*"):
        path.unlink()
    datamodule = instantiate(compose_cfg(tmp_path, "data=openood_cifar10", "data.size=32").data)
    with pytest.raises(FileNotFoundError, match="data.ood.mnist: .*train-images-idx3-ubyte"):
        datamodule.check_sources()
    with pytest.raises(InstantiationException, match="data.ood_groups.far names .*places365"):
        instantiate(compose_cfg(tmp_path, "data=openood_cifar10", "~data.ood.places365").data)
