"""Which modules of ssad each page of the Python API reference documents, listed from the package itself.

No Sphinx import here: ``tests/test_docs_api.py`` checks without building the docs that the pages together
document every module of ssad.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

API_PAGES = Path(__file__).resolve().parent.parent / "reference" / "api"

# ```{ssad-modules} PACKAGE``` on an API page, with an optional ``:shallow:`` option line
DIRECTIVE = re.compile(r"^```\{ssad-modules\}\s+(\S+)\s*\n((?::\w+:.*\n)*)```", re.MULTILINE)


def package_modules(package: str, shallow: bool = False) -> list[str]:
    """``package`` and its modules, in the order pkgutil walks them (by name, a subpackage's modules after it).
    ``shallow``: only the package and its plain modules (its subpackages have pages of their own). ``__main__``
    modules are left out: importing one runs its command."""
    root = importlib.import_module(package)
    names = [package]
    if shallow:
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(root.__path__) if not m.ispkg]
    else:
        names += [m.name for m in pkgutil.walk_packages(root.__path__, f"{package}.")]
    return [n for n in names if n.rsplit(".", 1)[-1] != "__main__"]


def page_packages(text: str) -> list[tuple[str, bool]]:
    """``(package, shallow)`` of every ``ssad-modules`` directive in a page's Markdown ``text``."""
    return [(m.group(1), ":shallow:" in m.group(2)) for m in DIRECTIVE.finditer(text)]


def documented_modules(pages: Path = API_PAGES) -> list[str]:
    """Every module the API pages under ``pages`` document, in page order (a module twice if two pages list it)."""
    names: list[str] = []
    for page in sorted(pages.glob("*.md")):
        for package, shallow in page_packages(page.read_text(encoding="utf-8")):
            names += package_modules(package, shallow)
    return names
