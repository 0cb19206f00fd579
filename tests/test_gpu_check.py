"""The GPU check (``python -m ssad.bench.gpu.check``, issue 38) on a CPU with its tiny preset: every section
reported in the JSON and the printed table, budgets that stop or skip a section, and the JSON written whatever
happens."""

from __future__ import annotations

import json
import math
from numbers import Number

import pytest

from ssad.bench.gpu import check as gpu_check
from ssad.bench.gpu.presets import PRESETS, RESNET18, SECTIONS
from ssad.bench.gpu.table import title

# each section's figures that must be numbers when it ran to the end (key paths into its figures)
FIGURES = {
    "bench": [("ssad", "images_per_s"), ("reference", "images_per_s"), ("speedup",), ("flops_per_image",)],
    "memory": [("batches", "2", "peak_memory_mib"), ("batches", "8", "peak_memory_mib"), ("largest_fitting",)],
    "bf16_vs_fp32": [("L_pos", "max_relative_difference"), ("L_neg", "max_relative_difference"), ("steps",)],
    "fit": [("images_per_s",), ("step_ms",), ("outside_model_share",)],
    "eval": [("extraction", "images_per_s"), ("scoring", "queries_per_s"), ("seconds",), ("of_epoch",)],
}


def figure(figures: dict, path: tuple[str, ...]) -> object:
    for key in path:
        figures = figures[key]
    return figures


def run(tmp_path, capsys, *args: str) -> tuple[dict, dict, str]:
    out = tmp_path / "check.json"
    returned = gpu_check.main(["--preset", "tiny", "--device", "cpu", "--out", str(out), *args])
    written = json.loads(out.read_text())
    return returned, written, capsys.readouterr().out


# budgets no loaded CPU spends on the tiny ViT sections, so whether they finish never depends on the machine's load
# (the budgets themselves are tested with budgets of 0 and a fraction of a second below)
VIT_SECTIONS = tuple(name for name in SECTIONS if not name.startswith(RESNET18))
ROOMY = ("--deadline=900", *(f"--budget={name}=120" for name in VIT_SECTIONS))


def test_tiny_check_reports_every_section(tmp_path, capsys) -> None:
    """Every section in the JSON (numbers where it ran to the end, a reason where it did not) and its header in
    the printed table."""
    returned, check, printed = run(tmp_path, capsys, *ROOMY)
    assert check == json.loads(json.dumps(returned, default=str))
    assert list(check["sections"]) == list(SECTIONS)
    assert check["check"]["preset"] == "tiny" and check["check"]["device"] == "cpu"
    for name, entry in check["sections"].items():
        assert entry["status"] in ("ok", "stopped", "skipped"), (name, entry["reason"])
        assert f"== {name}: {title(name)} [{entry['status']}" in printed
        if entry["status"] != "ok":
            assert entry["reason"] and f"{entry['status']}: {entry['reason']}" in printed
            continue
        assert entry["reason"] is None
        for path in FIGURES[name.rpartition(".")[2]]:
            value = figure(entry["figures"], path)
            assert isinstance(value, Number) and math.isfinite(value) and value >= 0, (name, path, value)
    # with room enough the ViT sections run to the end; the summary names every section
    for name in VIT_SECTIONS:
        assert check["sections"][name]["status"] == "ok", (name, check["sections"][name]["reason"])
    bench = check["sections"]["bench"]["figures"]
    assert bench["ablation"]["compile=True"] == {"skipped": PRESETS["tiny"].lever_skip}
    assert {"bf16=True", "fused_adamw=False", "fused_attn=False", "group_views=False"} <= set(bench["ablation"])
    summary = printed[printed.index("ssad GPU check"):]
    assert all(f"\n{name} " in summary for name in SECTIONS)


def test_zero_budget_skips_the_section_and_the_json_is_written(tmp_path, capsys) -> None:
    """A section with budget 0 is skipped with its reason; one whose budget is too short is stopped and keeps
    what it measured; the others run; the JSON holds all of them."""
    zero = [f"--budget={name}=0" for name in SECTIONS if name not in ("bench", "fit")]
    _, check, printed = run(tmp_path, capsys, *zero, "--budget=bench=0.5", "--budget=fit=120", "--deadline=900")
    sections = check["sections"]
    for name in SECTIONS:
        if name not in ("bench", "fit"):
            assert sections[name]["status"] == "skipped" and sections[name]["reason"] == "budget 0 s"
            assert f"== {name}: {title(name)} [skipped" in printed and "skipped: budget 0 s" in printed
    assert sections["bench"]["status"] == "stopped" and "budget" in sections["bench"]["reason"]
    assert sections["fit"]["status"] == "ok" and sections["fit"]["figures"]["images_per_s"] > 0


def test_deadline_spent_skips_every_section(tmp_path, capsys) -> None:
    _, check, printed = run(tmp_path, capsys, "--deadline", "0")
    assert {e["status"] for e in check["sections"].values()} == {"skipped"}
    assert all(e["reason"] == "the check's deadline was reached before it" for e in check["sections"].values())
    assert printed.count("== ") == len(SECTIONS)


@pytest.mark.parametrize("budget, problem", [("nope=3", "no section 'nope'"), ("fit=soon", "'soon' is not a number")])
def test_bad_budget_is_a_user_error(tmp_path, capsys, budget: str, problem: str) -> None:
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--preset", "tiny", "--out", str(tmp_path / "x.json"), "--budget", budget])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --budget") and problem in err
    assert not (tmp_path / "x.json").exists()


def test_missing_output_folder_is_a_user_error(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--preset", "tiny", "--out", str(tmp_path / "nowhere" / "x.json")])
    assert stop.value.code == 2 and "does not exist" in capsys.readouterr().err
