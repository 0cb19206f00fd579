"""The published numbers a report sets beside ours, and the names those publications give datasets and
variants: Rafiee et al. (2022), Tables 1 and 2 (``ssad/paper_results.csv``)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from ssad.report.runs import BASELINES
from ssad.results import AVERAGE

OOD_NAMES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "imagenet30": "ImageNet30",
             "tinyimagenet": "TinyImageNet", "lsun": "LSUN", "stl10": "STL10", "places365": "Places365",
             "texture": "Texture"}
NAMES = {**OOD_NAMES, AVERAGE: "Average"}
TABLE2_METHODS = {**BASELINES, "none": "DINO", "imgn": "ImgN", "rot_imgn": "Rot_ImgN", "rot360_imgn": "Rot360_ImgN",
                  "dti": "DTI", "perm16_imgn": "Perm16_ImgN", "perm4_imgn": "Perm4_ImgN",
                  "rot_dti": "Rot_DTI", "pixperm_imgn": "PixPerm", "rot_indist": "Rot_InDist"}
TABLE1_METHODS = {"rot_imgn": "Ours_Rot_ImgN", "combined": "Ours_Combined"}
HEADERS = {**TABLE2_METHODS, "combined": "Combined"}
PAPER_SOURCE = "Rafiee et al., arXiv 2201.06378"


def name(key: str) -> str:
    """The paper's name of a dataset key (``cifar10`` → ``CIFAR10``); unknown keys keep their own name."""
    return NAMES.get(key, key)


def ordered(items: Iterable[str], order: Iterable[str]) -> list[str]:
    """``items`` in the order of ``order``, then the others sorted."""
    items, order = set(items), list(order)
    return [k for k in order if k in items] + sorted(items - set(order))


def load_paper(path: str | os.PathLike | None = None) -> dict[tuple[str, str, str, str], float]:
    """The paper's AUROC (%) keyed by (table, in_dist, ood, method) from ``ssad/paper_results.csv``."""
    source = Path(path) if path else resources.files("ssad").joinpath("paper_results.csv")
    text = source.read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["table"], r["in_dist"], r["ood"], r["method"]): float(r["auroc"]) for r in rows}
