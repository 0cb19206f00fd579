"""The runs a report is made of: run directories on disk (``results.json`` and ``.hydra/config.yaml``), a sweep
folder's ``baselines.json``, or the runs of a W&B project."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ssad.scoring.results import BASELINES, BASELINES_FILE, metric_value, unflatten_metrics


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
    label: str | None = None  # the negatives preset's display name, when its config gives one
    ood_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # data.ood_groups: e.g. near, far
    normal_class: int | None = None  # data.normal_class of a one-class run (its baselines' too); None otherwise

    def value(self, key: str, metric: str | None = None) -> float | None:
        """``metric`` of OOD set ``key`` (or of ``"average"``); with no metric, a run-level scalar such as
        ``knn_accuracy``. ``None`` when the run has no such number."""
        return metric_value(self.results, key, metric)


def make_run(source: str, config: Mapping[str, Any], results: dict[str, Any] | None) -> Run:
    """A :class:`Run` from a training config (``negatives``, ``data``, ``seed``) and its results, if any. Its OOD
    sets are the keys of ``data.ood``, in the preset's order, grouped by ``data.ood_groups`` where it has them."""
    meta, negatives, data = results or {}, config.get("negatives") or {}, config.get("data") or {}
    variant = str(meta.get("variant") or negatives.get("name") or "unknown")
    if "parts" in negatives:
        sources = {p.get("source") for p in negatives["parts"] or []}
    else:
        sources = {"imagenet"} if "imgn" in variant else set()
    seed = meta.get("seed", config.get("seed"))
    groups = {str(g): tuple(sets) for g, sets in (data.get("ood_groups") or {}).items()}
    normal = data.get("normal_class")
    return Run(source, variant, str(meta.get("dataset") or data.get("name") or "unknown"),
               None if seed is None else int(seed), results, tuple(data.get("ood") or ()), frozenset(sources),
               negatives.get("label"), groups, None if normal is None else int(normal))


def _drop_superseded(runs: list[Run]) -> list[Run]:
    """Drop failed attempts whose identity (dataset, variant, seed) another run completed."""
    done = {(r.dataset, r.variant, r.seed) for r in runs if r.results is not None}
    return [r for r in runs if r.results is not None or (r.dataset, r.variant, r.seed) not in done]


def collect_runs(path: str | os.PathLike) -> list[Run]:
    """Every run directory under ``path`` (at any depth): a directory holding ``results.json`` and/or
    ``.hydra/config.yaml``. Directories inside a run (e.g. ``eval/``) are not runs of their own; a folder where
    ``python -m ssad.scoring.baselines`` wrote ``baselines.json`` (and its ``.hydra/``) but no results is not a run."""
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"{root} is not a directory")
    runs = []
    for dirpath, dirnames, _ in os.walk(root):
        run_dir = Path(dirpath)
        config_file = run_dir / ".hydra" / "config.yaml"
        results_file = run_dir / "results.json"
        baselines_only = ((run_dir / BASELINES_FILE).is_file() and not results_file.is_file()
                          and _job_name(run_dir) != "train")  # a training run writes one too (eval.baselines=auto)
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


def _job_name(run_dir: Path) -> str | None:
    """The Hydra job that made ``run_dir`` (``train``, ``baselines``) from its ``.hydra/hydra.yaml``, if any."""
    path = run_dir / ".hydra" / "hydra.yaml"
    if not path.is_file():
        return None
    return (((yaml.safe_load(path.read_text()) or {}).get("hydra") or {}).get("job") or {}).get("name")


def collect_baselines(root: Path, runs: Sequence[Run]) -> list[Run]:
    """The baselines (``python -m ssad.scoring.baselines``: raw pixels, the untrained network as built and with its
    BatchNorm statistics measured) as runs of their own: ``root/baselines.json``'s columns for the sweep's most
    common in-distribution set; without that file, the runs' own (``eval.baselines=auto``), one per
    in-distribution set and seed, so that a seed sweep's tables give them as mean ± std over the seeds too. Those
    of one-class runs (``data.normal_class``) are kept apart from the others' and carry the first such run's class."""
    path = root / BASELINES_FILE
    if path.is_file() and runs:
        dataset = Counter(r.dataset for r in runs).most_common(1)[0][0]
        return _baseline_runs(path, dataset, None)
    own = {}
    for run in runs:
        file = Path(run.source) / BASELINES_FILE
        if file.is_file():
            own.setdefault((run.dataset, run.seed, run.normal_class is not None), (file, run.normal_class))
    return [b for (dataset, seed, _), (file, normal) in own.items()
            for b in _baseline_runs(file, dataset, seed, normal)]


def _baseline_runs(path: Path, dataset: str, seed: int | None, normal_class: int | None = None) -> list[Run]:
    baselines = json.loads(path.read_text())
    return [Run(str(path), key, dataset, seed, baselines[key], label=label, normal_class=normal_class)
            for key, label in BASELINES.items() if key in baselines]


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
