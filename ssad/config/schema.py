"""Every command's config schema: Hydra structured configs (dataclasses) with each key's type, range, meaning and,
for the nodes that objects also take without a config, default. This module is the one definition of them.

Two kinds of node:

- A node whose values the YAML presets set (``data``, ``augment``, ``model``, ...): every field is ``MISSING``. Each
  command's root schema is stored as ``<command>_schema`` and composed last in its defaults list (``- train_schema``
  in ``conf/train.yaml``); it adds no value, the presets' values stay, and the nodes take the schema's types. Hydra
  then keeps the config in struct mode, so a command-line override of an unknown key or of a value of the wrong type
  fails while the config is composed, naming the key.
- A node with defaults (:data:`DEFAULTS_NODES`: ``eval.settings``, the optimiser's schedule ``optim``): its fields
  carry the defaults, and the group preset composes the node first (``- /schema/eval_settings@settings`` in
  ``conf/eval/default.yaml``), so YAML sets only what differs and Python objects built without a config
  (:class:`EvalSettings`, :class:`ssad.method.module.SSADModule`) take the same values.

Ranges are checked by each node's ``__post_init__`` when :func:`ssad.config.validation.schema_problems` builds the
nodes from the composed values (:func:`ssad.config.validation.validate`, before any data is read or any model
built). Each field's ``metadata["doc"]`` says in a line what the key means (``--help`` and the docs' config reference
print it).

A node that a group's preset may leave out (``callbacks.collapse``: not with ``callbacks=none``) is not in the
stored schema, which would add it; it is checked the same way where the composed config holds it
(:data:`OPTIONAL_NODES`). Objects also built without a config (``CollapseMonitor``) check their arguments with the
same node (:func:`ssad.config.fields.check_values`).

A node names the keys it checks; the others of its node (a ``_target_``'s further arguments, dataset specs) stay as
composed, and :mod:`ssad.config.keys` checks that the code reads them. The nodes whose keys are all here
(:data:`CLOSED_NODES`) are the key registry that :mod:`ssad.config.keys` reads.

Nothing is registered at import: the commands (and tests, and the docs) call :func:`register_configs` before
composing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from ssad.config.fields import (
    EQ6_TEMPERATURE,
    NON_NEGATIVE,
    NON_NEGATIVE_INT,
    POSITIVE,
    POSITIVE_INT,
    PROBABILITY,
    SCALE,
    SHARE,
    UNIT,
    Check,
    Node,
    SchemaError,
    checked,
    is_int,
    is_number,
    node,
    one_of,
)


@dataclass
class DataSchema(Node):
    size: int = checked(POSITIVE_INT, "side of the square images, in pixels, as stored and cached")
    batch_size: int = checked(POSITIVE_INT, "images per step on one process (the micro-batch with accumulation)")
    num_workers: Any = checked(Check(lambda v: v == "auto" or NON_NEGATIVE_INT(v), "an integer >= 0 or 'auto'"),
                               "data-loading worker processes (auto: from the CPUs available)")
    on_error: str = checked(one_of("raise", "skip"),
                            "unreadable image files: raise (list them and stop) or skip (warn, leave them out)")
    holdout: float = checked(Check(lambda v: is_number(v) and 0 <= v < 1, "a share in [0, 1)"),
                             "share of the training images held out as the test set (only without data.test)")
    holdout_seed: int = checked(NON_NEGATIVE_INT, "seed that draws the held-out images (the same for every run)")
    epoch_size: int | None = checked(POSITIVE_INT, "training images an epoch (null: one pass over the set)")


@dataclass
class NegativesSchema(Node):
    name: str = checked(None, "the variant's name (the run's label in tables and W&B)")
    label: str = checked(None, "the variant's name as the paper's tables print it")
    weight: float = checked(NON_NEGATIVE, "λ of L = L_pos + λ·L_neg (Eq. 5); 0 trains without negatives")
    parts: Any = checked(None, "the negative sources: a list of {source, transform, weight}")


@dataclass
class AugmentSchema(Node):
    global_size: int = checked(POSITIVE_INT, "side of the global views, in pixels")
    local_size: int = checked(POSITIVE_INT, "side of the local views, in pixels")
    n_global: int = checked(Check(lambda v: is_int(v) and v >= 2, "an integer >= 2 (L_pos pairs distinct views)"),
                            "global views per image (the teacher sees these)")
    n_local: int = checked(NON_NEGATIVE_INT, "local views per image (the student only)")
    global_scale: list[float] = checked(SCALE, "area range of a global crop, as a share of the image")
    local_scale: list[float] = checked(SCALE, "area range of a local crop, as a share of the image")
    flip_p: float = checked(PROBABILITY, "probability of a horizontal flip")
    jitter_p: float = checked(PROBABILITY, "probability of colour jitter")
    grayscale_p: float = checked(PROBABILITY, "probability of turning a view grey")
    solarize_p: float = checked(PROBABILITY, "probability of solarising the second global view")
    blur_p: list[float] = checked(Check(lambda v: len(v) == 3 and all(map(PROBABILITY, v)), "three probabilities"),
                                  "probability of a Gaussian blur: global view 1, global view 2, local views")
    interpolation: str = checked(one_of("bicubic", "bilinear"), "resampling of the crops")
    negative_global: str = checked(one_of("random", "global1"),
                                   "a negative's global view: random (either global pipeline) or global1")


@dataclass
class HeadSchema(Node):
    out_dim: int = checked(POSITIVE_INT, "K, the number of soft-classes of the head's output")


@dataclass
class CentringSchema(Node):
    """``model.centring``: the teacher's centre and output normalisation (:mod:`ssad.method.centring`)."""

    name: str = checked(None, "the teacher's targets: ema (softmax((g_t − c)/τ_t), the paper's) or sinkhorn "
                        "(Sinkhorn-Knopp; ssad.method.centring.CENTRINGS)")
    momentum: float = checked(Check(lambda v: is_number(v) and 0 <= v < 1, "a momentum in [0, 1)"),
                              "momentum of the teacher's running centre c (an EMA of its mean output)")


@dataclass
class ModelSchema(Node):
    head: HeadSchema = node(HeadSchema, "the DINO projection head")
    centring: CentringSchema = node(CentringSchema, "the teacher's centre (the group centring=ema|sinkhorn)")
    student_temp: float = checked(POSITIVE, "τ_s, the student's softmax temperature")
    teacher_temp: float = checked(POSITIVE, "final τ_t, the teacher's softmax temperature")
    warmup_teacher_temp: float = checked(POSITIVE, "τ_t at epoch 0, linear to teacher_temp")
    momentum_teacher: float = checked(Check(lambda v: is_number(v) and 0 <= v <= 1, "a momentum in [0, 1]"),
                                      "the EMA teacher's momentum at the start (cosine to 1, Eq. 2)")


@dataclass
class OptimSchema(Node):
    """``optim``: the optimiser's schedule and clipping, with their defaults (DINO's). The optimiser itself is the
    partial ``optim.optimizer`` (``_target_``, ``_partial_: true``), which the preset (``conf/optim/adamw.yaml``)
    sets and :class:`ssad.method.module.SSADModule` calls with its parameter groups."""

    base_lr: float = checked(POSITIVE, "learning rate at 256 images a step; lr = base_lr × effective batch / 256",
                             0.004)
    effective_batch: int | None = checked(POSITIVE_INT, "images per optimiser step over all processes, made up by "
                                          "gradient accumulation (null: data.batch_size × processes)", None)
    min_lr: float = checked(NON_NEGATIVE, "learning rate at the end of the cosine schedule", 1.0e-6)
    warmup_epochs: int = checked(NON_NEGATIVE_INT, "epochs of linear learning-rate warm-up", 30)
    weight_decay: float = checked(NON_NEGATIVE, "weight decay at the start (cosine to weight_decay_end)", 0.04)
    weight_decay_end: float = checked(NON_NEGATIVE, "weight decay at the end", 0.4)
    clip_grad: float = checked(NON_NEGATIVE, "gradient-norm clip (0: none)", 3.0)
    clip_mode: str = checked(one_of("per_param", "global"),
                             "per_param (DINO: each tensor's norm <= clip_grad) or global (one norm over all)",
                             "per_param")
    freeze_last_layer: int = checked(NON_NEGATIVE_INT, "epochs with the head's last layer frozen", 1)
    optimizer: Any = checked(None, "the optimiser: a _target_ with _partial_: true, called with the parameter "
                             "groups and lr (fused: the fused kernel, on CUDA only)")


@dataclass
class TrainerSchema(Node):
    max_epochs: int = checked(POSITIVE_INT, "training epochs")


@dataclass
class EvalSettings(Node):
    """``eval.settings``: Eq. 6 temperature τ, DINO's kNN (k, T), and how occupied soft-classes are counted (Fig. 2),
    with their defaults; the settings of :mod:`ssad.scoring.evaluation` (built directly or from the config)."""

    temperature: float = checked(EQ6_TEMPERATURE, "τ of the OOD score, Eq. 6", 0.04)
    knn_k: int = checked(POSITIVE_INT, "k of DINO's weighted kNN accuracy", 20)
    knn_temperature: float = checked(POSITIVE, "T of DINO's weighted kNN accuracy", 0.07)
    soft_classes_split: str = checked(one_of("test", "train"), "split whose occupied soft-classes are counted: "
                                      "test (the paper's text) or train (the authors' script)", "test")
    soft_classes_center: str = checked(one_of("running", "dataset"), "centre of those soft-classes: running (the "
                                       "training centre c) or dataset (the split's mean logit, the authors' script)",
                                       "running")
    soft_classes_temperature: float = checked(POSITIVE, "τ of the soft-classes' softmax (0.01: the final τ_t)", 0.01)
    batch_size: int = checked(POSITIVE_INT, "images per feature-extraction batch (memory, not results)", 512)
    progress: bool = checked(None, "a progress bar per feature extraction, on a terminal (none in a log)", True)

    def __post_init__(self) -> None:
        """Check the settings; the SchemaError names each bad key in full (``eval.settings.KEY``)."""
        try:
            super().__post_init__()
        except SchemaError as err:
            raise SchemaError([problem if problem.startswith("eval.settings.") else f"eval.settings.{problem}"
                               for problem in err.problems]) from None


@dataclass
class EvalSchema(Node):
    every_n_epochs: int = checked(POSITIVE_INT, "evaluate every N epochs (and after the last)")
    size: int = checked(POSITIVE_INT, "side of the square view the network sees when scored")
    plots: bool = checked(None, "write the score histograms and training curves")
    baselines: str | None = checked(None, "a baselines.json to compare with, or auto: the run's own (null: none)")
    settings: EvalSettings = node(EvalSettings, "the evaluation's settings")


@dataclass
class PathsSchema(Node):
    data_dir: str = checked(None, "where datasets live (or the SSAD_DATA environment variable)")
    cache_dir: str = checked(None, "where the uint8 caches of the datasets are written")
    output_dir: str = checked(None, "the run folder (Hydra's output directory)")
    fashion_mnist: str = checked(None, "Fashion-MNIST's idx files (or the SSAD_FASHION_MNIST environment variable)")


@dataclass
class CollapseSchema(Node):
    """``callbacks.collapse``, the arguments of :class:`ssad.scoring.collapse.CollapseMonitor`."""

    warmup_epochs: int = checked(NON_NEGATIVE_INT, "epochs before the teacher's drift is judged")
    min_teacher_drift: float = checked(UNIT, "teacher_not_moving below this relative drift after the warm-up")
    max_entropy_share: float = checked(UNIT, "collapse_uniform: teacher output entropy >= this share of log K")
    min_entropy_of_mean_share: float = checked(UNIT, "collapse_constant: entropy of the mean output <= share × log K")
    min_rank_share: float = checked(UNIT, "features_constant: effective rank below this share of the feature width")
    max_cosine: float = checked(UNIT, "features_constant: mean pairwise cosine of the features above this")
    stop: bool = checked(None, "end the run (non-zero exit, last.ckpt) when a warning holds for `patience`")
    patience: int = checked(POSITIVE_INT, "evaluations in a row a warning must hold to stop the run")


@dataclass
class ScorerSchema(Node):
    """``scorer``, the parameters of the built-in OOD scores that have them (:mod:`ssad.scoring.scores`); a score of
    the user's own checks its own."""

    temperature: float | None = checked(EQ6_TEMPERATURE, "τ of Eq. 6 (scorer=eq6; eval.settings.temperature)")
    k: int | None = checked(POSITIVE_INT, "k of the k-th nearest neighbour (scorer=knn; Sun et al. 2022: 50)")


@dataclass
class TrainSchema(Node):
    """The root of ``python -m ssad.train``'s config."""

    seed: int = checked(NON_NEGATIVE_INT, "seed of the weights, crops and batch order")
    budget_check: bool = checked(None, "stop before training, with an estimate, when the run cannot fit in memory "
                                 "or would take more than a day on this device; false: run anyway")
    data: DataSchema = node(DataSchema, "the training images and the OOD sets (the group data=...)")
    negatives: NegativesSchema = node(NegativesSchema, "the negative samples (the group negatives=...)")
    augment: AugmentSchema = node(AugmentSchema, "the multi-crop views (the group augment=...)")
    model: ModelSchema = node(ModelSchema, "the network and the method's temperatures (the group model=...)")
    optim: OptimSchema = node(OptimSchema, "the optimiser and its schedules (the group optim=...)")
    trainer: TrainerSchema = node(TrainerSchema, "Lightning's Trainer (the group trainer=...)")
    eval: EvalSchema = node(EvalSchema, "the evaluation during training (the group eval=...)")
    paths: PathsSchema = node(PathsSchema, "where data, caches and runs are written")


@dataclass
class CheckpointEvalSchema(Node):
    """``eval`` of ``ssad.evaluate`` and ``ssad.export`` (``size`` null: the checkpoint's own)."""

    size: int | None = checked(POSITIVE_INT, "side of the view the network sees (null: the checkpoint's own)")
    plots: bool = checked(None, "write the score histograms")
    settings: EvalSettings = node(EvalSettings, "the evaluation's settings")


@dataclass
class EvaluateSchema(Node):
    """The root of ``python -m ssad.evaluate``'s config."""

    eval: CheckpointEvalSchema = node(CheckpointEvalSchema, "the evaluation")
    accelerator: str = checked(one_of("auto", "cpu", "cuda"), "the device: auto (a GPU when there is one), cpu, cuda")
    trust_file: bool = checked(None, "read the checkpoint with full pickle, which runs code from the file")


@dataclass
class ExportSchema(EvaluateSchema):
    """The root of ``python -m ssad.export``'s config."""

    tpr: float = checked(SHARE, "the threshold accepts this share of the in-distribution test set")
    format: str | None = checked(one_of("pt", "onnx"), "the detector's format: pt or onnx (null: by out's suffix)")
    thumbnails_max: int = checked(NON_NEGATIVE_INT, "a .pt keeps training thumbnails up to this bank size")
    bank_size: int | None = checked(POSITIVE_INT, "keep this many training features, chosen by k-center greedy "
                                    "coreset selection (null: all)")


@dataclass
class ScoreSchema(Node):
    """The root of ``python -m ssad.score``'s config."""

    tpr: float | None = checked(SHARE, "threshold accepting this share of in-distribution images (null: the "
                                "exported one)")
    on_error: str = checked(one_of("raise", "skip"), "corrupt or non-image files: raise (list them, stop) or skip")
    batch_size: int = checked(POSITIVE_INT, "images scored at once (memory, not results)")
    trust_file: bool = checked(None, "read the detector file with full pickle, which runs code from the file")


# each command's schema, stored in the ConfigStore as "<command>_schema" (the name its defaults list composes)
SCHEMAS: dict[str, type[Node]] = {"train": TrainSchema, "evaluate": EvaluateSchema, "export": ExportSchema,
                                  "score": ScoreSchema}
# nodes checked only where the composed config holds them (full key -> node), per command
OPTIONAL_NODES: dict[str, dict[str, type[Node]]] = {"train": {"callbacks.collapse": CollapseSchema,
                                                               "scorer": ScorerSchema},
                                                     "evaluate": {"scorer": ScorerSchema},
                                                     "export": {"scorer": ScorerSchema}}
# nodes with defaults, stored as "schema/<name>" for the group presets to compose first
DEFAULTS_NODES: dict[str, type[Node]] = {"eval_settings": EvalSettings, "optim": OptimSchema}
# nodes without a _target_ whose keys are all in the schema: the keys the code reads there (ssad.config.keys)
CLOSED_NODES: dict[str, type[Node]] = {"optim": OptimSchema, "eval": EvalSchema, "eval.settings": EvalSettings,
                                       "negatives": NegativesSchema, "paths": PathsSchema}


def _without_values(cfg: DictConfig) -> DictConfig:
    """``cfg`` (a structured node) with every value ``MISSING``: composed last, it adds types, not values."""
    for key in list(cfg.keys()):
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and child._metadata.object_type not in (None, dict):
            _without_values(child)
        else:
            cfg[key] = MISSING
    return cfg


def register_configs() -> None:
    """Store the schema in Hydra's ConfigStore (idempotent): each command's root as ``<command>_schema`` (types and
    ranges, no values; its defaults list composes it last) and each node with defaults as ``schema/<name>`` (the
    group presets compose it first). Every command calls it before composing, as do the tests and the docs."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=f"{name}_schema", node=_without_values(OmegaConf.structured(schema)))
    for name, schema in DEFAULTS_NODES.items():
        store.store(group="schema", name=name, node=schema)
