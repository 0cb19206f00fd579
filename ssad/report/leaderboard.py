"""Runs of a protocol that groups its OOD sets (``data.ood_groups``, e.g. OpenOOD's near- and far-OOD) against
the published leaderboard: one row per variant (each group's mean AUROC, mean ± std over seeds) and one per
published method (``ssad/report/openood_v15.csv``), written as Markdown, LaTeX and CSV."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssad.report.names import ordered, paper_order, variant_labels
from ssad.report.published import OPENOOD_SOURCE, Published, load_openood
from ssad.report.runs import Run
from ssad.report.tables import Cell, tex_escape, without_noise, write_formats
from ssad.utils.tables import markdown_table, percent_value

PUBLISHED = "OpenOOD v1.5"  # the "from" of a published entry


def group_auroc(run: Run, sets: Sequence[str]) -> float | None:
    """The run's mean AUROC (%) over ``sets``; None unless every one of them was measured."""
    values = [run.value(s, "auroc") for s in sets]
    return None if not values or None in values else percent_value(statistics.fmean(values))


@dataclass
class Row:
    """One method: a variant of ours (measured) or a published entry, with a :class:`Cell` per group."""

    method: str
    origin: str  # "ours, N seeds" or PUBLISHED
    outlier_data: str
    cells: dict[str, Cell]

    def texts(self) -> list[str]:
        """Method, origin, each group's value (ours: mean ± std; published: its number), outlier data."""
        values = [f"{c.paper:.2f}" if c.paper is not None else c.text() for c in self.cells.values()]
        return [self.method, self.origin, *values, self.outlier_data]


@dataclass
class GroupTable:
    """One dataset's variants and published methods, a column per group of OOD sets."""

    dataset: str
    in_dist: str
    groups: dict[str, tuple[str, ...]]
    rows: list[Row]
    notes: list[str]

    @property
    def title(self) -> str:
        return (f"Near- and far-OOD: mean AUROC (%) per group of OOD sets, {self.in_dist} as in-distribution "
                f"({self.dataset})")

    def header(self) -> list[str]:
        return ["method", "from", *(f"{group}-OOD" for group in self.groups), "outlier data"]


def build_group_table(runs: Sequence[Run], dataset: str, published: Sequence[Published],
                      labels: Mapping[str, str]) -> GroupTable:
    """The table of the ``dataset`` runs with OOD groups (the first such run's groups) beside the published
    entries of that dataset."""
    runs = [r for r in runs if r.dataset == dataset]
    groups = next(r.ood_groups for r in runs if r.ood_groups)
    rows = []
    notes = [f"{group}-OOD = the mean AUROC over {', '.join(sets)} (data.ood_groups of the runs)."
             for group, sets in groups.items()]
    notes.append("Ours: mean ± sample std over seeds of each run's group mean (one seed: its value); missing = "
                 "a planned run without results; — = a group not every one of whose sets was measured.")
    for variant in ordered({r.variant for r in runs}, paper_order(labels)):
        variant_runs = [r for r in runs if r.variant == variant]
        method = labels.get(variant, variant)
        missing = sum(r.results is None for r in variant_runs)
        seeds = sum(r.results is not None for r in variant_runs)
        sources = sorted({s for r in variant_runs for s in r.negative_sources if s != "indist"})
        cells = {name: Cell([x for r in variant_runs if (x := group_auroc(r, sets)) is not None], missing)
                 for name, sets in groups.items()}
        rows.append(Row(method, f"ours, {seeds} seed{'s' if seeds != 1 else ''}", ", ".join(sources) or "no", cells))
        notes += [f"incomplete: {method} seed {r.seed} ({r.source}) has no AUROC for "
                  f"{', '.join(s for s in sets if r.value(s, 'auroc') is None)}."
                  for r in variant_runs if r.results is not None for sets in groups.values()
                  if group_auroc(r, sets) is None]
    mine = [p for p in published if p.dataset == dataset]
    rows += [Row(f"{p.method} ({p.postprocessor})", PUBLISHED, "yes" if p.outlier_data else "no",
                 {g: Cell([], paper=p.auroc.get(g)) for g in groups}) for p in mine]
    if mine:
        notes.append(f"Published: {OPENOOD_SOURCE} (ssad/report/openood_v15.csv). Its entries are ResNet-18 "
                     "classifiers trained 100 epochs with the in-distribution labels, scored by the post-processor "
                     "in brackets; outlier data = trained with OpenOOD's outlier set (ours: the external sources of "
                     "the negatives). Ours trains without labels.")
    in_dist = mine[0].in_dist if mine else dataset
    return GroupTable(dataset, in_dist, dict(groups), rows, notes)


def build_group_tables(runs: Sequence[Run], published: Sequence[Published] | None = None) -> list[GroupTable]:
    """One :class:`GroupTable` per dataset whose runs group their OOD sets (``data.ood_groups``)."""
    published = load_openood() if published is None else published
    labels = variant_labels(runs)
    datasets = list(dict.fromkeys(r.dataset for r in runs if r.ood_groups))
    return [build_group_table(runs, d, published, labels) for d in datasets]


def to_markdown(table: GroupTable) -> str:
    """A GitHub Markdown table (ours, then the published entries), then notes."""
    lines = [f"**{table.title}**", "", *markdown_table(table.header(), [row.texts() for row in table.rows],
                                                       align=["<", "<", *">" * len(table.groups), "<"])]
    return "\n".join([*lines, "", *table.notes, ""])


def to_latex(table: GroupTable) -> str:
    """A booktabs ``table`` environment, a rule above the published entries, notes below."""
    body = []
    for i, row in enumerate(table.rows):
        if i and row.origin == PUBLISHED != table.rows[i - 1].origin:
            body.append(r"\midrule")
        body.append(" & ".join(tex_escape(t) for t in row.texts()) + r" \\")
    spec = "ll" + "c" * len(table.groups) + "l"
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(table.title)}}}",
                      rf"\label{{tab:groups_{table.dataset}}}", r"\small", rf"\begin{{tabular}}{{{spec}}}",
                      r"\toprule", " & ".join(tex_escape(h) for h in table.header()) + r" \\", r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", r"\par\footnotesize",
                      *(tex_escape(n) + r"\par" for n in table.notes), r"\end{table}", ""])


CSV_FIELDS = ["dataset", "in_dist", "method", "from", "group", "ood_sets", "auroc_mean", "auroc_std", "n_seeds",
              "n_missing", "published", "outlier_data"]


def to_csv_rows(table: GroupTable) -> list[dict[str, Any]]:
    """One row per method and group (long format, percent): ours in ``auroc_mean``, published in ``published``."""
    rows = []
    for row in table.rows:
        for group, sets in table.groups.items():
            cell = row.cells[group]
            rows.append({"dataset": table.dataset, "in_dist": table.in_dist, "method": row.method, "from": row.origin,
                         "group": group, "ood_sets": " ".join(sets), "auroc_mean": without_noise(cell.mean),
                         "auroc_std": without_noise(cell.std), "n_seeds": len(cell.values),
                         "n_missing": cell.n_missing, "published": cell.paper, "outlier_data": row.outlier_data})
    return rows


def write_group_tables(tables: Sequence[GroupTable], out: Path, stem: str = "ood_groups") -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` in ``out`` holding ``tables``; nothing without tables."""
    if not tables:
        return []
    return write_formats(tables, out, stem, to_markdown, to_latex, CSV_FIELDS, to_csv_rows)
