"""Files written atomically get the mode of any other new file: 0666 less the umask (not mkstemp's 0600)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from ssad.data.readers.cache import cached_arrays
from ssad.utils.files import save_atomic, write_json_atomic, write_text_atomic


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_files_honour_the_umask(tmp_path, umask):
    expected = 0o666 & ~umask
    assert _mode(write_json_atomic(tmp_path / "results.json", {"auroc": 0.9})) == expected
    assert _mode(write_text_atomic(tmp_path / "scores.csv", "file,score\n")) == expected
    assert _mode(save_atomic(tmp_path / "detector.pt", {"x": 1})) == expected
    cached_arrays("modes", {"k": 1}, lambda: (np.zeros((2, 3, 4, 4), np.uint8), np.arange(2)), tmp_path / "cache")
    written = [p for p in (tmp_path / "cache").iterdir() if p.suffix in (".npy", ".json")]
    assert len(written) == 3 and all(_mode(p) == expected for p in written)
    assert not [p for p in tmp_path.rglob("*.tmp")]
