"""Start-up validation of a command's composed config, before any data is read or any model built: every key is
one the code reads (:mod:`ssad.config.keys`), every value of the schema's keys in range (:mod:`ssad.config.schema`)."""

from __future__ import annotations

from omegaconf import DictConfig

from ssad.config.keys import check_keys
from ssad.config.schema import SchemaError, schema_problems


def validate(cfg: DictConfig, config_name: str = "train") -> None:
    """Raise one ValueError listing every key the code does not read (:func:`ssad.config.keys.check_keys`), else
    one listing every key whose value is out of range or of the wrong type (:func:`ssad.config.schema.schema_problems`);
    ``config_name``: the command's primary config (``train``, ``evaluate``, ``export``, ``score``)."""
    check_keys(cfg, config_name)
    problems = schema_problems(cfg, config_name)
    if problems:
        raise SchemaError(problems)
