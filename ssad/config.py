"""Start-up validation of a composed training config: types, ranges and known names, each error naming its key,
before any data is read or any model built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ssad.config_keys import check_keys

POSITIVE_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a positive integer")
NON_NEGATIVE_INT = (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0")
POSITIVE = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0, "a number > 0")
NON_NEGATIVE = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0, "a number >= 0")
PROBABILITY = (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a probability in [0, 1]")
MOMENTUM = (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a momentum in [0, 1)")
SCALE = (lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "a range [low, high] with 0 < low <= high <= 1")

RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": NON_NEGATIVE_INT,
    "data.size": POSITIVE_INT,
    "data.batch_size": POSITIVE_INT,
    "data.num_workers": (lambda v: v == "auto" or NON_NEGATIVE_INT[0](v), "an integer >= 0 or 'auto'"),
    "data.on_error": (lambda v: v in ("raise", "skip"), "'raise' or 'skip'"),
    "data.holdout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "a share in [0, 1)"),
    "negatives.weight": NON_NEGATIVE,
    "augment.global_size": POSITIVE_INT,
    "augment.local_size": POSITIVE_INT,
    "augment.n_global": (lambda v: isinstance(v, int) and v >= 2, "an integer >= 2 (L_pos pairs distinct views)"),
    "augment.n_local": NON_NEGATIVE_INT,
    "augment.global_scale": SCALE,
    "augment.local_scale": SCALE,
    "augment.flip_p": PROBABILITY,
    "augment.jitter_p": PROBABILITY,
    "augment.grayscale_p": PROBABILITY,
    "augment.solarize_p": PROBABILITY,
    "augment.blur_p": (lambda v: len(v) == 3 and all(0 <= p <= 1 for p in v), "three probabilities"),
    "augment.interpolation": (lambda v: v in ("bicubic", "bilinear"), "'bicubic' or 'bilinear'"),
    "augment.negative_global": (lambda v: v in ("random", "global1"), "'random' or 'global1'"),
    "model.student_temp": POSITIVE,
    "model.teacher_temp": POSITIVE,
    "model.warmup_teacher_temp": POSITIVE,
    "model.center_momentum": MOMENTUM,
    "model.momentum_teacher": (lambda v: isinstance(v, (int, float)) and 0 <= v <= 1, "a momentum in [0, 1]"),
    "model.head.out_dim": POSITIVE_INT,
    "optim.base_lr": POSITIVE,
    "optim.effective_batch": POSITIVE_INT,
    "optim.min_lr": NON_NEGATIVE,
    "optim.warmup_epochs": NON_NEGATIVE_INT,
    "optim.weight_decay": NON_NEGATIVE,
    "optim.weight_decay_end": NON_NEGATIVE,
    "optim.clip_grad": NON_NEGATIVE,
    "optim.clip_mode": (lambda v: v in ("per_param", "global"), "'per_param' or 'global'"),
    "optim.freeze_last_layer": NON_NEGATIVE_INT,
    "trainer.max_epochs": POSITIVE_INT,
    "eval.every_n_epochs": POSITIVE_INT,
    "eval.size": POSITIVE_INT,
}


def validate(cfg: DictConfig) -> None:
    """Raise one ValueError listing every key the code does not read (:func:`ssad.config_keys.check_keys`), else
    one listing every key whose value is out of range or of the wrong type."""
    check_keys(cfg, "train")
    problems = []
    for key, (ok, expected) in RULES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        try:
            valid = bool(ok(value))
        except TypeError:
            valid = False
        if not valid:
            problems.append(f"{key}={value!r} must be {expected}")
    if problems:
        raise ValueError("invalid configuration:\n  " + "\n  ".join(problems))
