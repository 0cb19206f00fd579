"""Sphinx directives that generate reference tables from the code itself, so the pages cannot drift from it.

``{ssad-config-keys} COMMAND``: every key that ``ssad/config/schema.py`` types and checks for the command (``train``,
``evaluate``, ``export``, ``score``), with its type, the values it takes (the schema's check), its default (the
command's composed config, as written, interpolations unresolved) and, where the schema field carries one, its
description (``metadata["doc"]``).

``{ssad-command-keys} COMMAND``: the command's own top-level keys (``conf/<command>.yaml``), with their default and
the comment the file gives them.

``{ssad-config-groups}``: every config group of ``python -m ssad.train`` and its presets, each with the first line
of the preset's header comment.

``{ssad-modules} PACKAGE`` (option ``:shallow:``): the API reference of the package and every module in it, listed
by pkgutil (``ssad_api.package_modules``), each under a heading with its name, so a module that is added or moved
is documented without editing a page.

``{ssad-public-api}``: a table of ``ssad.__all__``, each name with the first line of its docstring and a link to
where it is defined.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from ssad_api import package_modules


def _type_name(hint: Any) -> str:
    """A field's type as a reader writes it: ``int``, ``float or null``, ``list[float]``."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in rest) + " or null"
    if hint is Any:
        return "any"
    return getattr(hint, "__name__", str(hint)) if not args else str(hint).replace("typing.", "")


def schema_rows(command: str) -> list[tuple[str, str, str, str, str]]:
    """``(key, type, accepted values, default, description)`` for every field of ``command``'s schema, its nested
    nodes flattened into dotted keys, and of the nodes checked only where present (``callbacks.collapse``)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from ssad.config.keys import CONFIG_DIR, prepare_hydra
    from ssad.config.schema import OPTIONAL_NODES, SCHEMAS, Node

    prepare_hydra()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(command)
    defaults = OmegaConf.to_container(cfg, resolve=False)

    def default_of(key: str) -> str:
        value: Any = defaults
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return "(none)"
            value = value[part]
        if isinstance(value, bool):
            return str(value).lower()
        return "null" if value is None else str(value)

    rows: list[tuple[str, str, str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key, hint = f"{prefix}{f.name}", hints[f.name]
            if isinstance(hint, type) and issubclass(hint, Node):
                walk(hint, f"{key}.")
                continue
            check = f.metadata.get("check")
            expected = check.expected if check is not None else ("true or false" if hint is bool else "")
            rows.append((key, _type_name(hint), expected, default_of(key), f.metadata.get("doc", "")))

    walk(SCHEMAS[command], "")
    for key, cls in OPTIONAL_NODES.get(command, {}).items():
        walk(cls, f"{key}.")
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") if text else " "


def _code(text: str) -> str:
    return f"`{text}`" if text.strip() else " "


class ConfigKeys(SphinxDirective):
    """A table of a command's typed config keys, generated from ``ssad.config.schema``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        command = self.arguments[0]
        rows = schema_rows(command)
        with_doc = any(doc for *_, doc in rows)  # a meaning column once the schema's fields carry docs
        lines = ["| key | type | accepts | default |" + (" meaning |" if with_doc else ""),
                 "|---|---|---|---|" + ("---|" if with_doc else "")]
        for key, kind, expected, default, doc in rows:
            cells = f"| `{key}` | {_cell(kind)} | {_cell(expected)} | {_code(default)} |"
            lines.append(cells + (f" {_cell(doc)} |" if with_doc else ""))
        return self._parse(lines)

    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        # rebuild the page when what it is generated from changes (an incremental build would keep it otherwise)
        import ssad.config.schema
        from ssad.config.keys import CONFIG_DIR

        for path in [Path(ssad.config.schema.__file__), *sorted(Path(CONFIG_DIR).rglob("*.yaml"))]:
            self.env.note_dependency(str(path))
        # the lines are Markdown tables: a MyST page parses nested content with MyST
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source="ssad.config.schema"), container)
        return container.children


def header_comment(lines: list[str]) -> str:
    """The comment block at the top of a YAML file (Hydra's ``# @package`` line left out), as one line."""
    words = []
    for line in lines:
        if line.startswith("# @package"):
            continue
        if not line.startswith("#"):
            break
        words.append(line.lstrip("#").strip())
    return " ".join(words)


def first_sentence(text: str) -> str:
    """``text`` up to its first full stop followed by a space (or all of it)."""
    # not at "et al.", "Rot. 360", "Eq. 6", "Eqs. 3-5", "e.g.", "i.e." or "..."
    match = re.search(r"(?<!\bal)(?<!\bRot)(?<!\bEq)(?<!\bEqs)(?<!e\.g)(?<!i\.e)(?<!\.\.)\.(\s|$)", text)
    return text[: match.start() + 1] if match else text


def command_rows(command: str) -> list[tuple[str, str, str]]:
    """``(key, value, comment)`` for every top-level key of ``conf/<command>.yaml`` but ``defaults`` and
    ``hydra``: the comment is the key's trailing comment or the comment lines just above it."""
    from ssad.config.keys import CONFIG_DIR

    rows, above = [], []
    for line in (Path(CONFIG_DIR) / f"{command}.yaml").read_text().splitlines():
        if line.startswith("#"):
            above.append(line.lstrip("#").strip())
            continue
        match = re.match(r"^([A-Za-z_][\w]*):\s*([^#]*?)\s*(?:#\s*(.*))?$", line)
        if match and match.group(1) not in ("defaults", "hydra"):
            comment = " ".join([*above, match.group(3) or ""]).strip()
            rows.append((match.group(1), match.group(2) or "(a mapping)", comment))
        if not line.startswith(" "):
            above = []
    return rows


def group_rows() -> list[tuple[str, str, str]]:
    """``(group, preset, first header line)`` for every preset of every group of ``conf/`` (files starting with
    ``_`` are parts other presets include, not presets)."""
    from ssad.config.keys import CONFIG_DIR

    rows = []
    for folder in sorted(p for p in Path(CONFIG_DIR).iterdir() if p.is_dir() and not p.name.startswith("_")):
        for path in sorted(folder.rglob("*.yaml")):
            if path.name.startswith("_"):
                continue
            comment = first_sentence(header_comment(path.read_text().splitlines()))
            name = str(path.relative_to(folder).with_suffix(""))
            rows.append((str(path.parent.relative_to(CONFIG_DIR)), name, comment))
    return rows


class ConfigGroups(ConfigKeys):
    """A table of the config groups and their presets, generated from ``conf/``."""

    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        lines = ["| group | preset | what it is (the file's first sentence) |", "|---|---|---|"]
        for group, name, comment in group_rows():
            lines.append(f"| `{group}` | `{name}` | {_cell(comment)} |")
        return self._parse(lines)


class CommandKeys(ConfigKeys):
    """A table of a command's own top-level keys, generated from ``conf/<command>.yaml`` and its comments."""

    def run(self) -> list[nodes.Node]:
        lines = ["| key | default | meaning (the config file's comment) |", "|---|---|---|"]
        for key, value, comment in command_rows(self.arguments[0]):
            lines.append(f"| `{key}` | {_code(value)} | {_cell(comment)} |")
        return self._parse(lines)


class Modules(ConfigKeys):
    """``automodule`` of a package and each of its modules, under a heading per module (generated by pkgutil)."""

    option_spec = {"shallow": directives.flag}

    def run(self) -> list[nodes.Node]:
        package = self.arguments[0]
        result: list[nodes.Node] = []
        sections: dict[str, nodes.section] = {}  # module name -> its section, so a subpackage's modules nest in it
        for name in package_modules(package, shallow="shallow" in self.options):
            module = importlib.import_module(name)
            self.env.note_dependency(module.__file__)
            # a package's __all__ re-exports what its modules define: documented there, not twice
            options = ["   :ignore-module-all:"] if hasattr(module, "__path__") else []
            # autodoc writes reStructuredText: parsed as such inside an eval-rst block, not as MyST
            lines = ["```{eval-rst}", f".. automodule:: {name}", *options, "```"]
            if name == package:  # the page's own package: its docstring under the page title
                container = nodes.container()
                nested_parse_with_titles(self.state, StringList(lines, source=package), container)
                result += container.children
                continue
            section = nodes.section()
            section += nodes.title("", "", nodes.literal(name, name))
            section["names"].append(nodes.fully_normalize_name(name))
            self.state.document.note_implicit_target(section, section)
            nested_parse_with_titles(self.state, StringList(lines, source=package), section)
            parent = sections.get(name.rsplit(".", 1)[0])
            if parent is not None:
                parent += section
            else:
                result.append(section)
            sections[name] = section
        return result


class PublicApi(ConfigKeys):
    """A table of ``ssad.__all__``: name, what it is (its docstring's first line), where it is defined."""

    required_arguments = 0

    def run(self) -> list[nodes.Node]:
        import ssad

        lines = ["| name (links to its definition) | what it is (its docstring's first sentence) |", "|---|---|"]
        for name in ssad.__all__:
            value = getattr(ssad, name)
            if name == "__version__":
                lines.append(f"| `ssad.__version__` | the package's version, `{value}` |")
                continue
            module = value.__module__
            summary = (inspect.getdoc(value) or "").split("\n\n")[0].replace("\n", " ")
            summary = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", summary)  # reST roles as code in this Markdown table
            lines.append(f"| {{py:obj}}`ssad.{name} <{module}.{name}>` | {_cell(first_sentence(summary))} |")
            self.env.note_dependency(sys.modules[module].__file__)
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source="ssad.__all__"), container)
        return container.children


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("ssad-config-keys", ConfigKeys)
    app.add_directive("ssad-config-groups", ConfigGroups)
    app.add_directive("ssad-command-keys", CommandKeys)
    app.add_directive("ssad-modules", Modules)
    app.add_directive("ssad-public-api", PublicApi)
    return {"parallel_read_safe": True, "version": "1"}
