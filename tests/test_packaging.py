"""The package installs from a wheel with its config tree: the console scripts work outside a checkout."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ssad.config.keys import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_config_tree_and_composes_outside_the_checkout(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    for tree in ("ssad", "conf"):  # conf/ installs as the package ssad.conf
        shutil.copytree(ROOT / tree, source / tree, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("ssad-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    packaged = {name for name in names if name.startswith("ssad/conf/") and name.endswith(".yaml")}
    in_tree = {f"ssad/conf/{p.relative_to(CONFIG_DIR).as_posix()}" for p in Path(CONFIG_DIR).rglob("*.yaml")}
    assert in_tree and packaged == in_tree
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "ssad").rglob("*.py")}  # pyproject lists packages
    assert modules <= set(names), sorted(modules - set(names))

    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([sys.executable, "-m", "ssad.train", "negatives=combined", "--cfg", "all"], cwd=elsewhere,
                         env={"PYTHONPATH": str(site), "PATH": ""}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "name: combined" in run.stdout  # a preset from the packaged tree
    assert f"path: {site}/ssad/conf" in run.stdout  # read from the installed copy, not the checkout
