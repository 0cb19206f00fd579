"""``--help`` (``-h``) of the Hydra commands: what the command does, its usage with an example, its own keys with
their default and meaning, and the config groups it takes with their presets; nothing else.

Hydra's own ``--help`` prints the whole resolved config (hundreds of lines, no word on any key). :func:`command_help`
wraps a command's ``main`` above ``@hydra.main`` and answers ``--help`` / ``-h`` before Hydra parses the command
line; ``--hydra-help`` and ``--cfg job`` still reach Hydra.

A key's meaning is its structured-config field's ``metadata["doc"]`` (:mod:`ssad.config.schema`) where it has one,
else the comment beside or above the key in ``conf/<command>.yaml``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
import textwrap
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
HELP_FLAGS = ("--help", "-h")
WIDTH = 118  # the project's line length, less a margin
KEY_COLUMN = 24
HIDDEN_GROUPS = ("hydra",)  # Hydra's own settings: --hydra-help describes them
_KEY = re.compile(r"^( {0,2})([A-Za-z_]\w*):(?:\s+([^#]*?))?\s*(?:#\s*(.*))?$")


def wants_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for help (``--help`` or ``-h`` as an argument of its own)."""
    return any(arg in HELP_FLAGS for arg in argv)


def first_paragraph(doc: str | None) -> str:
    """The first paragraph of a docstring as one line, reST's double backquotes dropped."""
    text = " ".join((doc or "").strip().split("\n\n")[0].split()).replace("``", "")
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text)  # Sphinx roles: their target's name


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop followed by a space (not at "e.g." or "i.e.")."""
    match = re.search(r"(?<!e\.g)(?<!i\.e)(?<!\bal)\.(\s|$)", text)
    return text[: match.start() + 1] if match else text


def schema_doc(command: str, key: str) -> str:
    """``metadata["doc"]`` of ``key`` (dotted) in ``command``'s structured-config schema, or ``""``."""
    from ssad.config.schema import SCHEMAS, Node

    cls: Any = SCHEMAS.get(command)
    parts = key.split(".")
    for i, part in enumerate(parts):
        if cls is None or not dataclasses.is_dataclass(cls):
            return ""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if part not in fields:
            return ""
        if i == len(parts) - 1:
            return str(fields[part].metadata.get("doc", ""))
        hint = typing.get_type_hints(cls).get(part)
        cls = hint if isinstance(hint, type) and issubclass(hint, Node) else None
    return ""


def own_keys(path: Path) -> list[tuple[str, str, str]]:
    """``(key, default as written, comment)`` of the keys of a command's primary config ``path``: its top-level
    keys and their direct children, but ``defaults``, ``hydra`` and values that only pass another node on
    (``${...}``). A mapping of named entries that are mappings themselves (``sources``) is one key, its default
    the entries' names."""
    rows: list[tuple[str, str, str]] = []
    above: list[str] = []
    parent, named = "", []
    for line in [*path.read_text().splitlines(), "end_:"]:
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not match:
            above = [] if not stripped else above
            continue
        indent, key, value, comment = match.group(1), match.group(2), (match.group(3) or "").strip(), match.group(4)
        meaning = " ".join([*above, comment or ""]).strip()
        above = []
        if not indent:
            if rows and rows[-1][0] == parent and not rows[-1][1]:  # the previous key is a mapping
                last = rows.pop()
                if named:
                    rows.append((last[0], ", ".join(named), last[2]))
            parent, named = key, []
            if key not in ("defaults", "hydra", "end_"):
                rows.append((key, value, meaning))
        elif parent in ("defaults", "hydra") or value.startswith("${"):
            continue
        elif value.startswith("{"):
            named.append(key)
        else:
            if rows and rows[-1][0] == parent and not rows[-1][1]:
                rows.pop()  # a mapping of keys: its keys are listed instead
            rows.append((f"{parent}.{key}", value, meaning))
    return rows


def config_groups(path: Path, config_dir: Path) -> list[tuple[str, str, list[str]]]:
    """``(group, default preset, presets)`` for each group in the defaults list of ``path`` (schemas, ``_self_``
    and Hydra's own settings left out); presets are the group folder's YAML files not starting with ``_``."""
    import yaml

    defaults = (yaml.safe_load(path.read_text()) or {}).get("defaults") or []
    groups = []
    for entry in defaults:
        if not isinstance(entry, dict):
            continue
        (group, default), = entry.items()
        group = str(group).removeprefix("override ").lstrip("/")
        folder = config_dir / group
        if group in HIDDEN_GROUPS or not folder.is_dir():
            continue
        presets = sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml")
                         if not p.name.startswith("_"))
        groups.append((group, "null" if default is None else str(default), presets))
    return groups


def _entry(name: str, text: str) -> list[str]:
    """One ``name  text`` entry, wrapped under the text's column."""
    head = f"  {name}"
    pad = " " * KEY_COLUMN
    if len(head) >= KEY_COLUMN - 1:
        return [head, *textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad)]
    lines = textwrap.wrap(text, WIDTH, initial_indent=pad, subsequent_indent=pad) or [pad]
    return [head + lines[0][len(head):], *lines[1:]]


def help_text(command: str, doc: str | None, example: str, config_dir: Path | None = None) -> str:
    """The ``--help`` of ``python -m ssad.<command>`` (primary config ``conf/<command>.yaml``)."""
    if config_dir is None:
        from ssad.config.keys import CONFIG_DIR

        config_dir = Path(CONFIG_DIR)
    path = config_dir / f"{command}.yaml"
    groups = config_groups(path, config_dir)
    usage = f"python -m ssad.{command}" + (" [GROUP=PRESET ...]" if groups else "") + " [KEY=VALUE ...]"
    lines = [*textwrap.wrap(first_paragraph(doc), WIDTH), "", f"usage: {usage}", f"  e.g. {example}", "",
             "keys (KEY=VALUE; default in brackets; ??? = required):"]
    for key, default, comment in own_keys(path):
        meaning = first_sentence(schema_doc(command, key) or comment) or "(no description)"
        lines += _entry(key, f"[{default or '{}'}] {meaning}")
    if groups:
        lines += ["", "groups (GROUP=PRESET; default in brackets):"]
        lines += [line for group, default, presets in groups
                  for line in _entry(group, f"[{default}] " + " | ".join(presets))]
        lines += ["", *textwrap.wrap("A group's own keys: GROUP.KEY=VALUE (e.g. "
                                     f"{'trainer.max_epochs=2' if command == 'train' else groups[0][0] + '.KEY=...'}); "
                                     "--cfg job prints the composed config; docs/reference/config.md describes every "
                                     "key.", WIDTH)]
    lines.append("Hydra's own options: --hydra-help.")
    return "\n".join(lines)


def script_help(doc: str | None, usage: str, example: str, arguments: Sequence[tuple[str, str]]) -> str:
    """The ``--help`` of a command that takes no Hydra config of its own (``python -m ssad.demo``): what it does,
    its usage with an example, and its arguments, one line each."""
    lines = [*textwrap.wrap(first_paragraph(doc), WIDTH), "", f"usage: {usage}", f"  e.g. {example}", "",
             "arguments:"]
    for name, meaning in arguments:
        lines += _entry(name, meaning)
    return "\n".join(lines)


def command_help(command: str, example: str) -> Callable[[F], F]:
    """Decorate a command's ``main`` (above ``@hydra.main``): ``--help`` / ``-h`` on the command line prints
    :func:`help_text` and exits 0 before Hydra parses it."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if wants_help(sys.argv[1:]):
                module = sys.modules.get(fn.__module__)
                print(help_text(command, getattr(module, "__doc__", None), example))
                raise SystemExit(0)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
