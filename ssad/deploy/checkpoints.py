"""A training checkpoint read back as a model, its config and its data module, without running code from the file:
the model is rebuilt through ssad's backbone registry and the data module from plain values through ssad's own
classes (``python -m ssad.evaluate`` and ``python -m ssad.export`` start from them). Nothing a file names is
imported or called: an allow-list of classes could not be safe (some constructors start a process)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.cli.errors import InputError
from ssad.data.datamodule import SSADDataModule
from ssad.data.sources import plain
from ssad.deploy.safe_load import TRUST_HINT, UnsafeFileError, find_targets, load_torch_file, refuse_target
from ssad.method.backbones import BACKBONES, build_backbone
from ssad.method.module import SSADModule
from ssad.utils.files import check_checkpoint
from ssad.views.augment import MultiCropAugment

MODEL_TARGET = "ssad.method.module.SSADModule"
DATA_TARGET = "ssad.data.datamodule.SSADDataModule"
AUGMENT_TARGET = "ssad.views.augment.MultiCropAugment"
CHECKPOINT_REMEDY = "use a checkpoint written by `python -m ssad.train` (<run dir>/checkpoints/last.ckpt)"


def rebuild_model(model_cfg: dict[str, Any], path: str | Path, trust_file: bool = False) -> SSADModule:
    """The untrained :class:`SSADModule` of a model config read from the file ``path``: its backbone built
    through :data:`ssad.method.backbones.BACKBONES` and the rest from plain arguments, so no callable named by the file
    runs. With ``trust_file`` the config is instantiated by Hydra instead (any ``_target_``: runs code)."""
    if trust_file:
        return instantiate(model_cfg, _convert_="all")
    args = dict(model_cfg)
    target = args.pop("_target_", None)
    if target != MODEL_TARGET:
        raise refuse_target(path, "model", target, f"not ssad's model ({MODEL_TARGET})")
    backbone_args = dict(args.pop("backbone", None) or {})
    backbone = backbone_args.pop("_target_", None)
    builder = str(backbone).rsplit(".", 1)[-1]
    if not (isinstance(backbone, str) and backbone.startswith("ssad.") and builder in BACKBONES):
        raise refuse_target(path, "model.backbone", backbone, f"not one of ssad's backbones ({', '.join(BACKBONES)})")
    # the optimiser factory (a _target_) is for training, which a rebuilt model does not do: not built
    args.pop("optimizer", None)
    args["optim"] = {k: v for k, v in dict(args.get("optim") or {}).items() if k != "optimizer"}
    _refuse_hydra_keys(args, "model", path)
    _refuse_hydra_keys(backbone_args, "model.backbone", path)
    return SSADModule(build_backbone(builder, **backbone_args), **args)


def _refuse_hydra_keys(node: Any, where: str, path: str | Path) -> None:
    """Raise :class:`UnsafeFileError` naming ``path`` and the key when ``node`` (a part of a stored config, found
    under ``where``) holds a ``_target_`` or another Hydra key (``_args_``, ``_partial_``...) at any depth."""
    nested = find_targets(node, where)
    if nested:
        raise refuse_target(path, *nested[0], "not a part that ssad builds from a file")
    keys = _hydra_keys(node, where)
    if keys:
        raise UnsafeFileError(f"{path}: refused: its stored config has the Hydra key {keys[0]}, but ssad rebuilds "
                              f"a checkpoint's model and data from plain values only; nothing was built from it. "
                              f"To build it anyway: {TRUST_HINT}.")


def _hydra_keys(node: Any, where: str) -> list[str]:
    """The key paths of every Hydra key (``_name_``) in a nested dict/list config."""
    found = []
    if isinstance(node, Mapping):
        for key, value in node.items():
            name = str(key)
            found += [f"{where}.{name}"] if len(name) > 1 and name[0] == name[-1] == "_" else []
            found += _hydra_keys(value, f"{where}.{name}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += _hydra_keys(value, f"{where}[{i}]")
    return found


def _arguments(cls: type, args: dict[str, Any], where: str, path: str | Path, given: tuple[str, ...] = ()) -> None:
    """Raise :class:`InputError` when ``args`` (stored under ``where``) are not the arguments ``cls`` takes."""
    params = inspect.signature(cls).parameters
    unknown = sorted(set(args) - set(params))
    missing = sorted(k for k, p in params.items()
                     if p.default is inspect.Parameter.empty and k not in args and k not in given)
    if unknown or missing:
        problem = f"{where}.{unknown[0]} is not an argument of {cls.__name__}" if unknown else \
            f"{where}.{missing[0]} is missing"
        raise InputError(f"{path}: its stored config cannot rebuild the data: {problem}; {CHECKPOINT_REMEDY}")


def data_arguments(data_cfg: Mapping[str, Any], path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The plain arguments of :class:`SSADDataModule` (less ``augment``) and of :class:`MultiCropAugment` in a
    data config read from the file ``path``. ``data`` must name ssad's data module and ``data.augment`` ssad's
    augmentation; any other ``_target_`` or Hydra key anywhere raises :class:`UnsafeFileError` naming the file
    and the key, an argument the classes do not take an :class:`InputError`. Nothing is imported or called."""
    args = dict(plain(data_cfg))
    target = args.pop("_target_", None)
    if target != DATA_TARGET:
        raise refuse_target(path, "data", target, f"not ssad's data module ({DATA_TARGET})")
    augment = args.pop("augment", None)
    augment = dict(augment) if isinstance(augment, Mapping) else {}
    target = augment.pop("_target_", None)
    if target != AUGMENT_TARGET:
        raise refuse_target(path, "data.augment", target, f"not ssad's augmentation ({AUGMENT_TARGET})")
    _refuse_hydra_keys(args, "data", path)
    _refuse_hydra_keys(augment, "data.augment", path)
    _arguments(SSADDataModule, args, "data", path, given=("augment",))
    _arguments(MultiCropAugment, augment, "data.augment", path)
    return args, augment


def rebuild_datamodule(data_cfg: Mapping[str, Any], path: str | Path, trust_file: bool = False) -> SSADDataModule:
    """The :class:`SSADDataModule` of a data config read from the file ``path`` (as evaluate and export take it
    from a checkpoint, with the user's OOD sets merged in), built from plain values by ssad's own classes
    (:func:`data_arguments`), so no callable named by the file runs. With ``trust_file`` the config is
    instantiated by Hydra instead (any ``_target_``: runs code)."""
    if trust_file:
        return instantiate(data_cfg)
    args, augment = data_arguments(data_cfg, path)
    return SSADDataModule(augment=MultiCropAugment(**augment), **args)


def load_checkpoint(path: str | Path, trust_file: bool = False) -> tuple[SSADModule, DictConfig]:
    """The module of a training checkpoint and the resolved config it was trained with.

    The file is read with ``weights_only=True`` and the model rebuilt through ssad's registry
    (:func:`rebuild_model`); the stored data config is checked as :func:`rebuild_datamodule` will build it (only
    ssad's data module and augmentation, from plain values). ``trust_file=True`` lifts both (it runs code from
    the file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist (a run keeps it in <run dir>/checkpoints/)")
    check_checkpoint(path)
    checkpoint = load_torch_file(path, "checkpoint", CHECKPOINT_REMEDY, trust_file)
    stored = checkpoint.get("ssad_config") if isinstance(checkpoint, dict) else None
    if not stored:
        raise ValueError(f"{path} is not an ssad training checkpoint (no 'ssad_config' entry); {CHECKPOINT_REMEDY}")
    if not all(isinstance(stored.get(key), dict) for key in ("model", "data")):
        raise ValueError(f"{path}: its stored config has no 'model' and 'data' sections; {CHECKPOINT_REMEDY}")
    if not trust_file:  # refused before anything is built; evaluate and export build it by rebuild_datamodule
        data_arguments(stored["data"], path)
    model = rebuild_model(stored["model"], path, trust_file)
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = stored
    return model, OmegaConf.create(stored)
