"""Which keys a config may hold. An unknown key fails with the known keys listed, whichever way it arrived:

- ``optim.lrr=0.1``: Hydra refuses a key that is not in the config and suggests ``+optim.lrr=0.1``;
  :func:`install_override_hint` (the commands call it at start-up, :func:`prepare_hydra`) words that refusal
  instead (the known keys, the nearest one, and ``++KEY`` only where the code takes the key: an argument of a
  ``_target_``, a new entry of a named mapping).
- ``+optim.lrr=0.1``, ``++optim.lrr=0.1``, a typo in a preset: :func:`check_keys` walks the composed config at
  start-up against what the code reads (:func:`known_keys`): a ``_target_`` node takes its callable's arguments,
  the schema's closed nodes (``optim``, ``eval``, ``negatives``, ``paths``: :data:`ssad.config.schema.CLOSED_NODES`)
  their fields, ``model.head`` and ``model.centring`` the arguments of the head and of the centrings, the root the
  keys and groups of the command's primary config. Mappings of names the user chooses (``data.ood``,
  ``sources``, ``add_ood``, ``callbacks``, ``logger``) take any name; their entries are checked as nodes of their
  own.

So legitimate additions keep working: ``+data.ood.NAME={...}``, ``++trainer.limit_train_batches=2`` (a
``lightning.pytorch.Trainer`` argument), ``+data.path=x.npy`` (an ``SSADDataModule`` argument).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from hydra.errors import ConfigCompositionException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError

from ssad.cli.errors import ConfigError
from ssad.config.fields import field_names
from ssad.config.schema import CLOSED_NODES, register_configs

HYDRA_KEYS = frozenset({"_target_", "_recursive_", "_convert_", "_partial_", "_args_"})
# mappings whose keys are names chosen by the user; each entry is checked as a node of its own
NAMED = ("sources", "data.sources", "data.ood", "add_ood", "ood", "callbacks", "logger")


def _config_dir() -> Path:
    """Every command's configs: conf/ at the top of the checkout, installed as the package ssad.conf
    (pyproject.toml's package-dir), so that an editable install reads the checkout's tree and a wheel carries its
    own; a checkout run without installing (``python -m ...`` from its root) reads the conf/ beside ssad/."""
    try:
        return Path(str(files("ssad.conf")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "conf"


CONFIG_DIR = _config_dir()


def _head_keys() -> set[str]:
    from ssad.method.heads import DINOHead

    return set(inspect.signature(DINOHead).parameters) - {"in_dim"}


def _centring_keys() -> set[str]:
    from ssad.method.centring import CENTRINGS, centring_keys

    return {"name"}.union(*(centring_keys(cls) for cls in CENTRINGS.values()))


# nodes without a _target_ whose keys the code reads one by one: the schema's closed nodes, and two nodes whose
# keys are a constructor's arguments
FIXED: dict[str, Callable[[], set[str]]] = {
    **{path: (lambda cls=cls: field_names(cls)) for path, cls in CLOSED_NODES.items()},
    "model.head": _head_keys,
    "model.centring": _centring_keys,
}


@cache
def target_arguments(target: str) -> frozenset[str] | None:
    """The keyword arguments ``target`` (a dotted path) takes; None when it takes any (``**kwargs``) or cannot be
    imported (instantiating it reports that)."""
    try:
        params = inspect.signature(get_object(target)).parameters.values()
    except Exception:  # noqa: BLE001 - an unknown target is instantiate's error to report, not ours
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)


@cache
def root_keys(config_name: str) -> frozenset[str] | None:
    """The keys of the primary config ``conf/<config_name>.yaml`` and the groups of its defaults list; None for a
    primary config of the user's own (any key)."""
    path = CONFIG_DIR / f"{config_name}.yaml"
    if not path.is_file():
        return None
    primary = OmegaConf.to_container(OmegaConf.load(path))
    groups = set()
    for entry in primary.pop("defaults", []) or []:
        if isinstance(entry, dict):
            groups.update(str(k).split("/")[0].removeprefix("override ") for k in entry)
    return frozenset({*primary, *groups} - {"hydra"})


def known_keys(node: DictConfig, path: str, config_name: str = "train") -> set[str] | None:
    """The keys the code reads from the node at ``path`` (``""`` = the root); None when any key is allowed
    (a mapping of user-chosen names, a dataset spec, a callable that takes ``**kwargs``)."""
    if path in NAMED:
        return None
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if isinstance(target, str):
        arguments = target_arguments(target)
        return None if arguments is None else {*arguments, *HYDRA_KEYS}
    if path in FIXED:
        return FIXED[path]()
    if not path:
        root = root_keys(config_name)
        return None if root is None else set(root)
    return None


def _children(node: DictConfig) -> list[tuple[str, Any]]:
    """The node's keys with their child nodes; interpolations (``${optim}``) are checked where they point."""
    return [(str(key), None if OmegaConf.is_interpolation(node, key) else node._get_node(key))
            for key in node.keys()]


def unknown_keys(cfg: DictConfig, config_name: str = "train") -> list[tuple[str, set[str]]]:
    """Every key of ``cfg`` the code does not read, with the keys its node takes: ``[(full key, known)]``."""
    found: list[tuple[str, set[str]]] = []

    def walk(node: DictConfig, path: str, parent_named: bool) -> None:
        known = known_keys(node, path, config_name)
        if parent_named and "_target_" not in node:
            return  # an entry of a named mapping without a _target_: a dataset spec, checked by its reader
        for key, child in _children(node):
            full = f"{path}.{key}" if path else key
            if known is not None and key not in known:
                found.append((full, known))
            elif isinstance(child, DictConfig):
                walk(child, full, path in NAMED)

    walk(cfg, "", False)
    return found


def unknown_key_message(full_key: str, known: set[str]) -> str:
    """``unknown config key optim.lrr: optim has no key 'lrr' (did you mean 'base_lr'?); its keys: ...``."""
    parent, _, key = full_key.rpartition(".")
    close = difflib.get_close_matches(key, sorted(known - HYDRA_KEYS), n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    keys = ", ".join(sorted(known - HYDRA_KEYS))
    return f"unknown config key {full_key}: {parent or 'the config'} has no key '{key}'{hint}; its keys: {keys}"


def check_keys(cfg: DictConfig, config_name: str = "train") -> None:
    """Raise one ConfigError naming every unknown key of ``cfg`` (:func:`unknown_keys`) with the known ones."""
    found = unknown_keys(cfg, config_name)
    if found:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(unknown_key_message(k, v) for k, v in found)
                         + "\n(a `+KEY=...` or `++KEY=...` override adds only a key that the code reads)")


def override_hint(cfg: DictConfig, full_key: str, line: str = "") -> str:
    """Why Hydra refused the override ``line`` of the key ``full_key``, which ``cfg`` does not hold, and what
    works instead: ``+``/``++`` where the code takes that key, else the known keys of its node."""
    parent, _, key = full_key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    value = line.split("=", 1)[1] if "=" in line else "VALUE"
    if parent in NAMED:
        return f"{parent} has no entry '{key}' yet: add it with +{full_key}={value}"
    if not isinstance(node, DictConfig):
        return f"unknown config key {full_key}: {parent} is not a mapping"
    # the root and Hydra's own nodes take the keys they hold; others what the code reads (known_keys)
    known = known_keys(node, parent) if parent and not parent.startswith("hydra") else None
    if known is None:
        known = {str(k) for k in node.keys()}
    elif key in known:
        return f"{full_key} is not in the config but the code takes it: set it with ++{full_key}={value}"
    return unknown_key_message(full_key, known | {str(k) for k in node.keys()})


def install_override_hint() -> None:
    """Word Hydra's refusal of an unknown key with :func:`override_hint` (idempotent). Hydra has no hook for
    it: this wraps the one function that applies command-line overrides and rewrites only that refusal."""
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
    except ImportError:  # another Hydra layout: its own message stays (the key is refused either way)
        return
    apply = ConfigLoaderImpl.__dict__.get("_apply_overrides_to_config")
    if not isinstance(apply, staticmethod) or getattr(apply.__func__, "ssad_hint", False):
        return
    original = apply.__func__

    def apply_with_hint(overrides: list[Any], cfg: DictConfig) -> None:
        try:
            original(overrides, cfg)
        except ConfigCompositionException as err:
            cause = err.__cause__
            full_key = getattr(cause, "full_key", None)
            if not (isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and full_key):
                raise
            line = next((o.input_line for o in overrides if o.key_or_group == full_key), "") or ""
            raise ConfigCompositionException(override_hint(cfg, full_key, line)) from None

    apply_with_hint.ssad_hint = True
    ConfigLoaderImpl._apply_overrides_to_config = staticmethod(apply_with_hint)



def prepare_hydra() -> None:
    """What every command does before Hydra composes its config: store the schema in the ConfigStore
    (:func:`ssad.config.schema.register_configs`) and word Hydra's refusal of an unknown key
    (:func:`install_override_hint`). Idempotent."""
    register_configs()
    install_override_hint()
