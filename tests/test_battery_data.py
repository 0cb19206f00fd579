"""Bad data inputs through the real training command (issue 32): each ends with ONE ``error:`` line that names what
is wrong, where and the fix, exit status 2, no traceback, and the files the user already had in the run folder
are all still there. A folder with symbolic-link loops is listed once and trains.

The command runs in this process (``ssad.train.main`` with its command line, as ``python -m ssad.train`` runs it):
a new interpreter per case would spend its time importing torch. Every case fails at start-up, before training.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssad.data.readers.cache import fingerprint
from ssad.data.readers.images import list_images
from ssad.train import main  # imported before any test captures output: libraries' log handlers keep one stream

# the demo, with the few settings that keep a run that does start short
BASE = ["experiment=demo", "data=folder", "trainer.max_epochs=1", "data.epoch_size=64", "logger=none",
        "++trainer.enable_progress_bar=false", "eval.plots=false"]
# what the user already had in the run folder (as in the issue: notes and a csv folder of their own)
USER_FILES = {"notes.log": "notes\n", "csv/m.csv": "a,b\n", "mine.txt": "keep me\n"}


def _png(path: Path, seed: int = 0, side: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _folder(root: Path, n: int = 4) -> Path:
    for i in range(n):
        _png(root / f"{i}.png", seed=i)
    return root


def _encoded(fmt: str) -> bytes:
    """A 32×32 image encoded as ``fmt`` (PNG, JPEG)."""
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(out, fmt)
    return out.getvalue()


def _dir(root: Path, **files: str) -> Path:
    """A folder holding ``files`` (name → text)."""
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def _with_bad_file(root: Path, name: str, content: bytes | None) -> Path:
    """Four good PNGs and ``name`` holding ``content`` (None: a link to a file that is not there)."""
    _folder(root)
    if content is None:
        (root / name).symlink_to(root / "gone")
    else:
        (root / name).write_bytes(content)
    return root


def _with_locked_file(root: Path) -> Path:
    """Four good PNGs and a fifth, ``locked.png``, that its owner may not read (chmod 000)."""
    _with_bad_file(root, "locked.png", _encoded("PNG"))
    (root / "locked.png").chmod(0)
    return root


def _file(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _npy(path: Path, array: np.ndarray) -> Path:
    np.save(path, array, allow_pickle=array.dtype == object)
    return path


def _labelled(tmp: Path, labels: np.ndarray, n: int = 20) -> str:
    images = _npy(tmp / "x.npy", np.random.default_rng(0).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8))
    return f"+data.train={{format: npy, path: '{images}', labels: '{_npy(tmp / 'y.npy', labels)}'}}"


def _ood(tmp: Path, entry: str) -> str:
    """``+data.ood.x=...`` with ``entry`` (``{path}``, ``{labels}``: a small labelled array) beside a good folder."""
    images = _npy(tmp / "ood.npy", np.random.default_rng(1).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8))
    labels = _npy(tmp / "ood_labels.npy", np.arange(10) % 2)
    return f"data.path={_folder(tmp / 'imgs', 8)}", "+data.ood.x={" + entry.format(path=images, labels=labels) + "}"


# case → (set-up: tmp → overrides, key words of the message)
CASES = {
    # raised by the data module's constructor, which Hydra's instantiate wraps
    "no data given": (lambda t: [], ["no training data", "set data.path"]),
    "negative source not configured": (lambda t: [f"data.path={_folder(t / 'imgs')}", "negatives.parts.0.source=nope"],
                                       ["negative source 'nope' is not configured", "choose 'indist'"]),
    "empty folder": (lambda t: [f"data.path={_dir(t / 'empty')}"],
                     ["data.path", "holds no image files", "it is empty", "put the images there"]),
    "non-image folder": (lambda t: [f"data.path={_dir(t / 'txt', **{'readme.txt': 'x'})}"],
                         ["data.path", "holds no image files", "readme.txt"]),
    "single image": (lambda t: [f"data.path={_folder(t / 'one', 1)}"],
                     ["data.path", "data.holdout=0.1 would leave no training images out of 1", "give more images"]),
    "zero-byte png": (lambda t: [f"data.path={_with_bad_file(t / 'f', 'empty.png', b'')}"],
                      ["1 of 5 image files could not be read", "empty.png", "data.on_error=skip"]),
    "truncated png": (lambda t: [f"data.path={_with_bad_file(t / 'f', 'cut.png', _encoded('PNG')[:60])}"],
                      ["cut.png", "Repair or remove them", "data.on_error=skip"]),
    "zero-byte jpeg": (lambda t: [f"data.path={_with_bad_file(t / 'f', 'empty.jpg', b'')}"],
                       ["empty.jpg", "data.on_error=skip"]),
    "truncated jpeg": (lambda t: [f"data.path={_with_bad_file(t / 'f', 'cut.jpg', _encoded('JPEG')[:300])}"],
                       ["cut.jpg", "Truncated", "data.on_error=skip"]),
    # as root every file is readable: a link to a missing file is a file that cannot be opened by anyone
    "unreadable file": (lambda t: [f"data.path={_with_bad_file(t / 'f', 'gone.png', None)}"],
                        ["gone.png", "No such file", "data.on_error=skip"]),
    "file without read permission": (lambda t: [f"data.path={_with_locked_file(t / 'f')}"],
                                     ["locked.png", "Permission denied", "data.on_error=skip"]),
    "nothing readable, skipped": (lambda t: [f"data.path={_dir(t / 'f', **{f'{i}.jpg': 'x' for i in range(5)})}",
                                             "data.on_error=skip"],
                                  ["data.path", "none of the 5 image files", "could be read", "point the path"]),
    "float npy": (lambda t: [f"data.path={_npy(t / 'f.npy', np.random.default_rng(0).random((8, 8, 8, 3)))}"],
                  ["data.path", "f.npy", "found dtype float64", "uint8 0–255", "astype(np.uint8)"]),
    "nan npy": (lambda t: [f"data.path={_npy(t / 'n.npy', np.full((8, 8, 8, 3), np.nan, np.float32))}"],
                ["n.npy", "found dtype float32", "uint8"]),
    "2-d npy": (lambda t: [f"data.path={_npy(t / 'flat.npy', np.zeros((8, 192), np.uint8))}"],
                ["flat.npy", "shape (8, 192)", "N×H×W×3"]),
    "object npy": (lambda t: [f"data.path={_npy(t / 'o.npy', np.array([{'a': 1}, None], dtype=object))}"],
                   ["o.npy", "not a readable plain array file", "np.save"]),
    "zero-byte npy": (lambda t: [f"data.path={_file(t / 'z.npy', b'')}"],
                      ["z.npy", "not a readable plain array file"]),
    "labels of the wrong length": (lambda t: [_labelled(t, np.arange(7))],
                                   ["data.train", "y.npy", "shape (7,)", "expected 20 integers"]),
    "labels of the wrong type": (lambda t: [_labelled(t, np.linspace(0, 1, 20))],
                                 ["data.train", "found dtype float64", "expected 20 integers", "np.int64"]),
    "string labels": (lambda t: [_labelled(t, np.array(list("ab" * 10)))],
                      ["data.train", "y.npy", "expected 20 integers"]),
    "classes that select nothing": (lambda t: [*_ood(t, "format: npy, path: '{path}', labels: '{labels}', "
                                                        "classes: [7]")],
                                    ["data.ood.x", "classes [7] do not occur", "present: [0, 1]",
                                     "choose classes among them"]),
    "typo in an OOD entry": (lambda t: [*_ood(t, "format: npy, pth: '{path}'")],
                             ["data.ood.x", "unknown ['pth']; missing ['path'] argument(s)", "did you mean 'path'?",
                              "it accepts: path"]),
}


def _user_files(run_dir: Path) -> None:
    for name, text in USER_FILES.items():
        (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / name).write_text(text)


def train_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> int:
    """``python -m ssad.train BASE overrides hydra.run.dir=tmp_path/run`` in this process; its exit status."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ssad.train", *BASE, *overrides, f"hydra.run.dir={tmp_path / 'run'}"])
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("SSAD_VERBOSE", raising=False)
    try:
        main()
    except SystemExit as stop:
        return stop.code
    return 0


AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
PARAMS = [pytest.param(case, marks=pytest.mark.skipif(AS_ROOT, reason="root reads any file"))
          if case == "file without read permission" else case for case in CASES]


@pytest.mark.parametrize("case", PARAMS)
def test_a_bad_data_input_ends_in_one_clear_error_line(tmp_path, monkeypatch, capfd, case):
    make, words = CASES[case]
    overrides = make(tmp_path)
    _user_files(tmp_path / "run")
    status = train_command(tmp_path, monkeypatch, *overrides)
    out, err = capfd.readouterr()
    assert status == 2, out + err
    assert "Traceback" not in out + err and "Error executing job" not in out + err, out + err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert all(word in errors[0] for word in words), errors[0]
    assert (out + err).count(errors[0][len("error: "):]) == 1  # said once, not again as a chained error
    assert {name: (tmp_path / "run" / name).read_text() for name in USER_FILES} == USER_FILES


# ------------------------------------------------------------------------------------------ symbolic-link loops
def _looped_folder(root: Path) -> Path:
    """Six PNGs (two in a subfolder) and links back into the folder: ``loop -> .``, ``up -> ../folder`` and a
    second name for the subfolder."""
    _folder(root)
    _png(root / "sub" / "a.png", 10)
    _png(root / "sub" / "b.png", 11)
    (root / "loop").symlink_to(".")
    (root / "up").symlink_to(Path("..") / root.name)
    (root / "again").symlink_to("sub")
    return root


def test_a_folder_with_link_loops_lists_each_image_once(tmp_path):
    root = _looped_folder(tmp_path / "folder")
    outside = _folder(tmp_path / "outside", 2)
    (root / "more").symlink_to(outside)  # a link to a folder outside the tree is followed
    expected = sorted([*(root / f"{i}.png" for i in range(4)), root / "sub/a.png", root / "sub/b.png",
                       root / "more/0.png", root / "more/1.png"])
    assert list_images(root) == expected
    found = fingerprint(root)
    assert found["files"] == 8 and found["bytes"] == sum(p.stat().st_size for p in expected)
    (root / "self.png").symlink_to("self.png")  # a link to itself: unreadable, but the walk ends
    assert fingerprint(root)["files"] == 8 and root / "self.png" in list_images(root)


def test_training_on_a_folder_with_link_loops_starts(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import compose_cfg

    root = _looped_folder(tmp_path / "folder")
    cfg = compose_cfg(tmp_path, "data=folder", f"data.path={root}", "data.on_error=skip", "data.batch_size=2",
                      "data.holdout=0", f"paths.cache_dir={tmp_path / 'cache'}")
    datamodule = instantiate(cfg.data)
    datamodule.check_sources()
    datamodule.prepare_data()
    datamodule.setup()
    assert len(datamodule.train_set) == 6
    batch = next(iter(datamodule.train_dataloader()))[0]
    assert batch["pos"]["image"].shape == (2, 3, 16, 16)
