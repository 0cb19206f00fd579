"""The published numbers a report sets beside ours: Rafiee et al. (2022), Tables 1 and 2
(``ssad/paper_results.csv``)."""

from __future__ import annotations

import csv
import os
from importlib import resources
from pathlib import Path

PAPER_SOURCE = "Rafiee et al., arXiv 2201.06378"


def load_paper(path: str | os.PathLike | None = None) -> dict[tuple[str, str, str, str], float]:
    """The paper's AUROC (%) keyed by (table, in_dist, ood, method) from ``ssad/paper_results.csv``."""
    source = Path(path) if path else resources.files("ssad").joinpath("paper_results.csv")
    text = source.read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["table"], r["in_dist"], r["ood"], r["method"]): float(r["auroc"]) for r in rows}
