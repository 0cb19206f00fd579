"""The one-class table: runs of ``data.normal_class=K`` (e.g. ``experiment=oneclass_digits``), one row per normal
class with the AUROC of the OOD set ``others`` (the other classes), a column per trained variant and per baseline
(raw pixels, the untrained network: each run's ``baselines.json``, ``eval.baselines=auto``), the mean over the
classes below; then the published mean AUROC of the same protocol (``ssad/report/oneclass_published.csv``, as
reported by those papers) with their setting. Written as Markdown, LaTeX and CSV."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ssad.data.oneclass import OTHERS, class_name
from ssad.report.names import ordered, paper_order, variant_labels
from ssad.report.published import _rows
from ssad.report.runs import Run
from ssad.report.tables import Cell, tex_escape, without_noise, write_formats
from ssad.scoring.results import BASELINES, BASELINES_FILE
from ssad.scoring.summary import evaluated_label_names
from ssad.utils.tables import markdown_table

MEAN = "mean"
PUBLISHED_FILE = "oneclass_published.csv"
SETTING = ("labels", "pretraining", "outlier_exposure")


@dataclass
class OneClassRun:
    """A finished or planned one-class run: its normal class and the AUROC (%) of each column (None: not measured)."""

    dataset: str
    normal_class: int
    seed: int | None
    names: list[str] | None
    values: dict[str, float | None]  # column (variant or baseline key) → AUROC %
    finished: bool


@dataclass
class OneClassTable:
    """One dataset's one-class results: per class and column a :class:`Cell` over seeds, the mean over classes."""

    dataset: str
    classes: list[int]
    class_names: dict[int, str]
    columns: list[str]
    labels: dict[str, str]
    cells: dict[tuple[Any, str], Cell]  # (class or MEAN, column)
    published: list[dict[str, str]]
    notes: list[str]

    @property
    def title(self) -> str:
        return (f"One-class AUROC (%) on {self.dataset}: each class in turn the in-distribution, the other classes "
                "the anomalies")

    def rows(self) -> list[Any]:
        return [*self.classes, MEAN]

    def row_texts(self, row: Any) -> list[str]:
        label = "mean over classes" if row == MEAN else self.class_names[row]
        return [label, *(self.cells[row, c].text() for c in self.columns)]


def _config(run: Run) -> dict[str, Any]:
    path = Path(run.source) / ".hydra" / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def one_class_runs(runs: list[Run]) -> list[OneClassRun]:
    """The runs on disk whose config sets ``data.normal_class``, with their AUROC on ``others`` and their own
    baselines'."""
    found = []
    for run in runs:
        if run.variant in BASELINES or not Path(run.source).is_dir():
            continue
        data = _config(run).get("data") or {}
        if data.get("normal_class") is None:
            continue
        names = evaluated_label_names(data).get(OTHERS)
        value = run.value(OTHERS, "auroc")
        values = {run.variant: None if value is None else 100 * value}
        baselines_file = Path(run.source) / BASELINES_FILE
        if baselines_file.is_file():
            for key, result in json.loads(baselines_file.read_text()).items():
                auroc = ((result.get("ood") or {}).get(OTHERS) or {}).get("auroc")
                values[key] = None if auroc is None else 100 * auroc
        found.append(OneClassRun(run.dataset, int(data["normal_class"]), run.seed, names, values,
                                 run.results is not None))
    return found


def build_oneclass_table(found: list[OneClassRun], dataset: str, labels: dict[str, str],
                         published: list[dict[str, str]]) -> OneClassTable:
    """The table of ``dataset``: per class and column the mean ± std over seeds; the mean row per seed over the
    classes (seeds that lack a class left out, and said)."""
    found = [f for f in found if f.dataset == dataset]
    classes = sorted({f.normal_class for f in found})
    names = next((f.names for f in found if f.names), None)
    variants = ordered({c for f in found for c in f.values if c not in BASELINES}, paper_order(labels))
    columns = [*variants, *(b for b in BASELINES if any(b in f.values for f in found))]
    headers = {c: BASELINES.get(c) or labels.get(c, c) for c in columns}
    cells, notes = {}, []
    for column in columns:
        for k in classes:
            group = [f for f in found if f.normal_class == k and column in f.values]
            cells[k, column] = Cell([f.values[column] for f in group if f.values[column] is not None],
                                    sum(not f.finished for f in group))
        seeds = sorted({f.seed for f in found if column in f.values}, key=lambda s: (s is None, s))
        means, partial = [], []
        for seed in seeds:
            per_class = {f.normal_class: f.values[column] for f in found
                         if f.seed == seed and f.values.get(column) is not None}
            (means.append(statistics.fmean(per_class.values())) if set(per_class) == set(classes)
             else partial.append(seed))
        cells[MEAN, column] = Cell(means)
        if partial:
            notes.append(f"{headers[column]}: seed(s) {', '.join(map(str, partial))} lack some classes and are left "
                         "out of the mean.")
    notes.insert(0, "AUROC of the other classes (OOD set `others`) against the normal class's test images; mean ± "
                    "sample std over seeds (one seed: its value); the mean row averages the classes within each seed "
                    "first. Raw pixels and Untrained: the same protocol scored without training (eval.baselines=auto).")
    mine = [p for p in published if p["dataset"] == dataset]
    if mine:
        notes.append("Published: mean AUROC over the classes as reported by the papers cited "
                     f"(ssad/report/{PUBLISHED_FILE}), not measured here; their setting in the columns.")
    return OneClassTable(dataset, classes, {k: class_name(k, names) for k in classes}, columns, headers, cells, mine,
                         notes)


def build_oneclass_tables(runs: list[Run], published: list[dict[str, str]] | None = None) -> list[OneClassTable]:
    """One :class:`OneClassTable` per dataset whose runs set ``data.normal_class``; none without such runs."""
    found = one_class_runs(runs)
    published = _rows(PUBLISHED_FILE, None) if published is None else published
    labels = variant_labels(runs)
    return [build_oneclass_table(found, d, labels, published) for d in dict.fromkeys(f.dataset for f in found)]


PUBLISHED_HEAD = ["method", "mean AUROC", "labels", "pretraining", "outlier exposure", "source"]


def _published_texts(entry: dict[str, str]) -> list[str]:
    return [entry["method"], f"{float(entry['auroc']):.1f}", *(entry[k] for k in SETTING), entry["source"]]


def to_markdown(table: OneClassTable) -> str:
    """The class table, then the published entries (when there are any), then notes."""
    head = ["normal class", *(table.labels[c] for c in table.columns)]
    lines = [f"**{table.title}**", "", *markdown_table(head, [table.row_texts(row) for row in table.rows()],
                                                       align=["<", *">" * len(table.columns)])]
    if table.published:
        lines += ["", "Published (as reported):", "",
                  *markdown_table(PUBLISHED_HEAD, [_published_texts(p) for p in table.published], align=list("<><<<<"))]
    return "\n".join([*lines, "", *table.notes, ""])


def to_latex(table: OneClassTable) -> str:
    """A booktabs ``table`` environment: the class table, the mean below a rule, the published entries in a
    tabular of their own, notes below."""
    spec = "l" + "c" * len(table.columns)
    body = [(r"\midrule" + "\n" if row == MEAN else "") + " & ".join(tex_escape(t) for t in table.row_texts(row))
            + r" \\" for row in table.rows()]
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(table.title)}}}",
             rf"\label{{tab:oneclass_{table.dataset}}}", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(tex_escape(h) for h in ["normal class", *(table.labels[c] for c in table.columns)]) + r" \\",
             r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]
    if table.published:
        lines += [r"\par\medskip", r"\begin{tabular}{lclllp{5cm}}", r"\toprule",
                  " & ".join(tex_escape(h) for h in PUBLISHED_HEAD) + r" \\", r"\midrule",
                  *(" & ".join(tex_escape(t) for t in _published_texts(p)) + r" \\" for p in table.published),
                  r"\bottomrule", r"\end{tabular}"]
    return "\n".join([*lines, r"\par\footnotesize", *(tex_escape(n) + r"\par" for n in table.notes),
                      r"\end{table}", ""])


CSV_FIELDS = ["dataset", "normal_class", "class_name", "method", "from", "auroc_mean", "auroc_std", "n_seeds",
              "n_missing", *SETTING, "source"]


def to_csv_rows(table: OneClassTable) -> list[dict[str, Any]]:
    """One row per class (and the mean) and column, percent; then one per published entry (``from`` published)."""
    rows = []
    for row in table.rows():
        for column in table.columns:
            cell = table.cells[row, column]
            rows.append({"dataset": table.dataset, "normal_class": row,
                         "class_name": "" if row == MEAN else table.class_names[row], "method": table.labels[column],
                         "from": "baseline" if column in BASELINES else "ours", "auroc_mean": without_noise(cell.mean),
                         "auroc_std": without_noise(cell.std), "n_seeds": len(cell.values),
                         "n_missing": cell.n_missing})
    rows += [{"dataset": table.dataset, "normal_class": MEAN, "class_name": "", "method": p["method"],
              "from": "published", "auroc_mean": float(p["auroc"]), **{k: p[k] for k in SETTING},
              "source": p["source"]} for p in table.published]
    return rows


def write_oneclass_tables(tables: list[OneClassTable], out: Path, stem: str = "oneclass") -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` in ``out`` holding ``tables``; nothing without tables."""
    if not tables:
        return []
    return write_formats(tables, out, stem, to_markdown, to_latex, CSV_FIELDS, to_csv_rows)
