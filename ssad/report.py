"""The paper's tables and figures from a sweep: ``python -m ssad.report SWEEP_DIR_OR_WANDB_PROJECT``.

Reads every run directory under ``SWEEP_DIR`` (``results.json`` and ``.hydra/config.yaml``, at any depth; no
network) or the runs of a W&B project ``entity/project`` (public API), and writes to ``--out`` (default
``SWEEP_DIR/report``): ``table2.{md,tex,csv}`` (rows = OOD sets + Average, columns = negative variants),
``table1.{md,tex,csv}`` (per in-distribution: Rot. ImgN and Combined), ``figure2.png`` and ``figure3.png``.
Cells are percent, mean ± sample std (ddof=1) over seeds, with the numbers published in Rafiee et al. (2022)
beside them. A planned run without results is shown as ``missing``, never filled in.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ssad.results import AVERAGE, METRICS, metric_value, unflatten_metrics  # noqa: E402

OOD_NAMES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "imagenet30": "ImageNet30",
             "tinyimagenet": "TinyImageNet", "lsun": "LSUN", "stl10": "STL10", "places365": "Places365",
             "texture": "Texture"}
NAMES = {**OOD_NAMES, AVERAGE: "Average"}
BASELINES = {"raw_pixels": "Raw pixels", "untrained": "Untrained"}  # ssad.baselines → baselines.json
TABLE2_METHODS = {**BASELINES, "none": "DINO", "imgn": "ImgN", "rot_imgn": "Rot_ImgN", "rot360_imgn": "Rot360_ImgN",
                  "dti": "DTI", "perm16_imgn": "Perm16_ImgN", "perm4_imgn": "Perm4_ImgN",
                  "rot_dti": "Rot_DTI", "pixperm_imgn": "PixPerm", "rot_indist": "Rot_InDist"}
TABLE1_METHODS = {"rot_imgn": "Ours_Rot_ImgN", "combined": "Ours_Combined"}
HEADERS = {**TABLE2_METHODS, "combined": "Combined"}
IMAGENET_OVERLAP = ("imagenet30", "tinyimagenet")
PAPER_SOURCE = "Rafiee et al., arXiv 2201.06378"


def name(key: str) -> str:
    """The paper's name of a dataset key (``cifar10`` → ``CIFAR10``); unknown keys keep their own name."""
    return NAMES.get(key, key)


def _ordered(items: Iterable[str], order: Iterable[str]) -> list[str]:
    """``items`` in the order of ``order``, then the others sorted."""
    items, order = set(items), list(order)
    return [k for k in order if k in items] + sorted(items - set(order))


def _pct(x: float | None) -> float | None:
    return None if x is None else 100 * x


def _round(x: float | None) -> float | None:
    """Without the float noise of a sum (92.45000000000002 → 92.45)."""
    return None if x is None else round(x, 10)


@dataclass
class Run:
    """One training run: what it was meant to be and its final results (``None``: failed or unfinished)."""

    source: str
    variant: str
    dataset: str
    seed: int | None
    results: dict[str, Any] | None
    planned_ood: tuple[str, ...] = ()
    negative_sources: frozenset[str] = field(default_factory=frozenset)

    def value(self, key: str, metric: str | None = None) -> float | None:
        """``metric`` of OOD set ``key`` (or of ``"average"``); with no metric, a run-level scalar such as
        ``knn_accuracy``. ``None`` when the run has no such number."""
        return metric_value(self.results, key, metric)


def make_run(source: str, config: Mapping[str, Any], results: dict[str, Any] | None) -> Run:
    """A :class:`Run` from a training config (``negatives``, ``data``, ``seed``) and its results, if any."""
    meta, negatives, data = results or {}, config.get("negatives") or {}, config.get("data") or {}
    variant = str(meta.get("variant") or negatives.get("name") or "unknown")
    if "parts" in negatives:
        sources = {p.get("source") for p in negatives["parts"] or []}
    else:
        sources = {"imagenet"} if "imgn" in variant else set()
    seed = meta.get("seed", config.get("seed"))
    return Run(source, variant, str(meta.get("dataset") or data.get("name") or "unknown"),
               None if seed is None else int(seed), results, tuple(data.get("ood") or ()), frozenset(sources))


def _drop_superseded(runs: list[Run]) -> list[Run]:
    """Drop failed attempts whose identity (dataset, variant, seed) another run completed."""
    done = {(r.dataset, r.variant, r.seed) for r in runs if r.results is not None}
    return [r for r in runs if r.results is not None or (r.dataset, r.variant, r.seed) not in done]


def collect_runs(path: str | os.PathLike) -> list[Run]:
    """Every run directory under ``path`` (at any depth): a directory holding ``results.json`` and/or
    ``.hydra/config.yaml``. Directories inside a run (e.g. ``eval/``) are not runs of their own; a folder where
    ``python -m ssad.baselines`` wrote ``baselines.json`` (and its ``.hydra/``) but no results is not a run."""
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    runs = []
    for dirpath, dirnames, _ in os.walk(root):
        run_dir = Path(dirpath)
        config_file = run_dir / ".hydra" / "config.yaml"
        results_file = run_dir / "results.json"
        baselines_only = (run_dir / "baselines.json").is_file() and not results_file.is_file()
        if (results_file.is_file() or config_file.is_file()) and not baselines_only:
            config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
            results = json.loads(results_file.read_text()) if results_file.is_file() else None
            runs.append(make_run(str(run_dir), config, results))
            dirnames.clear()
        dirnames.sort()
    if not runs:
        raise FileNotFoundError(
            f"no runs found under {root}: expected run directories (at any depth) holding results.json "
            "and/or .hydra/config.yaml, as `python -m ssad.train` (or its -m multirun) writes them")
    return _drop_superseded(runs) + collect_baselines(root, runs)


def collect_baselines(root: Path, runs: Sequence[Run]) -> list[Run]:
    """The columns of ``root/baselines.json`` (``python -m ssad.baselines``: raw pixels, untrained network),
    as runs of the sweep's most common in-distribution set."""
    path = root / "baselines.json"
    if not path.is_file() or not runs:
        return []
    dataset = Counter(r.dataset for r in runs).most_common(1)[0][0]
    baselines = json.loads(path.read_text())
    return [Run(str(path), key, dataset, None, baselines[key]) for key in BASELINES if key in baselines]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"negatives/name": x}`` or ``{"negatives.name": x}`` → ``{"negatives": {"name": x}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = re.split(r"[./]", key)
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return nested


def collect_wandb(project: str) -> list[Run]:
    """The runs of the W&B project ``entity/project`` via ``wandb.Api()``: config and summary."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", project):
        raise ValueError(f"{project!r} is neither an existing directory nor a W&B project 'entity/project'")
    import wandb

    try:
        api_runs = list(wandb.Api().runs(project))
    except Exception as err:  # network, authentication, unknown project
        raise ValueError(f"W&B project {project}: {err}") from err
    if not api_runs:
        raise ValueError(f"W&B project {project} has no runs")
    runs = [make_run(f"wandb:{'/'.join(r.path)} ({r.state})", _nest(r.config),
                     unflatten_metrics(dict(r.summary.items()))) for r in api_runs]
    return _drop_superseded(runs)


def load_paper(path: str | os.PathLike | None = None) -> dict[tuple[str, str, str, str], float]:
    """The paper's AUROC (%) keyed by (table, in_dist, ood, method) from ``ssad/paper_results.csv``."""
    source = Path(path) if path else resources.files("ssad").joinpath("paper_results.csv")
    text = source.read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {(r["table"], r["in_dist"], r["ood"], r["method"]): float(r["auroc"]) for r in rows}


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
                paper: Mapping[tuple[str, str, str, str], float] | None = None) -> Table:
    """Table ``table`` of the ``in_dist`` runs: rows = their OOD sets (planned or measured; + Average for
    Table 2), columns = ``variants``, paper numbers from ``paper`` (AUROC only)."""
    runs = [r for r in runs if r.dataset == in_dist and r.variant in variants]
    oods = {k for r in runs for k in (*r.planned_ood, *((r.results or {}).get("ood") or {}))}
    rows = _ordered(oods, OOD_NAMES)
    rows += [AVERAGE] if table == "2" else []
    methods = TABLE2_METHODS if table == "2" else TABLE1_METHODS
    paper = paper if metric == "auroc" else {}
    cells = {}
    for variant in variants:
        group = [r for r in runs if r.variant == variant]
        missing = sum(r.results is None for r in group)
        for row in rows:
            values = [100 * x for r in group if (x := r.value(row, metric)) is not None]
            key = (table, name(in_dist), name(row), methods.get(variant, ""))
            cells[row, variant] = Cell(values, missing, (paper or {}).get(key))
    notes = ["Measured: mean ± sample std over seeds (one seed: its value); missing = a planned run without "
             "results; — = not run or not evaluated."]
    if any(cell.paper is not None for cell in cells.values()):
        notes[0] += f" Paper: {PAPER_SOURCE}, Table {table}."
    imagenet = [HEADERS.get(v, v) for v in variants if any("imagenet" in r.negative_sources
                                                          for r in runs if r.variant == v)]
    marked = {row for row in rows if row in IMAGENET_OVERLAP} if imagenet else set()
    if marked:
        overlap = ", ".join(name(m) for m in sorted(marked))
        verb = "shares" if len(marked) == 1 else "share"
        notes.append(f"† {overlap} {verb} classes with ImageNet, the source of the negatives of "
                     f"{', '.join(imagenet)}: these OOD sets are not disjoint from them.")
    notes += [f"missing: {r.variant} seed {r.seed} ({r.source}) has no results."
              for r in runs if r.results is None]
    return Table(table, in_dist, metric, rows, list(variants), cells, marked, notes)


def build_tables(runs: Sequence[Run], metric: str = "auroc") -> tuple[Table, list[Table]]:
    """Table 2 (CIFAR10 runs, else the most common in-distribution; every variant) and Table 1 (one per
    in-distribution with Rot. ImgN or Combined runs)."""
    paper = load_paper()
    datasets = Counter(r.dataset for r in runs)
    in_dist = "cifar10" if "cifar10" in datasets else datasets.most_common(1)[0][0]
    variants = _ordered({r.variant for r in runs if r.dataset == in_dist}, TABLE2_METHODS)
    table2 = build_table(runs, "2", in_dist, variants, metric, paper)
    table1 = [build_table(runs, "1", d, list(TABLE1_METHODS), metric, paper)
              for d in _ordered({r.dataset for r in runs if r.variant in TABLE1_METHODS}, OOD_NAMES)]
    return table2, table1


def to_markdown(table: Table) -> str:
    """A GitHub Markdown table with a ``paper`` column beside each variant the paper reports, then notes."""
    head = ["OOD"]
    for variant in table.columns:
        head += [HEADERS.get(variant, variant)] + (["paper"] if table.has_paper(variant) else [])
    lines = [f"**{table.title}**", "", "| " + " | ".join(head) + " |",
             "|---" + "|---:" * (len(head) - 1) + "|"]
    lines += ["| " + " | ".join([table.row_label(row), *table.row_texts(row)]) + " |" for row in table.rows]
    return "\n".join([*lines, "", *table.notes, ""])


def _tex(text: str) -> str:
    """Escape LaTeX specials and write ±, † and — in LaTeX."""
    special = {"&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$", "{": r"\{", "}": r"\}",
               "±": r"$\pm$", "†": r"$^\dagger$", "—": "--"}
    return re.sub("[&%_#${}±†—]", lambda m: special[m.group()], text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment: each variant over ``ours`` / ``paper`` sub-columns, notes below."""
    top, sub, rules, spec, col = ["OOD"], [""], [], "l", 2
    for variant in table.columns:
        header = _tex(HEADERS.get(variant, variant))
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
            + " & ".join(_tex(t) for t in [table.row_label(row), *table.row_texts(row)]) + r" \\"
            for row in table.rows]
    label = f"tab:table{table.table}_{table.in_dist}"
    return "\n".join([r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(table.title)}}}",
                      rf"\label{{{label}}}", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
                      " & ".join(top) + r" \\", "".join(rules), " & ".join(sub) + r" \\", r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}", r"\par\footnotesize",
                      *(_tex(n) + r"\par" for n in table.notes), r"\end{table}", ""])


CSV_FIELDS = ["table", "in_dist", "ood", "variant", "method", "metric", "measured_mean", "measured_std",
              "n_seeds", "n_missing", "paper"]


def to_csv_rows(table: Table) -> list[dict[str, Any]]:
    """One row per cell (long format, percent); empty measured_mean = no measured value."""
    rows = []
    for row in table.rows:
        for variant in table.columns:
            cell = table.cells[row, variant]
            rows.append({"table": table.table, "in_dist": name(table.in_dist), "ood": name(row),
                         "variant": variant, "method": HEADERS.get(variant, variant), "metric": table.metric,
                         "measured_mean": _round(cell.mean), "measured_std": _round(cell.std),
                         "n_seeds": len(cell.values), "n_missing": cell.n_missing, "paper": cell.paper})
    return rows


def write_tables(tables: Sequence[Table], out: Path, stem: str) -> list[Path]:
    """``<stem>.md``, ``<stem>.tex`` and ``<stem>.csv`` in ``out`` holding ``tables``."""
    out.mkdir(parents=True, exist_ok=True)
    md, tex, csv_path = out / f"{stem}.md", out / f"{stem}.tex", out / f"{stem}.csv"
    md.write_text("\n".join(to_markdown(t) for t in tables))
    tex.write_text("\n".join(to_latex(t) for t in tables))
    with open(csv_path, "w", newline="") as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(row for t in tables for row in to_csv_rows(t))
    return [md, tex, csv_path]


def _skip(ax: plt.Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_axis_off()


MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")


def _scatter(ax: plt.Axes, runs: Sequence[Run], x: Callable[[Run], float | None],
             y: Callable[[Run], float | None], colors: Mapping[str, Any], xlabel: str, ylabel: str) -> None:
    """One point per run with both values; a variant is a colour and a hollow marker shape of its own (named in
    the figure's legend), so that runs at the same place stay visible and no label covers another."""
    points = [(r, x(r), y(r)) for r in runs]
    points = [(r, a, b) for r, a, b in points if a is not None and b is not None]
    if not points:
        return _skip(ax, f"no run reports both\n{xlabel} and {ylabel}")
    shapes = {v: MARKERS[i % len(MARKERS)] for i, v in enumerate(colors)}
    for variant in colors:
        mine = [(a, b) for r, a, b in points if r.variant == variant]
        if mine:
            ax.scatter(*zip(*mine), marker=shapes[variant], facecolors="none", edgecolors=[colors[variant]],
                       linewidths=1.4, s=42, label=HEADERS.get(variant, variant))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def _legend_right(fig: plt.Figure, axes: Sequence[plt.Axes]) -> None:
    """One legend of the variants for the whole figure, right of the panels (never over a point)."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="center left", bbox_to_anchor=(1.0, 0.5),
                   fontsize=8, title="variant", frameon=False)


def _finished(runs: Sequence[Run], in_dist: str) -> tuple[list[Run], dict[str, Any]]:
    """The ``in_dist`` runs with results, and a colour per variant (paper order)."""
    runs = [r for r in runs if r.dataset == in_dist and r.results is not None]
    cmap = plt.get_cmap("tab10" if len({r.variant for r in runs}) <= 10 else "tab20")
    variants = _ordered({r.variant for r in runs}, HEADERS)
    return runs, {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")  # the legend right of the panels included
    plt.close(fig)
    return path


def figure2(runs: Sequence[Run], in_dist: str, path: Path) -> Path:
    """Figure 2 (:func:`figure2_figure`) as a PNG at ``path``."""
    return _save(figure2_figure(runs, in_dist), path)


def figure2_figure(runs: Sequence[Run], in_dist: str) -> plt.Figure:
    """Left: occupied soft-classes per variant (mean ± std over seeds). Right: occupied soft-classes vs
    CIFAR100 AUROC (average AUROC when no run has CIFAR100 as OOD set), one point per run."""
    runs, colors = _finished(runs, in_dist)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    occupied = {v: [x for r in runs if r.variant == v and (x := r.value("occupied_soft_classes")) is not None]
                for v in colors}
    occupied = {v: xs for v, xs in occupied.items() if xs}
    if occupied:
        # horizontal bars: the variants' names stay horizontal and apart however long or many they are
        left.barh(range(len(occupied)), [statistics.fmean(xs) for xs in occupied.values()],
                  xerr=[statistics.stdev(xs) if len(xs) > 1 else 0 for xs in occupied.values()],
                  color=[colors[v] for v in occupied], capsize=3)
        left.set_yticks(range(len(occupied)), [HEADERS.get(v, v) for v in occupied])
        left.invert_yaxis()  # the first variant on top
        left.set_xlabel("occupied soft-classes (mean ± std over seeds)")
    else:
        _skip(left, "no run reports occupied soft-classes")
    ood = "cifar100" if any(r.value("cifar100", "auroc") is not None for r in runs) else AVERAGE
    xlabel = "CIFAR100 AUROC (%)" if ood == "cifar100" else "average AUROC (%) (no CIFAR100 OOD set)"
    _scatter(right, runs, lambda r: _pct(r.value(ood, "auroc")), lambda r: r.value("occupied_soft_classes"),
             colors, xlabel, "occupied soft-classes")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))  # a count
    fig.suptitle(f"Figure 2: occupied soft-classes, {name(in_dist)} as in-distribution")
    fig.tight_layout()
    _legend_right(fig, [right])
    return fig


def figure3(runs: Sequence[Run], in_dist: str, path: Path) -> Path:
    """Figure 3 (:func:`figure3_figure`) as a PNG at ``path``."""
    return _save(figure3_figure(runs, in_dist), path)


def figure3_figure(runs: Sequence[Run], in_dist: str) -> plt.Figure:
    """Average AUROC vs kNN accuracy (left) and vs sensitivity (right), one point per run."""
    runs, colors = _finished(runs, in_dist)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))

    def auroc(run: Run) -> float | None:
        return _pct(run.value(AVERAGE, "auroc"))

    _scatter(axes[0], runs, lambda r: _pct(r.value("knn_accuracy")), auroc, colors, "kNN accuracy (%)",
             "average AUROC (%)")
    _scatter(axes[1], runs, lambda r: _pct(r.value("sensitivity")), auroc, colors,
             "sensitivity: AUROC train vs test in-distribution (%)", "average AUROC (%)")
    fig.suptitle(f"Figure 3: AUROC vs kNN accuracy and sensitivity, {name(in_dist)} as in-distribution")
    fig.tight_layout()
    _legend_right(fig, axes)
    return fig


def empty_tables_reason(runs: Sequence[Run]) -> str | None:
    """Why the tables hold no measured OOD metric (every cell ``—`` or ``missing``), and how to get one; None when
    some run has one."""
    finished = [r for r in runs if r.results is not None]
    if any((r.results or {}).get("ood") for r in finished):
        return None
    if not finished:
        return (f"the tables are empty: none of the {len(runs)} runs has a results.json yet (unfinished or failed; "
                "a run writes it after its last epoch)")
    add = ("train with OOD sets: +data.ood.NAME='{format: image_folder, path: /data/other_images}' (or a data "
           "preset that has them, e.g. data=cifar10)")
    if not any(r.planned_ood for r in finished):
        return (f"the tables are empty: none of the {len(finished)} finished runs was given an OOD set (data.ood is "
                f"empty in their .hydra/config.yaml), so there is no AUROC to put in them; {add}")
    return (f"the tables are empty: the {len(finished)} finished runs have OOD sets but no OOD metrics, which needs an "
            "in-distribution test set as well (data.test, or data.holdout=0.1 to hold out 10% of the training "
            "images)")


def write_report(runs: Sequence[Run], out: str | os.PathLike, metric: str = "auroc") -> list[Path]:
    """Write the tables (Markdown, LaTeX, CSV) and figures (PNG) of ``runs`` to ``out``; returns the paths. Empty
    tables say why in their notes (:func:`empty_tables_reason`)."""
    out = Path(out)
    table2, table1 = build_tables(runs, metric)
    reason = empty_tables_reason(runs)
    if reason:
        table2.notes.append(f"Note: {reason}.")
    paths = write_tables([table2], out, "table2") + (write_tables(table1, out, "table1") if table1 else [])
    return paths + [figure2(runs, table2.in_dist, out / "figure2.png"),
                    figure3(runs, table2.in_dist, out / "figure3.png")]


def main(argv: Sequence[str] | None = None) -> None:
    """``ssad-report SWEEP_DIR_OR_WANDB_PROJECT [--out DIR] [--metric auroc]``: write the report, print the
    Markdown tables; exits with a message when there is nothing to report."""
    parser = argparse.ArgumentParser(prog="ssad-report", description="Write the paper's Tables 1 and 2 "
                                     "(Markdown, LaTeX, CSV) and Figures 2 and 3 (PNG) from a sweep's runs.")
    parser.add_argument("source", metavar="SWEEP_DIR_OR_WANDB_PROJECT",
                        help="a sweep (or run) directory, or a W&B project entity/project")
    parser.add_argument("--out", help="output directory (default: SWEEP_DIR/report, or "
                                      "report/<entity>_<project> for W&B)")
    parser.add_argument("--metric", choices=list(METRICS), default="auroc", help="metric of the tables")
    args = parser.parse_args(argv)
    local = Path(args.source).exists()
    try:
        runs = collect_runs(args.source) if local else collect_wandb(args.source)
    except (OSError, ValueError) as err:
        raise SystemExit(f"ssad-report: {err}") from err
    default_out = Path(args.source) / "report" if local else Path("report") / args.source.replace("/", "_")
    out = Path(args.out) if args.out else default_out
    paths = write_report(runs, out, args.metric)
    for path in paths:
        if path.suffix == ".md":
            print(path.read_text())
    missing = sum(r.results is None for r in runs)
    print(f"{len(runs)} runs ({missing} missing); wrote", *map(str, paths), sep="\n  ")
    reason = empty_tables_reason(runs)
    if reason:
        print(f"note: {reason}")


if __name__ == "__main__":
    main()
