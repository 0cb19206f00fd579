"""What the benchmark measures: its presets (``conf/bench.yaml``), the fast-path levers, and the training config
they compose (``conf/train.yaml`` + the preset's experiment + its backbone overrides + levers + the user's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from ssad.config.keys import CONFIG_DIR, prepare_hydra
from ssad.method.backbones import builder_name

PRESETS_FILE = CONFIG_DIR / "bench.yaml"
VIT = "vit_backbone"  # the builder whose FLOPs are counted analytically and which has fused attention
TRAIN_IMAGES = 50_000  # CIFAR10 train: one epoch, and the Eq. 6 bank
# images a whole CIFAR10 evaluation extracts and scores: train (bank, scored leave-one-out), test, then the
# OOD sets CIFAR100, SVHN, ImageNet30, TinyImageNet, LSUN, STL10, Places365 (10k subset), Texture
EVAL_IMAGES = TRAIN_IMAGES + 10_000 + 10_000 + 26_032 + 3_000 + 10_000 + 10_000 + 8_000 + 10_000 + 5_640


@dataclass(frozen=True)
class Preset:
    """A preset of ``conf/bench.yaml`` (its comments say what each key means)."""

    name: str
    experiment: str
    backbone: dict[str, dict[str, Any]]
    steps: int
    warmup: int
    synthetic_images: int
    scoring: dict[str, int]


def preset_names() -> list[str]:
    """The presets ``conf/bench.yaml`` defines."""
    return sorted(OmegaConf.load(PRESETS_FILE))


def load_preset(name: str) -> Preset:
    """The preset ``name`` of ``conf/bench.yaml``."""
    presets = OmegaConf.load(PRESETS_FILE)
    if name not in presets:
        raise ValueError(f"unknown bench preset {name!r}; {PRESETS_FILE} defines {', '.join(sorted(presets))}")
    return Preset(name=name, **OmegaConf.to_container(presets[name]))


@dataclass(frozen=True)
class FastPaths:
    """The levers of issue 5, each a config key."""

    bf16: bool = True  # trainer.precision=bf16-mixed
    fused_adamw: bool = True  # optim.optimizer.fused
    fused_attn: bool = True  # model.backbone.fused_attn (PyTorch's scaled-dot-product attention)
    group_views: bool = True  # model.group_views (one backbone call per resolution)
    compile: bool = False  # model.compile (torch.compile of both backbones)

    def overrides(self, vit: bool = True) -> list[str]:
        """The config overrides of these levers; ``fused_attn`` only for a ViT (other backbones lack the key)."""
        keys = {"fused_adamw": "optim.optimizer.fused", "fused_attn": "model.backbone.fused_attn",
                "group_views": "model.group_views", "compile": "model.compile"}
        if not vit:
            del keys["fused_attn"]
        return [f"trainer.precision={'bf16-mixed' if self.bf16 else '32-true'}",
                *(f"{key}={str(getattr(self, lever)).lower()}" for lever, key in keys.items())]


REFERENCE = FastPaths(bf16=False, fused_adamw=False, fused_attn=False, group_views=True, compile=False)


def compose_train(overrides: Sequence[str]) -> DictConfig:
    """``conf/train.yaml`` with ``overrides``."""
    prepare_hydra()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def backbone_builder(preset: str, overrides: Sequence[str] = ()) -> str:
    """The ssad.method.backbones builder (``vit_backbone``, ``resnet18_cifar``, ``small_cnn``) that ``overrides`` pick
    on top of the preset: read from a composition with only the overrides that can change it (config-group
    choices such as ``model=cnn_small``, and ``..._target_`` keys), since other overrides may need the
    preset's backbone overrides first."""
    choosers = [o for o in overrides if "." not in o.split("=", 1)[0] or o.split("=", 1)[0].endswith("_target_")]
    experiment = load_preset(preset).experiment
    return builder_name(compose_train([f"experiment={experiment}", *choosers]).model.backbone._target_)


def compose_config(preset: str, paths: FastPaths, overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/train.yaml`` with the preset's experiment and backbone overrides, the fast paths' overrides and
    the user's, in that order (a later one wins)."""
    spec = load_preset(preset)
    builder = backbone_builder(preset, overrides)
    backbone = [f"++model.backbone.{key}={value}" for key, value in spec.backbone.get(builder, {}).items()]
    return compose_train([f"experiment={spec.experiment}", *backbone, *paths.overrides(vit=builder == VIT),
                          *overrides])
