"""Walking a folder tree whose symbolic links may form loops (``loop -> .``, ``up -> ../folder``).

Each real directory is visited once, identified by its device and inode: the tree itself first, by its own paths,
then the directories that links lead to outside it, by the links' paths. A link back into a directory already
visited is not followed again, so a loop ends and no file is listed twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def is_hidden(name: str) -> bool:
    """A dot file or folder (macOS ``._*`` resource forks, ``.ipynb_checkpoints``, ``.DS_Store``)."""
    return name.startswith(".")


def _identity(folder: str) -> tuple[int, int] | None:
    """The directory's (device, inode), links followed; None when it cannot be reached (broken, unreadable)."""
    try:
        status = os.stat(folder)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def walk_once(root: str | os.PathLike, skip_hidden: bool = False) -> Iterator[tuple[Path, list[str]]]:
    """``(folder, names of the files in it)`` for every real directory under ``root``, each once, links followed
    (see the module's docstring); with ``skip_hidden`` dot folders are not entered and dot files not named.
    Folders are visited in sorted order, the file names as the directory lists them."""
    seen: set[tuple[int, int]] = set()
    pending = [Path(root)]
    while pending:
        top, linked = pending.pop(0), []
        for folder, subfolders, names in os.walk(top):  # links to folders are listed, not entered
            identity = _identity(folder)
            if identity is None or identity in seen:
                subfolders[:] = []
                continue
            seen.add(identity)
            subfolders[:] = sorted(d for d in subfolders if not (skip_hidden and is_hidden(d)))
            linked += [Path(folder) / d for d in subfolders if os.path.islink(os.path.join(folder, d))]
            yield Path(folder), [n for n in names if not (skip_hidden and is_hidden(n))]
        pending += linked
