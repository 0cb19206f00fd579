"""The paper's Tables 1 and 2 from runs: cells of mean ± std over seeds beside the published numbers, written as
Markdown, LaTeX (booktabs) and long-format CSV."""

from __future__ import annotations

import csv
import re
import statistics
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ssad.report.names import (
    in_published_order,
    name,
    ordered,
    paper_method,
    paper_order,
    paper_variants,
    variant_labels,
)
from ssad.report.published import PAPER_SOURCE, load_paper
from ssad.report.runs import Run
from ssad.scoring.results import AVERAGE, METRICS
from ssad.utils.tables import markdown_table, percent_value

IMAGENET_OVERLAP = ("imagenet30", "tinyimagenet", "tin")  # OOD sets drawn from ImageNet (tin: OpenOOD's)


def without_noise(x: float | None) -> float | None:
    """Without the float noise of a sum (92.45000000000002 → 92.45)."""
    return None if x is None else round(x, 10)


@dataclass
class Cell:
    """One table cell: measured values in percent (one per seed), how many planned runs have no results, and
    the paper's number."""

    values: list[float]
    n_missing: int = 0
    paper: float | None = None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None

    def text(self) -> str:
        """``mean ± std`` (``mean`` for one seed), ``missing`` (planned, no results), ``—`` (not run)."""
        if not self.values:
            return "missing" if self.n_missing else "—"
        text = f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")
        return text + (f" ({self.n_missing} missing)" if self.n_missing else "")


@dataclass
class Table:
    """A paper table (``"1"`` or ``"2"``) for one in-distribution: rows × variant columns of :class:`Cell`."""

    table: str
    in_dist: str
    metric: str
    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Cell]
    marked: set[str]
    notes: list[str]
    labels: dict[str, str]  # variant → column header

    @property
    def title(self) -> str:
        per = ", per negative variant" if self.table == "2" else ""
        metric = METRICS[self.metric]
        return f"Table {self.table}: {metric} (%) with {name(self.in_dist)} as in-distribution{per}"

    def has_paper(self, variant: str) -> bool:
        return any(self.cells[row, variant].paper is not None for row in self.rows)

    def row_label(self, row: str) -> str:
        return name(row) + ("†" if row in self.marked else "")

    def row_texts(self, row: str) -> list[str]:
        """The cells of ``row``: measured, then the paper's number where that column has one."""
        texts = []
        for variant in self.columns:
            cell = self.cells[row, variant]
            texts.append(cell.text())
            if self.has_paper(variant):
                texts.append("—" if cell.paper is None else f"{cell.paper:.2f}")
        return texts


def build_table(runs: Sequence[Run], table: str, in_dist: str, variants: Sequence[str], metric: str = "auroc",
                paper: Mapping[tuple[str, str, str, str], float] | None = None,
                labels: Mapping[str, str] | None = None) -> Table:
    """Table ``table`` of the ``in_dist`` runs: rows = their OOD sets (the keys of their configs' ``data.ood`` and
    the sets measured; the paper's first, in its order; + Average for Table 2), columns = ``variants`` headed by
    their ``labels``, paper numbers from ``paper`` (AUROC only)."""
    labels = {v: (labels or {}).get(v, v) for v in variants}
    runs = [r for r in runs if r.dataset == in_dist and r.variant in variants]
    rows = in_published_order(k for r in runs for k in (*r.planned_ood, *((r.results or {}).get("ood") or {})))
    rows += [AVERAGE] if table == "2" else []
    paper = paper if metric == "auroc" else {}
    cells = {}
    for variant in variants:
        group = [r for r in runs if r.variant == variant]
        missing = sum(r.results is None for r in group)
        for row in rows:
            values = [percent_value(x) for r in group if (x := r.value(row, metric)) is not None]
            key = (table, name(in_dist), name(row), paper_method(table, labels[variant]))
            cells[row, variant] = Cell(values, missing, (paper or {}).get(key))
    notes = ["Measured: mean ± sample std over seeds (one seed: its value); missing = a planned run without "
             "results; — = not run or not evaluated."]
    if any(cell.paper is not None for cell in cells.values()):
        notes[0] += f" Paper: {PAPER_SOURCE}, Table {table}."
    imagenet = [labels[v] for v in variants if any("imagenet" in r.negative_sources for r in runs if r.variant == v)]
    marked = {row for row in rows if row in IMAGENET_OVERLAP} if imagenet else set()
    if marked:
        overlap = ", ".join(name(m) for m in sorted(marked))
        verb = "shares" if len(marked) == 1 else "share"
        notes.append(f"† {overlap} {verb} classes with ImageNet, the source of the negatives of "
                     f"{', '.join(imagenet)}: these OOD sets are not disjoint from them.")
    notes += [f"missing: {r.variant} seed {r.seed} ({r.source}) has no results."
              for r in runs if r.results is None]
    return Table(table, in_dist, metric, rows, list(variants), cells, marked, notes, labels)


def build_tables(runs: Sequence[Run], metric: str = "auroc") -> tuple[Table, list[Table]]:
    """Table 2 (CIFAR10 runs, else the most common in-distribution; every variant) and Table 1 (one per
    in-distribution with Rot. ImgN or Combined runs)."""
    paper, labels = load_paper(), variant_labels(runs)
    datasets = Counter(r.dataset for r in runs)
    in_dist = "cifar10" if "cifar10" in datasets else datasets.most_common(1)[0][0]
    variants = ordered({r.variant for r in runs if r.dataset == in_dist}, paper_order(labels))
    table2 = build_table(runs, "2", in_dist, variants, metric, paper, labels)
    ours = paper_variants("1", labels)
    table1 = [build_table(runs, "1", d, ours, metric, paper, labels)
              for d in in_published_order(sorted({r.dataset for r in runs if r.variant in ours}))]
    return table2, table1


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table with a ``paper`` column beside each variant the paper reports, then notes."""
    head = ["OOD"]
    for variant in table.columns:
        head += [table.labels[variant]] + (["paper"] if table.has_paper(variant) else [])
    rows = [[table.row_label(row), *table.row_texts(row)] for row in table.rows]
    lines = [f"**{table.title}**", "", *markdown_table(head, rows, align=["<", *">" * (len(head) - 1)])]
    return "\n".join([*lines, "", *table.notes, ""])


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and write ±, † and — in LaTeX."""
    special = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
               "±": r"$\pm$", "†": r"$^\dagger$", "—": "--"}
    return re.sub("[&%_#${}±†—]", lambda m: special[m.group()], text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment: each variant over ``ours`` / ``paper`` sub-columns, notes below."""
    top, sub, rules, spec, col = ["OOD"], [""], [], "l", 2
    for variant in table.columns:
        header = tex_escape(table.labels[variant])
        if table.has_paper(variant):
            top.append(rf"\multicolumn{{2}}{{c}}{{{header}}}")
            sub += ["ours", "paper"]
            rules.append(rf"\cmidrule(lr){{{col}-{col + 1}}}")
            spec, col = spec + "cc", col + 2
        else:
            top.append(header)
            sub.append("ours")
            spec, col = spec + "c", col + 1
    body = [(r"\midrule" + "\n" if row == AVERAGE else "")
            + " & ".join(tex_escape(t) for t in [table.row_label(row), *table.row_texts(row)]) + r" \\"
            for row in table.rows]
    label = f"tab:table{table.table}_{table.in_dist}"
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(table.title)}}}",
                      rf"\label{{{label}}}", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                      " & ".join(top) + r" \\", "".join(rules), " & ".join(sub) + r" \\", r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", r"\par\footnotesize",
                      *(tex_escape(n) + r"\par" for n in table.notes), r"\end{table}", ""])


CSV_FIELDS = ["table", "in_dist", "ood", "variant", "method", "metric", "measured_mean", "measured_std",
              "n_seeds", "n_missing", "paper"]


def to_csv_rows(table: Table) -> list[dict[str, Any]]:
    """One row per cell (long format, percent); empty measured_mean = no measured value."""
    rows = []
    for row in table.rows:
        for variant in table.columns:
            cell = table.cells[row, variant]
            rows.append({"table": table.table, "in_dist": name(table.in_dist), "ood": name(row),
                         "variant": variant, "method": table.labels[variant], "metric": table.metric,
                         "measured_mean": without_noise(cell.mean), "measured_std": without_noise(cell.std),
                         "n_seeds": len(cell.values), "n_missing": cell.n_missing, "paper": cell.paper})
    return rows


def write_formats(tables: Sequence[Any], out: Path, stem: str, markdown: Callable[[Any], str],
                  latex: Callable[[Any], str], csv_fields: Sequence[str],
                  csv_rows: Callable[[Any], list[dict[str, Any]]]) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` in ``out`` holding ``tables``, each rendered by the given
    Markdown and LaTeX formatters and flattened to CSV rows with ``csv_fields`` columns."""
    out.mkdir(parents=True, exist_ok=True)
    md, tex, csv_path = out / f"{stem}.md", out / f"{stem}.tex", out / f"{stem}.csv"
    md.write_text("\n".join(markdown(t) for t in tables))
    tex.write_text("\n".join(latex(t) for t in tables))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, csv_fields)
        writer.writeheader()
        writer.writerows(row for t in tables for row in csv_rows(t))
    return [md, tex, csv_path]


def write_tables(tables: Sequence[Table], out: Path, stem: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` in ``out`` holding ``tables``."""
    return write_formats(tables, out, stem, to_markdown, to_latex, CSV_FIELDS, to_csv_rows)
