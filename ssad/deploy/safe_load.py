"""Reading files made elsewhere without running code from them.

A pickle can name any importable callable and have it called while it is read (``__reduce__``), and a Hydra
config can name any callable as a ``_target_``. Detector files, checkpoints and dataset batches are shared
between people, so ssad reads them through the gates below; a file that needs anything more is refused
with an :class:`UnsafeFileError` that names the file and what it asked for, before any of it runs.

- :func:`load_torch_file`: ``torch.load(weights_only=True)`` (tensors, plain containers and scalars).
- :func:`load_data_pickle`: a restricted unpickler for the CIFAR and downsampled-ImageNet batch pickles (dicts,
  lists, strings, numbers, NumPy arrays and scalars, nothing else).
- a config read from a file is never instantiated: :mod:`ssad.deploy.checkpoints` rebuilds its model and data from plain
  values through ssad's own classes, and any other ``_target_`` is refused (:func:`refuse_target`).

Each gate has a ``trust_file`` way round it for files one has made oneself or otherwise trusts; it runs code
from the file, and is documented as such wherever it is offered.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ssad.cli.errors import UserError

TRUST_HINT = "trust_file=true, which runs code from the file (only for a file you made yourself or fully trust)"


class UnsafeFileError(UserError, ValueError):
    """A file was refused because reading it would run code named by the file; nothing of it was run."""


# ------------------------------------------------------------------------------------------ torch files
def _refusal_reason(err: Exception) -> str:
    """The part of torch's weights-only error that says what the file asked for."""
    text = str(err)
    named = re.search(r"GLOBAL ([\w.]+)", text)
    if named:
        return f"it names {named.group(1)}, which is neither a tensor nor a plain value"
    detail = re.search(r"WeightsUnpickler error: ([^\n]*)", text)
    return detail.group(1).strip() if detail else text.splitlines()[0]


def load_torch_file(path: str | os.PathLike, what: str, remedy: str, trust_file: bool = False,
                    mmap: bool = False) -> Any:
    """``torch.load`` of a ``torch.save`` archive with ``weights_only=True`` (on the CPU).

    ``what`` names the kind of file in messages ("detector file", "checkpoint"), ``remedy`` says how to get a
    file that loads. A file that is not a complete archive raises a ValueError; one whose pickle names anything
    beyond tensors and plain values raises :class:`UnsafeFileError` (nothing of it ran).
    ``trust_file=True`` loads with ``weights_only=False``, which runs code from the file. ``mmap=True`` maps the
    tensors instead of reading them (a cheap check of the whole pickle before a long job starts)."""
    import torch  # here: the data pickles are read without PyTorch (the .npy reader of an .onnx detector's scoring)

    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable {what} (not a complete torch.save archive); {remedy}")
    if trust_file:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        raise UnsafeFileError(
            f"{path}: refused to load this {what}: {_refusal_reason(err)}. An ssad {what} holds only tensors and "
            f"plain values; reading this one in full could run code from the file, and nothing of it was run. "
            f"{remedy[:1].upper()}{remedy[1:]}. To load this one anyway: {TRUST_HINT}.") from None


# ------------------------------------------------------------------------------------------ dataset pickles
def _data_pickle_globals() -> dict[tuple[str, str], Any]:
    """The globals that CIFAR (Python 2 cPickle) and downsampled-ImageNet (Python 2 or 3) batches name, under
    the module names of NumPy 1 (``numpy.core``) and 2 (``numpy._core``) and of Python 2 and 3."""
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
        ("builtins", "bytes"): bytes,
        ("__builtin__", "bytes"): bytes,
    }
    numpy_functions = {
        "multiarray": [np.zeros(1).__reduce__()[0], np.float64(0).__reduce__()[0]],  # _reconstruct, scalar
        "numeric": [np.zeros(1).__reduce_ex__(5)[0]],  # _frombuffer (protocol 5)
    }
    for module, functions in numpy_functions.items():
        for function in functions:
            for package in ("numpy.core", "numpy._core"):
                allowed[(f"{package}.{module}", function.__name__)] = function
    return allowed


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :func:`_data_pickle_globals`; any other name stops it before it is
    imported or called."""

    allowed = _data_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(f"{module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(f"a persistent reference {pid!r}")


def load_data_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a dataset batch file with :func:`unpickle_data`."""
    return unpickle_data(Path(path).read_bytes(), str(path))


def unpickle_data(data: bytes, source: str) -> Any:
    """Unpickle a dataset batch (``encoding="latin1"`` for Python 2 pickles) allowing only dicts, lists,
    strings, bytes, numbers, NumPy arrays and NumPy scalars. Anything else is refused with an
    :class:`UnsafeFileError` naming ``source`` (where the bytes came from) and what it asked for; nothing it
    names is imported or called."""
    try:
        return _DataUnpickler(io.BytesIO(data), encoding="latin1").load()
    except UnsafeFileError as err:
        raise UnsafeFileError(
            f"{source}: refused to unpickle: it names {err}, which is not among the NumPy and builtin types that "
            "CIFAR and downsampled-ImageNet batches hold; reading it would run code from it, and nothing of it "
            "was run. Replace it with the dataset's official file.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{source}: not a readable pickle batch ({type(err).__name__}: {err}); it may be cut short "
                         "or of another format. Replace it with the dataset's official file.") from err


# ------------------------------------------------------------------------------------------ config targets
def find_targets(node: Any, where: str) -> list[tuple[str, Any]]:
    """Every ``(key path, _target_)`` in a nested dict/list config."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            found += [(where, value)] if key == "_target_" else find_targets(value, f"{where}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += find_targets(value, f"{where}[{i}]")
    return found


def refuse_target(path: str | os.PathLike, key: str, target: Any, problem: str) -> UnsafeFileError:
    """The error for a ``_target_`` (at ``key``) of a config read from ``path`` that is not accepted."""
    return UnsafeFileError(
        f"{path}: refused: its stored config sets {key}._target_={target!r}, {problem}. ssad builds a stored "
        f"config's model and data itself from plain values and runs nothing a file names; nothing was built from "
        f"it. To build it anyway: {TRUST_HINT}.")

