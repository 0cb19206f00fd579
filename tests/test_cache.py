"""The uint8 cache: built once, memory-mapped on reuse, rebuilt on source change, safe against interrupted
writes and concurrent builders."""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np
import pytest

from ssad.data import sources
from ssad.data.readers import cache
from ssad.data.readers.cache import cached_arrays, entry_stem, fingerprint
from ssad.data.sources import load_source

IMAGES = np.arange(4 * 3 * 5 * 5, dtype=np.uint8).reshape(4, 3, 5, 5)
LABELS = np.array([3, 1, 4, 1], dtype=np.int64)


class CountingBuild:
    """A build function that counts its calls."""

    def __init__(self, labels: np.ndarray | None = LABELS) -> None:
        self.calls, self.labels = 0, labels

    def __call__(self):
        self.calls += 1
        return IMAGES.copy(), self.labels


def test_second_call_loads_memory_mapped_without_building(tmp_path):
    build = CountingBuild()
    first = cached_arrays("toy", {"k": 1}, build, tmp_path)
    images, labels = cached_arrays("toy", {"k": 1}, build, tmp_path)
    assert build.calls == 1
    assert isinstance(images, np.memmap) and not images.flags.writeable
    assert np.array_equal(images, IMAGES) and np.array_equal(labels, LABELS) and labels.dtype == np.int64
    assert np.array_equal(first[0], IMAGES)
    stem = entry_stem("toy", {"k": 1}, tmp_path)
    suffixes = (".npy", "-labels.npy", ".json", ".lock")
    assert {p.name for p in tmp_path.iterdir()} == {stem.name + s for s in suffixes}


def test_keys_sort_and_no_labels_and_no_cache_dir(tmp_path):
    build = CountingBuild(labels=None)
    cached_arrays("toy", {"a": 1, "b": [1, 2]}, build, tmp_path)
    images, labels = cached_arrays("toy", {"b": [1, 2], "a": 1}, build, tmp_path)
    assert build.calls == 1 and labels is None and not list(tmp_path.glob("*-labels.npy"))
    cached_arrays("toy", {"a": 2, "b": [1, 2]}, build, tmp_path)
    assert build.calls == 2
    cached_arrays("toy", {"a": 1}, build, None)
    cached_arrays("toy", {"a": 1}, build, None)
    assert build.calls == 4


def test_missing_images_file_or_leftover_temp_file_is_not_valid(tmp_path):
    build = CountingBuild()
    stem = entry_stem("toy", {"k": 1}, tmp_path)
    cached_arrays("toy", {"k": 1}, build, tmp_path)
    # a writer killed while writing the images: labels and meta are there, the images only as a temp file
    Path(f"{stem}.npy").rename(tmp_path / f".{stem.name}.npy.abc123.tmp")
    images, labels = cached_arrays("toy", {"k": 1}, build, tmp_path)
    assert build.calls == 2 and np.array_equal(images, IMAGES) and np.array_equal(labels, LABELS)
    assert not list(tmp_path.glob("*.tmp"))
    Path(f"{stem}-labels.npy").unlink()  # meta says labels exist: incomplete
    cached_arrays("toy", {"k": 1}, build, tmp_path)
    assert build.calls == 3


def test_interrupted_write_leaves_no_valid_entry(tmp_path, monkeypatch):
    real_save = np.save

    def disk_full_on_images(file, array):
        if array.dtype == np.uint8:
            file.write(b"\x93NUMPY partial")
            raise OSError("No space left on device")
        real_save(file, array)

    monkeypatch.setattr(np, "save", disk_full_on_images)
    build = CountingBuild()
    with pytest.raises(OSError, match="No space"):
        cached_arrays("toy", {"k": 1}, build, tmp_path)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("toy-*[0-9a-f].npy"))
    monkeypatch.setattr(np, "save", real_save)
    images, _ = cached_arrays("toy", {"k": 1}, build, tmp_path)
    assert build.calls == 2 and np.array_equal(images, IMAGES)


def test_fingerprint_follows_changes(tmp_path):
    (tmp_path / "a").mkdir()
    file = tmp_path / "a" / "x.bin"
    file.write_bytes(b"1234")
    before = fingerprint(tmp_path)
    assert before["files"] == 1 and before["bytes"] == 4 and fingerprint(file)["files"] == 1
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touch
    touched = fingerprint(tmp_path)
    assert touched != before
    (tmp_path / "a" / "y.bin").write_bytes(b"")
    assert fingerprint(tmp_path)["files"] == 2
    assert fingerprint(tmp_path / "missing") == {"path": str((tmp_path / "missing").resolve()), "bytes": 0,
                                                 "mtime_ns": 0, "files": 0}


def counting_reader(monkeypatch, fmt: str) -> list[int]:
    """Wrap FORMATS[fmt] so that its calls are counted (the signature is kept for spec checking)."""
    calls: list[int] = []
    reader = sources.FORMATS[fmt]

    @functools.wraps(reader)
    def counted(*args, **kwargs):
        calls.append(1)
        return reader(*args, **kwargs)

    monkeypatch.setitem(sources.FORMATS, fmt, counted)
    return calls


def test_load_source_rebuilds_when_the_source_changes(tmp_path, monkeypatch):
    calls = counting_reader(monkeypatch, "npy")
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 8, 8, 3), dtype=np.uint8))
    spec = {"format": "npy", "path": str(path)}
    first = load_source(spec, 8, str(tmp_path / "cache"))
    load_source({**spec, "name": "other display name"}, 8, str(tmp_path / "cache"))
    assert len(calls) == 1
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched: same content, rebuilt
    load_source(spec, 8, str(tmp_path / "cache"))
    assert len(calls) == 2
    np.save(path, np.full((5, 8, 8, 3), 9, dtype=np.uint8))
    second = load_source(spec, 8, str(tmp_path / "cache"))
    assert len(calls) == 3 and len(first) == 4 and len(second) == 5 and (second.images == 9).all()


def test_equivalent_specs_share_an_entry_sizes_do_not(tmp_path, monkeypatch):
    calls = counting_reader(monkeypatch, "digits")
    cache_dir = str(tmp_path)
    load_source({"format": "digits", "classes": [1, 2]}, 8, cache_dir)
    load_source({"format": "digits", "classes": [1, 2], "split": "train", "seed": 0}, 8, cache_dir)
    assert len(calls) == 1
    assert load_source({"format": "digits", "classes": [1, 2]}, 16, cache_dir).images.shape[-1] == 16
    assert len(calls) == 2


def _slow_build(log: str):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    return np.full((50, 3, 8, 8), 7, dtype=np.uint8), np.arange(50)


def _race(cache_dir: str, log: str, out: str) -> None:
    images, labels = cached_arrays("race", {"k": 1}, functools.partial(_slow_build, log), cache_dir)
    np.savez(out, images=images, labels=labels)


def test_two_processes_building_one_entry_build_once_and_agree(tmp_path):
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    log = str(tmp_path / "builds.log")
    procs = [ctx.Process(target=_race, args=(str(tmp_path / "cache"), log, str(tmp_path / f"{i}.npz")))
             for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    first, second = np.load(tmp_path / "0.npz"), np.load(tmp_path / "1.npz")
    assert np.array_equal(first["images"], second["images"]) and first["images"].shape == (50, 3, 8, 8)
    assert (first["images"] == 7).all() and np.array_equal(second["labels"], np.arange(50))
    assert len(Path(log).read_text().split()) == 1  # the second process waited, then loaded
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_version_is_part_of_the_entry_name(tmp_path, monkeypatch):
    stem = entry_stem("toy", {"k": 1}, tmp_path)
    monkeypatch.setattr(cache, "CACHE_VERSION", cache.CACHE_VERSION + 1)
    assert entry_stem("toy", {"k": 1}, tmp_path) != stem
    assert entry_stem("a/b c", {"k": 1}, tmp_path).parent == tmp_path
