"""Sphinx configuration of the ssad documentation (MyST Markdown, furo theme).

Built by ``make docs`` with warnings as errors: a broken cross-reference, a page outside every toctree or a module
that autodoc cannot import fails the build.
"""

from __future__ import annotations

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))  # the ssad_docs extension (config keys generated from ssad/config/schema.py)
sys.path.insert(0, str(DOCS.parent))  # the checkout itself, so autodoc documents the code next to these pages

project = "ssad"
author = "the ssad authors"
copyright = "the ssad authors"  # noqa: A001 (Sphinx's name)

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "ssad_docs",
]

myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # "page.md#a-heading" links to headings up to ###

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
suppress_warnings: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = "ssad"
html_static_path = ["_static"]
html_theme_options = {"navigation_with_keys": True}
