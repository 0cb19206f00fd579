"""Every command's config schema: Hydra structured configs (dataclasses in the ConfigStore) with each key's type and
range, composed last in the command's defaults list (``- train_schema`` in ``conf/train.yaml``, ``- evaluate_schema``,
``- export_schema``, ``- score_schema``).

Composed last, the schema adds no value: every field is ``MISSING``, so the presets' values stay (the defaults live
in YAML, once) and the nodes take the schema's types. Hydra then keeps the config in struct mode, so a command-line
override of an unknown key or of a value of the wrong type fails while the config is composed, naming the key.
Ranges are checked by each node's ``__post_init__`` when :func:`schema_problems` builds the nodes from the
composed values (:func:`ssad.config.validation.validate`, before any data is read or any model built).

A node that a group's preset may leave out (``callbacks.collapse``: not with ``callbacks=none``) is not in the
stored schema, which would add it; it is checked the same way where the composed config holds it
(:data:`OPTIONAL_NODES`). Objects also built without a config (``EvalSettings``, ``CollapseMonitor``) check their
arguments with the same node (:func:`check_values`).

A node names only the keys it checks; the others of its node (a ``_target_``'s further arguments, dataset specs)
stay as composed, and :mod:`ssad.config.keys` checks that the code reads them.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ssad.cli.errors import UserError
from ssad.scoring.metrics import MIN_TEMPERATURE


@dataclass(frozen=True)
class Check:
    """A range (and type) check of one value, and what it expects, as the error message words it."""

    ok: Callable[[Any], bool]
    expected: str

    def __call__(self, value: Any) -> bool:
        try:
            return bool(self.ok(value))
        except TypeError:
            return False


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


POSITIVE_INT = Check(lambda v: _int(v) and v > 0, "a positive integer")
NON_NEGATIVE_INT = Check(lambda v: _int(v) and v >= 0, "an integer >= 0")
POSITIVE = Check(lambda v: _number(v) and v > 0, "a number > 0")
NON_NEGATIVE = Check(lambda v: _number(v) and v >= 0, "a number >= 0")
PROBABILITY = Check(lambda v: _number(v) and 0 <= v <= 1, "a probability in [0, 1]")
UNIT = Check(lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]")
SHARE = Check(lambda v: _number(v) and 0 < v <= 1, "a share in (0, 1], e.g. 0.95 or 0.99")
EQ6_TEMPERATURE = Check(lambda v: _number(v) and v >= MIN_TEMPERATURE,
                        f"a number >= {MIN_TEMPERATURE:.5f} (below it Eq. 6 overflows float64; AUROC-1NN is its τ → 0 "
                        "limit)")
SCALE = Check(lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "a range [low, high] with 0 < low <= high <= 1")


def one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, " or ".join(repr(c) for c in choices))


def checked(check: Check) -> Any:
    """A schema field: ``MISSING`` (its value comes from the YAML presets) and checked by ``check``."""
    return field(default=MISSING, metadata={"check": check})


def node(cls: type) -> Any:
    """A schema field holding the node ``cls``."""
    return field(default_factory=cls)


class SchemaError(UserError, ValueError):
    """Values out of range or of the wrong type, one ``key=value must be ...`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class Node:
    """A schema node: ``__post_init__`` checks every field that has a :class:`Check` and a value."""

    def __post_init__(self) -> None:
        problems = []
        for f in dataclasses.fields(self):
            value, check = getattr(self, f.name), f.metadata.get("check")
            if check is not None and value is not None and value != MISSING and not check(value):
                problems.append(f"{f.name}={value!r} must be {check.expected}")
        if problems:
            raise SchemaError(problems)


@dataclass
class DataSchema(Node):
    size: int = checked(POSITIVE_INT)
    batch_size: int = checked(POSITIVE_INT)
    num_workers: Any = checked(Check(lambda v: v == "auto" or NON_NEGATIVE_INT(v), "an integer >= 0 or 'auto'"))
    on_error: str = checked(one_of("raise", "skip"))
    holdout: float = checked(Check(lambda v: _number(v) and 0 <= v < 1, "a share in [0, 1)"))
    holdout_seed: int = checked(NON_NEGATIVE_INT)
    epoch_size: int | None = checked(POSITIVE_INT)


@dataclass
class NegativesSchema(Node):
    weight: float = checked(NON_NEGATIVE)


@dataclass
class AugmentSchema(Node):
    global_size: int = checked(POSITIVE_INT)
    local_size: int = checked(POSITIVE_INT)
    n_global: int = checked(Check(lambda v: _int(v) and v >= 2, "an integer >= 2 (L_pos pairs distinct views)"))
    n_local: int = checked(NON_NEGATIVE_INT)
    global_scale: list[float] = checked(SCALE)
    local_scale: list[float] = checked(SCALE)
    flip_p: float = checked(PROBABILITY)
    jitter_p: float = checked(PROBABILITY)
    grayscale_p: float = checked(PROBABILITY)
    solarize_p: float = checked(PROBABILITY)
    blur_p: list[float] = checked(Check(lambda v: len(v) == 3 and all(map(PROBABILITY, v)), "three probabilities"))
    interpolation: str = checked(one_of("bicubic", "bilinear"))
    negative_global: str = checked(one_of("random", "global1"))


@dataclass
class HeadSchema(Node):
    out_dim: int = checked(POSITIVE_INT)


@dataclass
class ModelSchema(Node):
    head: HeadSchema = node(HeadSchema)
    student_temp: float = checked(POSITIVE)
    teacher_temp: float = checked(POSITIVE)
    warmup_teacher_temp: float = checked(POSITIVE)
    center_momentum: float = checked(Check(lambda v: _number(v) and 0 <= v < 1, "a momentum in [0, 1)"))
    momentum_teacher: float = checked(Check(lambda v: _number(v) and 0 <= v <= 1, "a momentum in [0, 1]"))


@dataclass
class OptimSchema(Node):
    """Every key of the ``optim`` node (no ``_target_``: :class:`ssad.method.module.SSADModule` reads them one by
    one)."""

    base_lr: float = checked(POSITIVE)
    effective_batch: int | None = checked(POSITIVE_INT)
    min_lr: float = checked(NON_NEGATIVE)
    warmup_epochs: int = checked(NON_NEGATIVE_INT)
    weight_decay: float = checked(NON_NEGATIVE)
    weight_decay_end: float = checked(NON_NEGATIVE)
    clip_grad: float = checked(NON_NEGATIVE)
    clip_mode: str = checked(one_of("per_param", "global"))
    freeze_last_layer: int = checked(NON_NEGATIVE_INT)
    fused: bool = MISSING


@dataclass
class TrainerSchema(Node):
    max_epochs: int = checked(POSITIVE_INT)


@dataclass
class EvalSettingsSchema(Node):
    """``eval.settings``, the arguments of :class:`ssad.scoring.evaluation.EvalSettings`."""

    temperature: float = checked(EQ6_TEMPERATURE)
    knn_k: int = checked(POSITIVE_INT)
    knn_temperature: float = checked(POSITIVE)
    soft_classes_split: str = checked(one_of("test", "train"))
    soft_classes_center: str = checked(one_of("running", "dataset"))
    soft_classes_temperature: float = checked(POSITIVE)
    batch_size: int = checked(POSITIVE_INT)
    progress: bool = MISSING


@dataclass
class EvalSchema(Node):
    every_n_epochs: int = checked(POSITIVE_INT)
    size: int = checked(POSITIVE_INT)
    plots: bool = MISSING
    baselines: str | None = MISSING
    settings: EvalSettingsSchema = node(EvalSettingsSchema)


@dataclass
class CollapseSchema(Node):
    """``callbacks.collapse``, the arguments of :class:`ssad.scoring.collapse.CollapseMonitor`."""

    warmup_epochs: int = checked(NON_NEGATIVE_INT)
    min_teacher_drift: float = checked(UNIT)
    max_entropy_share: float = checked(UNIT)
    min_entropy_of_mean_share: float = checked(UNIT)
    min_rank_share: float = checked(UNIT)
    max_cosine: float = checked(UNIT)
    stop: bool = MISSING
    patience: int = checked(POSITIVE_INT)


@dataclass
class ScorerSchema(Node):
    """``scorer``, the parameters of the built-in OOD scores that have them (:mod:`ssad.scoring.scores`); a score of
    the user's own checks its own."""

    temperature: float | None = checked(EQ6_TEMPERATURE)
    k: int | None = checked(POSITIVE_INT)


@dataclass
class TrainSchema(Node):
    """The root of ``python -m ssad.train``'s config."""

    seed: int = checked(NON_NEGATIVE_INT)
    budget_check: bool = MISSING
    data: DataSchema = node(DataSchema)
    negatives: NegativesSchema = node(NegativesSchema)
    augment: AugmentSchema = node(AugmentSchema)
    model: ModelSchema = node(ModelSchema)
    optim: OptimSchema = node(OptimSchema)
    trainer: TrainerSchema = node(TrainerSchema)
    eval: EvalSchema = node(EvalSchema)


@dataclass
class CheckpointEvalSchema(Node):
    """``eval`` of ``ssad.evaluate`` and ``ssad.export`` (``size`` null: the checkpoint's own)."""

    size: int | None = checked(POSITIVE_INT)
    plots: bool = MISSING
    settings: EvalSettingsSchema = node(EvalSettingsSchema)


@dataclass
class EvaluateSchema(Node):
    """The root of ``python -m ssad.evaluate``'s config."""

    eval: CheckpointEvalSchema = node(CheckpointEvalSchema)
    accelerator: str = checked(one_of("auto", "cpu", "cuda"))
    trust_file: bool = MISSING


@dataclass
class ExportSchema(EvaluateSchema):
    """The root of ``python -m ssad.export``'s config."""

    tpr: float = checked(SHARE)
    format: str | None = checked(one_of("pt", "onnx"))
    thumbnails_max: int = checked(NON_NEGATIVE_INT)


@dataclass
class ScoreSchema(Node):
    """The root of ``python -m ssad.score``'s config."""

    tpr: float | None = checked(SHARE)
    on_error: str = checked(one_of("raise", "skip"))
    batch_size: int = checked(POSITIVE_INT)
    trust_file: bool = MISSING


# each command's schema, stored in the ConfigStore as "<command>_schema" (the name its defaults list composes)
SCHEMAS: dict[str, type[Node]] = {"train": TrainSchema, "evaluate": EvaluateSchema, "export": ExportSchema,
                                  "score": ScoreSchema}
# nodes checked only where the composed config holds them (full key -> node), per command
OPTIONAL_NODES: dict[str, dict[str, type[Node]]] = {"train": {"callbacks.collapse": CollapseSchema,
                                                               "scorer": ScorerSchema},
                                                     "evaluate": {"scorer": ScorerSchema},
                                                     "export": {"scorer": ScorerSchema}}


def _build(cls: type[Node], cfg: DictConfig, path: str, problems: list[str]) -> Node | None:
    """The node ``cls`` from the composed values at ``path`` (resolved), its children first; the range problems of
    each node, named by full key, are added to ``problems``."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{path}{f.name}"
        if isinstance(hints[f.name], type) and issubclass(hints[f.name], Node):
            values[f.name] = _build(hints[f.name], cfg, f"{key}.", problems)
            continue
        value = OmegaConf.select(cfg, key, default=None)
        values[f.name] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    try:
        return cls(**values)
    except SchemaError as err:
        problems.extend(path + problem for problem in err.problems)
        return None


def schema_problems(cfg: DictConfig, config_name: str = "train") -> list[str]:
    """Every ``key=value must be ...`` of the composed config ``cfg`` of the command ``config_name`` (empty when
    all are in range, or when the command has no schema: a primary config of the user's own)."""
    problems: list[str] = []
    if config_name in SCHEMAS:
        _build(SCHEMAS[config_name], cfg, "", problems)
    for key, cls in OPTIONAL_NODES.get(config_name, {}).items():
        if OmegaConf.select(cfg, key) is not None:
            _build(cls, cfg, f"{key}.", problems)
    return problems


def check_values(cls: type[Node], values: Mapping[str, Any], path: str) -> None:
    """Raise a :class:`SchemaError` naming (by full key, ``path`` + name) every value of ``values`` that the node
    ``cls`` finds out of range or of the wrong type."""
    try:
        cls(**values)
    except SchemaError as err:
        raise SchemaError([path + problem for problem in err.problems]) from None


def optim_keys() -> set[str]:
    """The keys of the ``optim`` node."""
    return {f.name for f in dataclasses.fields(OptimSchema)}


for _name, _schema in SCHEMAS.items():
    ConfigStore.instance().store(name=f"{_name}_schema", node=_schema)
