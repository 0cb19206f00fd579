"""The Python API reference documents every module of ssad: the ``ssad-modules`` directives of docs/reference/api/
(expanded by docs/_ext/ssad_api.py, as the docs build expands them) list each module pkgutil finds, once. Checked
without building the docs."""

from __future__ import annotations

import importlib.util
import pkgutil
from pathlib import Path

import ssad

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("ssad_api", ROOT / "docs" / "_ext" / "ssad_api.py")
ssad_api = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ssad_api)


def every_module() -> list[str]:
    """ssad and every module under it but the ``__main__`` ones (importing one runs its command)."""
    names = ["ssad", *(m.name for m in pkgutil.walk_packages(ssad.__path__, "ssad."))]
    return sorted(n for n in names if not n.endswith(".__main__"))


def test_every_module_is_documented_once():
    documented = ssad_api.documented_modules()
    assert sorted(documented) == every_module()  # none missing, none extra, none twice


def test_one_page_per_subpackage():
    pages = {p.stem for p in ssad_api.API_PAGES.glob("*.md")} - {"index"}
    subpackages = {m.name for m in pkgutil.iter_modules(ssad.__path__) if m.ispkg}
    assert pages == subpackages | {"ssad"}
    index = (ssad_api.API_PAGES / "index.md").read_text(encoding="utf-8")
    assert all(f"\n{page}\n" in index for page in pages)  # each in the toctree


def test_a_module_without_a_page_is_caught(tmp_path):
    """The check above can fail: pages that leave a subpackage out document fewer modules than pkgutil finds."""
    for page in ssad_api.API_PAGES.glob("*.md"):
        if page.stem != "deploy":
            (tmp_path / page.name).write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    documented = ssad_api.documented_modules(tmp_path)
    assert "ssad.deploy.detector" not in documented and sorted(documented) != every_module()


def test_shallow_lists_the_package_and_its_plain_modules():
    assert ssad_api.page_packages("```{ssad-modules} ssad\n:shallow:\n```\n") == [("ssad", True)]
    names = ssad_api.package_modules("ssad", shallow=True)
    assert names[0] == "ssad" and "ssad.train" in names and "ssad.demo" in names
    assert not any(n.startswith("ssad.data") for n in names)
    assert "ssad.bench.__main__" not in ssad_api.package_modules("ssad.bench")
