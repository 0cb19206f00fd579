"""The one-class protocol of the anomaly-detection literature (Golan & El-Yaniv 2018; Tack et al. 2020): one class
of a labelled set is the in-distribution, every other class of the same set is the anomaly.

``data.normal_class=K`` derives the run's three sets from the labelled source that ``data.train`` names (its format
and arguments; a ``classes`` selection there is dropped):

- training: class K of its training split,
- test: class K of its test split (``data.test``'s source when the preset gives one, else ``data.train``'s with
  ``split: test``),
- OOD: one set, :data:`OTHERS`, the other classes of that test split, with their labels (so the evaluation reports
  the AUROC of each of them as well). The preset's own OOD sets are replaced: the protocol's AUROC is that of
  :data:`OTHERS` alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ssad.cli.errors import ConfigError
from ssad.data.sources import FORMATS, plain

OTHERS = "others"  # the name of the OOD set of the one-class protocol
# how many classes the labelled readers have (labels 0..N-1); other formats have their labels read
NUM_CLASSES = {"cifar10": 10, "digits": 10, "fashion_mnist_subset": 10, "mnist": 10, "svhn": 10, "stl10": 10}
CIFAR100_CLASSES = {"fine": 100, "coarse": 20}  # cifar100 by its ``labels`` argument

Spec = dict[str, Any]


def _split_default(fmt: str) -> str | None:
    """The default of the reader's ``split`` argument; None when the reader has no splits."""
    parameter = inspect.signature(FORMATS[fmt]).parameters.get("split") if fmt in FORMATS else None
    return None if parameter is None else parameter.default


def class_labels(spec: Mapping[str, Any], labels_of: Callable[[Spec], np.ndarray | None]) -> list[int]:
    """The class labels of the labelled source ``spec``: 0..N-1 for a reader whose classes are known
    (:data:`NUM_CLASSES`), 0..len(label_names)-1 where the spec names its classes, else the labels that
    ``labels_of(spec)`` reads."""
    fmt = spec.get("format")
    if fmt == "cifar100":
        return list(range(CIFAR100_CLASSES.get(spec.get("labels", "fine"), 100)))
    if fmt in NUM_CLASSES:
        return list(range(NUM_CLASSES[fmt]))
    if spec.get("label_names"):
        return list(range(len(spec["label_names"])))
    labels = labels_of(spec)
    if labels is None:
        raise ConfigError(f"data.normal_class: the test split of {fmt!r} has no labels, so there are no other classes "
                          "to take as anomalies; give a labelled set (npy: `labels: PATH`; image folders: one "
                          "subfolder per class)")
    return sorted(int(c) for c in np.unique(labels))


def one_class_specs(train: Mapping[str, Any] | None, test: Mapping[str, Any] | None, normal_class: Any, holdout: float,
                    labels_of: Callable[[Spec], np.ndarray | None]) -> tuple[Spec, Spec, dict[str, Spec]]:
    """The (training, test, OOD) specs of the one-class protocol with class ``normal_class`` as the in-distribution,
    from the labelled source of ``train`` (and of ``test`` where given); ``labels_of`` reads a spec's labels for a
    source whose classes are not known in advance. A :class:`ConfigError` names the key and the fix when the
    protocol cannot apply."""
    if isinstance(normal_class, bool) or not isinstance(normal_class, int) or normal_class < 0:
        raise ConfigError(f"data.normal_class={normal_class!r}: give the label of the normal class (an integer >= 0), "
                          "or null for no one-class protocol")
    if train is None:
        raise ConfigError("data.normal_class needs a labelled data.train (e.g. data=digits, data=cifar10, or "
                          "data.train={format: npy, path: X.npy, labels: Y.npy}); data.path has no labels")
    if holdout:
        raise ConfigError(f"data.normal_class and data.holdout={holdout} are both set: the one-class protocol takes "
                          "its test set from the source's test split; set data.holdout=0")
    source = {k: v for k, v in plain(train).items() if k not in ("classes", "name")}
    split = _split_default(source.get("format"))
    if test:
        test_source = {k: v for k, v in plain(test).items() if k not in ("classes", "name")}
    elif split is not None:
        test_source = {**source, "split": "test"}
    else:
        raise ConfigError(f"data.normal_class: data.train ({source.get('format')}) has no test split to draw the test "
                          "set and the other classes from; give data.test (the same set's test images, with labels)")
    if split is not None and "split" not in source:
        source["split"] = "train"  # some readers (mnist) default to their test split
    names = test_source.get("label_names") or source.get("label_names")
    classes = class_labels(test_source, labels_of)
    if normal_class not in classes:
        raise ConfigError(f"data.normal_class={normal_class}: {test_source.get('format')} has the classes "
                          f"{classes[0]}..{classes[-1]}; choose one of them")
    others = {**test_source, "classes": [c for c in classes if c != normal_class]}
    if names:
        others["label_names"] = list(names)
    return {**source, "classes": [normal_class]}, {**test_source, "classes": [normal_class]}, {OTHERS: others}


def class_name(normal_class: int, names: list[str] | None) -> str:
    """How a normal class is shown: ``K name`` where the spec gives ``label_names``, else ``K``."""
    if names and 0 <= normal_class < len(names):
        return f"{normal_class} {names[normal_class]}"
    return str(normal_class)
