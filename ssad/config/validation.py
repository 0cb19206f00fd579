"""Start-up validation of a command's composed config, before any data is read or any model built: every key is
one the code reads (:mod:`ssad.config.keys`), every value of the schema's keys in range (:mod:`ssad.config.schema`)."""

from __future__ import annotations

import dataclasses
import typing

from omegaconf import DictConfig, OmegaConf

from ssad.config.fields import Node, SchemaError
from ssad.config.keys import check_keys
from ssad.config.schema import OPTIONAL_NODES, SCHEMAS


def validate(cfg: DictConfig, config_name: str = "train") -> None:
    """Raise one ValueError listing every key the code does not read (:func:`ssad.config.keys.check_keys`), else
    one listing every key whose value is out of range or of the wrong type (:func:`schema_problems`);
    ``config_name``: the command's primary config (``train``, ``evaluate``, ``export``, ``score``)."""
    check_keys(cfg, config_name)
    problems = schema_problems(cfg, config_name)
    if problems:
        raise SchemaError(problems)


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
        if "check" not in f.metadata:  # its type is Hydra's to check; not resolved (paths.output_dir needs a run)
            continue
        value = OmegaConf.select(cfg, key, default=None)
        values[f.name] = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    try:
        return cls(**values)
    except SchemaError as err:
        problems.extend(problem if problem.startswith(path) else path + problem for problem in err.problems)
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
