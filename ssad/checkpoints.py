"""A training checkpoint read back as a model and its config, without running code from the file: the model is
rebuilt through ssad's backbone registry from the stored config (``python -m ssad.evaluate`` and
``python -m ssad.export`` start from it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ssad.backbones import BACKBONES, build_backbone
from ssad.io import check_checkpoint
from ssad.module import SSADModule
from ssad.safe_load import TRUST_HINT, UnsafeFileError, check_targets, find_targets, load_torch_file, refuse_target

MODEL_TARGET = "ssad.module.SSADModule"
CHECKPOINT_REMEDY = "use a checkpoint written by `python -m ssad.train` (<run dir>/checkpoints/last.ckpt)"


def rebuild_model(model_cfg: dict[str, Any], path: str | Path, trust_file: bool = False) -> SSADModule:
    """The untrained :class:`SSADModule` of a model config read from the file ``path``: its backbone built
    through :data:`ssad.backbones.BACKBONES` and the rest from plain arguments, so no callable named by the file
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
    nested = find_targets(args, "model") + find_targets(backbone_args, "model.backbone")
    if nested:
        raise refuse_target(path, *nested[0], "not a part that ssad's model takes from a file")
    hydra_keys = [str(key) for key in [*args, *backbone_args] if str(key).startswith("_")]
    if hydra_keys:
        raise UnsafeFileError(f"{path}: refused: its stored model config has the Hydra key {hydra_keys[0]!r}, but "
                              f"ssad rebuilds a model from plain arguments only. To build it anyway: {TRUST_HINT}.")
    return SSADModule(build_backbone(builder, **backbone_args), **args)


def load_checkpoint(path: str | Path, trust_file: bool = False) -> tuple[SSADModule, DictConfig]:
    """The module of a training checkpoint and the resolved config it was trained with.

    The file is read with ``weights_only=True`` and the model rebuilt through ssad's registry
    (:func:`rebuild_model`); the stored data config may name only trusted classes
    (:func:`ssad.safe_load.check_targets`). ``trust_file=True`` lifts both (it runs code from the file).
    A checkpoint written before ``eval.size`` existed gets its training views' size there, as it was evaluated;
    one written before ``data.holdout`` and ``data.holdout_seed`` the values the data module then took."""
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
    check_targets(stored["data"], "data", path, trust_file)
    data = stored["data"]  # written before data.holdout and data.holdout_seed were keys: the values they then had
    data.setdefault("holdout", 0.0)
    data.setdefault("holdout_seed", 0)
    evaluation = stored.setdefault("eval", {})
    if evaluation.get("size") is None:  # written before eval.size: evaluated at the training views' size
        evaluation["size"] = stored["data"]["augment"]["global_size"]
    model = rebuild_model(stored["model"], path, trust_file)
    model.load_state_dict(checkpoint["state_dict"])
    model.run_config = stored
    return model, OmegaConf.create(stored)
