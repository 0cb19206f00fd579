"""The published numbers a report sets beside ours: Rafiee et al. (2022), Tables 1 and 2
(``ssad/report/paper_results.csv``), and the OpenOOD v1.5 leaderboard's near-/far-OOD AUROC
(``ssad/report/openood_v15.csv``)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

PAPER_SOURCE = "Rafiee et al., arXiv 2201.06378"
OPENOOD_SOURCE = ("OpenOOD v1.5 (Zhang et al. 2023, arXiv:2306.09301), as its leaderboard "
                  "https://zjysteven.github.io/OpenOOD/ lists it")


def _rows(name: str, path: str | os.PathLike | None) -> list[dict[str, str]]:
    """The rows of the packaged CSV ``name`` (or of ``path``), its ``#`` comment lines left out."""
    source = Path(path) if path else resources.files("ssad.report").joinpath(name)
    return list(csv.DictReader(line for line in source.read_text().splitlines() if not line.startswith("#")))


def load_paper(path: str | os.PathLike | None = None) -> dict[tuple[str, str, str, str], float]:
    """The paper's AUROC (%) keyed by (table, in_dist, ood, method) from ``ssad/report/paper_results.csv``."""
    return {(r["table"], r["in_dist"], r["ood"], r["method"]): float(r["auroc"])
            for r in _rows("paper_results.csv", path)}


@dataclass(frozen=True)
class Published:
    """One leaderboard entry: a method's mean AUROC (%) per group of OOD sets (``near``, ``far``)."""

    dataset: str  # the data preset of the protocol, as runs name their dataset (openood_cifar10)
    in_dist: str
    method: str
    postprocessor: str
    auroc: dict[str, float]
    outlier_data: bool


def load_openood(path: str | os.PathLike | None = None) -> list[Published]:
    """The OpenOOD v1.5 entries of ``ssad/report/openood_v15.csv``, in the file's order (strongest first)."""
    return [Published(r["dataset"], r["in_dist"], r["method"], r["postprocessor"],
                      {"near": float(r["near_auroc"]), "far": float(r["far_auroc"])}, r["outlier_data"] == "yes")
            for r in _rows("openood_v15.csv", path)]
