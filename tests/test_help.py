"""``--help`` / ``-h`` of every command: what it does, its usage with an example, its own keys with their meaning and
default, its groups with their presets, and not Hydra's dump of the resolved config (issue 34, item 7)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from ssad.cli.help import help_text, own_keys, schema_doc
from ssad.config.keys import CONFIG_DIR
from tests.conftest import HANG_S

# per command: keys its help must name, each with a word of its meaning
OWN_KEYS = {
    "train": {"seed": "seed", "resume": "resume", "data.epoch_size": "epoch", "trust_file": "pickle"},
    "evaluate": {"ckpt": "checkpoint", "add_ood": "OOD", "accelerator": "cuda"},
    "export": {"ckpt": "checkpoint", "out": "detector", "tpr": "threshold"},
    "score": {"detector": "detector", "input": "folder", "histogram": "PNG", "tpr": "threshold"},
}
HYDRA_DUMP = ("_target_:", "== Config ==", "hydra:", "defaults:", "Powered by Hydra")


def run_main(command: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys) -> tuple[int, str]:
    module = importlib.import_module(f"ssad.{command}")
    monkeypatch.setattr(sys, "argv", [f"ssad/{command}.py", *argv])
    with pytest.raises(SystemExit) as stop:
        module.main()
    return stop.value.code, capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(OWN_KEYS))
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_names_own_keys(command: str, flag: str, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    code, out = run_main(command, [flag], monkeypatch, capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) <= 80, out
    assert lines[0] and not lines[0].startswith("usage"), "starts with what the command does"
    assert f"usage: python -m ssad.{command}" in out and f"e.g. python -m ssad.{command} " in out
    for key, word in OWN_KEYS[command].items():
        line = next((line for line in lines if line.split()[:1] == [key]), None)
        assert line is not None, f"{key} missing from {command} --help:\n{out}"
        assert "[" in line and "]" in line, f"no default on {line!r}"
        assert word.lower() in (line + out[out.index(line) + len(line):].split("\n")[1]).lower(), line
    for dump in HYDRA_DUMP:
        assert dump not in out, f"Hydra's dump ({dump}) in {command} --help"


def test_train_help_lists_groups_and_presets(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _, out = run_main("train", ["--help"], monkeypatch, capsys)
    groups = {line.split()[0]: line for line in out.split("groups (")[1].splitlines()[1:] if line.startswith("  ")
              and not line.startswith("   ")}
    assert {"data", "negatives", "model", "trainer", "experiment"} <= set(groups)
    assert "[null]" in groups["experiment"] and "demo" in out.split("  experiment")[1]
    assert "[vit_small]" in groups["model"] and "cnn_small" in groups["model"]
    assert "hydra" not in groups and "train_schema" not in out
    assert "model.neg_weight" not in out  # wiring of another node, no key of the user's


def test_score_help_has_no_groups(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    _, out = run_main("score", ["--help"], monkeypatch, capsys)
    assert "groups (" not in out and "negatives" not in out
    assert "[???]" in next(line for line in out.splitlines() if line.startswith("  detector"))


def test_hydra_flags_still_reach_hydra(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``--cfg job`` prints the composed config and ``--hydra-help`` Hydra's own help, not ours."""
    module = importlib.import_module("ssad.score")
    monkeypatch.setattr(sys, "argv", ["ssad/score.py", "--cfg", "job"])
    module.main()
    out = capsys.readouterr().out
    assert "detector: ???" in out and "usage:" not in out
    monkeypatch.setattr(sys, "argv", ["ssad/score.py", "--hydra-help"])
    with pytest.raises(SystemExit):
        module.main()
    assert "Hydra" in capsys.readouterr().out


def test_schema_doc_wins_over_the_yaml_comment(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A schema field's ``metadata["doc"]`` is the meaning; the YAML comment is the fall-back."""
    import dataclasses

    from ssad.config import schema

    (tmp_path / "score.yaml").write_text("# the comment\ntpr: null\nout: x.csv  # where the rows go\n")
    fields = {f.name: f for f in dataclasses.fields(schema.ScoreSchema)}
    doc = dict(fields["tpr"].metadata)
    doc["doc"] = "share of in-distribution images the threshold accepts, from the schema"
    monkeypatch.setattr(fields["tpr"], "metadata", doc)
    assert schema_doc("score", "tpr").endswith("from the schema")
    text = help_text("score", "Score images.", "python -m ssad.score x", tmp_path)
    assert "from the schema" in text and "the comment" not in text
    assert "where the rows go" in text


def test_own_keys_reads_nested_keys_and_named_mappings() -> None:
    rows = {key: (default, comment) for key, default, comment in own_keys(CONFIG_DIR / "train.yaml")}
    assert rows["sources"][0].startswith("imagenet")
    assert rows["data.holdout"][0] == "0.0" and "held out" in rows["data.holdout"][1]
    assert "data" not in rows and "model" not in rows and "defaults" not in rows


def test_help_through_python_m() -> None:
    done = subprocess.run([sys.executable, "-m", "ssad.score", "-h"], capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Score new images") and "== Config ==" not in done.stdout


def test_demo_help(capsys) -> None:
    from ssad.cli.help import script_help
    from ssad.demo import __doc__ as doc

    text = script_help(doc, "python -m ssad.demo [VARIANT ...] [KEY=VALUE ...]", "python -m ssad.demo none",
                       [("VARIANT", "a negatives preset")])
    assert text.startswith("Quick-start") and "VARIANT" in text
