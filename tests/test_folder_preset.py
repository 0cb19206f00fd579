"""``data=folder`` as a practitioner runs it: DataLoader workers that fit the machine, unreadable files skipped
with the documented override."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from ssad.config.keys import CONFIG_DIR
from ssad.data import loaders as dm
from ssad.data.readers.images import UnreadableFilesError
from tests.conftest import compose_cfg


@pytest.mark.parametrize("cpus,processes,expected", [(1, 1, 0), (2, 1, 1), (3, 1, 2), (8, 1, 4), (64, 1, 4),
                                                     (16, 4, 3), (4, 4, 0)])
def test_auto_workers_follow_the_cpus(monkeypatch, cpus, processes, expected):
    monkeypatch.setattr(dm, "available_cpus", lambda: cpus)
    assert dm.resolve_num_workers("auto", processes) == expected
    assert dm.resolve_num_workers(3, processes) == 3
    with pytest.raises(ValueError, match="data.num_workers=-1"):
        dm.resolve_num_workers(-1)


def _folder(root: Path, n: int = 24, broken: int = 0) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(root / f"{i}.png")
    for i in range(broken):
        (root / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    return root


def test_folder_preset_on_two_cores_starts_no_more_workers_than_cpus(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})  # what PyTorch and Lightning count
    cfg = compose_cfg(tmp_path, "data=folder", f"data.path={_folder(tmp_path / 'mine')}", "data.batch_size=8",
                      "negatives=rot_indist")
    assert cfg.data.num_workers == "auto"  # the preset's default, not a fixed 4
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # PyTorch warns when a DataLoader asks for more workers than CPUs
        loaders = datamodule.train_dataloader().flattened
    assert [loader.num_workers for loader in loaders] == [1, 1]


def test_data_on_error_skip_leaves_unreadable_files_out(tmp_path):
    folder = _folder(tmp_path / "mine", n=20, broken=2)
    base = ["data=folder", f"data.path={folder}", "data.size=16", "data.batch_size=8"]
    with pytest.raises(UnreadableFilesError) as err:
        instantiate(compose_cfg(tmp_path, *base).data).setup()
    assert "broken0.jpg" in str(err.value) and "set data.on_error=skip to leave them out" in str(err.value)
    datamodule = instantiate(compose_cfg(tmp_path, *base, "data.on_error=skip").data)
    with pytest.warns(UserWarning, match="2 of 22 image files could not be read"):
        datamodule.setup()
    assert len(datamodule.train_set) + len(datamodule.test_set) == 20
    assert "data.on_error=skip" in (Path(CONFIG_DIR) / "data" / "folder.yaml").read_text()  # the preset says so
