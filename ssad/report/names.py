"""How the report names and orders what it shows: a negative variant by its preset's ``label`` (the run's saved
config, else the packaged preset ``conf/negatives/<name>.yaml``, else its name), a dataset by the name the
published tables give it (``cifar100`` → ``CIFAR100``), variants in the paper's column order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache

import yaml

from ssad.config.keys import CONFIG_DIR
from ssad.report.published import load_paper
from ssad.report.runs import Run
from ssad.scoring.results import BASELINES

OURS = "Ours_"  # the paper's Table 1 names its own variants Ours_<label>


@cache
def _published() -> tuple[dict[str, str], dict[str, list[str]]]:
    """The published dataset names by lower-case key, and each table's methods in the paper's order."""
    datasets: dict[str, str] = {}
    methods: dict[str, list[str]] = {}
    for table, in_dist, ood, method in load_paper():
        datasets.update({in_dist.lower(): in_dist, ood.lower(): ood})
        methods.setdefault(table, [])
        if method not in methods[table]:
            methods[table].append(method)
    return datasets, methods


def name(key: str) -> str:
    """The published name of a dataset key, matched without case (``cifar10`` → ``CIFAR10``, ``average`` →
    ``Average``); other keys keep their own name."""
    return _published()[0].get(key.lower(), key)


def ordered(items: Iterable[str], order: Iterable[str]) -> list[str]:
    """``items`` in the order of ``order``, then the others sorted."""
    items, order = set(items), list(order)
    return [k for k in order if k in items] + sorted(items - set(order))


def in_published_order(keys: Iterable[str]) -> list[str]:
    """Dataset keys the published tables name first, in their order (CIFAR10, CIFAR100, SVHN, ...), then the
    others in the order given."""
    keys, published = list(dict.fromkeys(keys)), [k.lower() for k in _published()[0]]
    known = sorted((k for k in keys if k.lower() in published), key=lambda k: published.index(k.lower()))
    return known + [k for k in keys if k.lower() not in published]


@cache
def preset_labels() -> dict[str, str]:
    """The ``label`` of every packaged negatives preset by its ``name`` (the name where it has no label)."""
    labels = {}
    for path in sorted((CONFIG_DIR / "negatives").glob("*.yaml")):
        preset = yaml.safe_load(path.read_text()) or {}
        variant = str(preset.get("name") or path.stem)
        labels[variant] = str(preset.get("label") or variant)
    return labels


def variant_labels(runs: Sequence[Run]) -> dict[str, str]:
    """Every variant's label: the baselines', the packaged presets', and those the runs' configs give."""
    return {**BASELINES, **preset_labels(), **{r.variant: r.label for r in runs if r.label}}


def paper_method(table: str, label: str) -> str:
    """The method name under which the paper's Table ``table`` lists the variant labelled ``label``."""
    return OURS + label if table == "1" else label


def paper_variants(table: str, labels: Mapping[str, str]) -> list[str]:
    """The variants (of ``labels``: variant → label) the paper's Table ``table`` reports, in its order."""
    by_method = {paper_method(table, label): variant for variant, label in labels.items()}
    return [by_method[m] for m in _published()[1].get(table, []) if m in by_method]


def paper_order(labels: Mapping[str, str], tables: Sequence[str] = ("2",)) -> list[str]:
    """The baselines, then the variants of the paper's ``tables`` in the paper's column order."""
    order = list(BASELINES)
    for table in tables:
        order += [v for v in paper_variants(table, labels) if v not in order]
    return order
