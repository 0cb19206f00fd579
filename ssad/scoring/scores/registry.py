"""The built-in OOD scores by name, and a score as plain values and back: how a detector file stores its score and
how a command builds the score its config selects (``scorer=eq6|nn|mean|knn``, or a ``_target_`` of the user's own).

A file stores ``{"name": NAME, "params": {...}}`` for a built-in score, rebuilt through :data:`SCORERS` (no code
named by the file is imported); a score of the user's own is stored as ``{"target": "module.Class", "params": ...}``
and rebuilt only when the user trusts the file (``trust_file=true``), since that imports and runs its module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ssad.cli.errors import ConfigError, InputError
from ssad.scoring.scores.base import Scorer
from ssad.scoring.scores.eq6 import Eq6Score
from ssad.scoring.scores.knn import KthNeighbourScore
from ssad.scoring.scores.mean import MeanFeatureScore
from ssad.scoring.scores.nearest import NearestNeighbourScore

SCORERS: dict[str, type[Scorer]] = {cls.name: cls for cls in (Eq6Score, NearestNeighbourScore, MeanFeatureScore,
                                                              KthNeighbourScore)}
PLAIN = (bool, int, float, str, type(None))


def target_of(scorer: Scorer) -> str:
    """The dotted path of the score's class."""
    return f"{type(scorer).__module__}.{type(scorer).__qualname__}"


def scorer_spec(scorer: Scorer) -> dict[str, Any]:
    """The score as plain values: ``{"name": ..., "params": ...}`` for a built-in score, ``{"target": ..., "params":
    ...}`` for another. Raises a ConfigError when a parameter is not a plain value (a file could not hold it)."""
    params = scorer.params()
    bad = {k: type(v).__name__ for k, v in params.items() if not isinstance(v, PLAIN)}
    if bad:
        raise ConfigError(f"scorer {target_of(scorer)}: parameters {bad} are not plain values (numbers, strings, "
                          "booleans); a detector file stores only those")
    if SCORERS.get(scorer.name) is type(scorer):
        return {"name": scorer.name, "params": params}
    return {"target": target_of(scorer), "params": params}


def scorer_from_spec(spec: Mapping[str, Any], where: str, trust_file: bool = False) -> Scorer:
    """Rebuild a score stored by :func:`scorer_spec` in the file ``where``. A built-in score comes from
    :data:`SCORERS`; a score of the user's own is imported only with ``trust_file``."""
    params = dict(spec.get("params") or {})
    if "name" in spec:
        if spec["name"] not in SCORERS:
            raise InputError(f"{where}: its score {spec['name']!r} is not one of ssad's scores ({', '.join(SCORERS)}); "
                             "export it again with this version of ssad")
        return SCORERS[spec["name"]](**params)
    target = str(spec.get("target", ""))
    if not trust_file:
        raise InputError(f"{where}: its score is {target}, a score of your own rather than one of ssad's built-in "
                         f"scores ({', '.join(SCORERS)}); loading it imports and runs that module. If you made this "
                         "file or trust it, pass trust_file=true (with the module importable, e.g. on PYTHONPATH)")
    module, _, name = target.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise InputError(f"{where}: its score {target} cannot be imported ({err}); put its module on PYTHONPATH") \
            from err
    return check_scorer(cls(**params), target)


def check_scorer(scorer: Any, where: str) -> Scorer:
    """``scorer`` itself when it is a :class:`Scorer`, else a ConfigError naming ``where`` it came from."""
    if not isinstance(scorer, Scorer):
        raise ConfigError(f"{where} built a {type(scorer).__name__}, not an OOD score: a score subclasses "
                          "ssad.scoring.scores.Scorer (docs/howto/ood-score.md)")
    return scorer


def build_scorer(node: Any, temperature: float = 0.04) -> Scorer:
    """The score a command's config selects (its ``scorer`` node, a ``_target_`` and its arguments, instantiated
    by Hydra); Eq. 6 at ``temperature`` when the config has none (a primary config of the user's own)."""
    if node is None:
        return Eq6Score(temperature)
    if isinstance(node, Scorer):
        return node
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    target = node.get("_target_") if isinstance(node, Mapping) else None
    if not target:
        raise ConfigError(f"scorer: {node!r} names no _target_; choose one with scorer=eq6|nn|mean|knn, or a file "
                          "of your own in <config dir>/scorer/ (docs/howto/ood-score.md)")
    try:
        return check_scorer(instantiate(node, _convert_="all"), f"scorer (_target_: {target})")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        reason = str(cause or err).splitlines()[0]
        raise ConfigError(f"scorer: cannot build {target} ({reason}); a score of your own must be importable "
                          "(its folder on PYTHONPATH) and take the keys its YAML gives") from err
