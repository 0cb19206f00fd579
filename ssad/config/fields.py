"""The vocabulary of the config schema (:mod:`ssad.config.schema`): a :class:`Check` of one value and the checks the
nodes share, :func:`checked` and :func:`node` to declare a field with its meaning, the :class:`Node` base that checks
its fields, and the helpers that read a node (:func:`check_values`, :func:`field_names`, :func:`defaults`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from ssad.cli.errors import UserError
from ssad.scoring.limits import MIN_TEMPERATURE


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


def is_int(value: Any) -> bool:
    """Whether `value` is an integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether `value` is an int or a float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


POSITIVE_INT = Check(lambda v: is_int(v) and v > 0, "a positive integer")
NON_NEGATIVE_INT = Check(lambda v: is_int(v) and v >= 0, "an integer >= 0")
POSITIVE = Check(lambda v: is_number(v) and v > 0, "a number > 0")
NON_NEGATIVE = Check(lambda v: is_number(v) and v >= 0, "a number >= 0")
PROBABILITY = Check(lambda v: is_number(v) and 0 <= v <= 1, "a probability in [0, 1]")
UNIT = Check(lambda v: is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
SHARE = Check(lambda v: is_number(v) and 0 < v <= 1, "a share in (0, 1], e.g. 0.95 or 0.99")
EQ6_TEMPERATURE = Check(lambda v: is_number(v) and v >= MIN_TEMPERATURE,
                        f"a number >= {MIN_TEMPERATURE:.5f} (below it Eq. 6 overflows float64; AUROC-1NN is its τ → 0 "
                        "limit)")
SCALE = Check(lambda v: len(v) == 2 and 0 < v[0] <= v[1] <= 1, "a range [low, high] with 0 < low <= high <= 1")


def one_of(*choices: str) -> Check:
    return Check(lambda v: v in choices, " or ".join(repr(c) for c in choices))


def checked(check: Check | None, doc: str, default: Any = MISSING) -> Any:
    """A schema field that means ``doc`` (one line, ``metadata["doc"]``), checked by ``check`` (None: its type
    only); ``default`` ``MISSING``: its value comes from the YAML presets."""
    metadata = {"doc": doc} if check is None else {"doc": doc, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def node(cls: type, doc: str) -> Any:
    """A schema field holding the node ``cls``, which means ``doc``."""
    return field(default_factory=cls, metadata={"doc": doc})


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


def check_values(cls: type[Node], values: Mapping[str, Any], path: str) -> None:
    """Raise a :class:`SchemaError` naming (by full key, ``path`` + name) every value of ``values`` that the node
    ``cls`` finds out of range or of the wrong type."""
    try:
        cls(**values)
    except SchemaError as err:
        raise SchemaError([path + problem for problem in err.problems]) from None


def field_names(cls: type[Node]) -> set[str]:
    """The keys of the node ``cls``."""
    return {f.name for f in dataclasses.fields(cls)}


def defaults(cls: type[Node]) -> dict[str, Any]:
    """The defaults of the node ``cls`` that has them (:data:`DEFAULTS_NODES`), field by field."""
    values = cls()
    return {f.name: getattr(values, f.name) for f in dataclasses.fields(cls) if getattr(values, f.name) != MISSING}
