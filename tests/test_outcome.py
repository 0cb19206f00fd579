"""What training and export end on (issue 34 item 7, issue 35 item 3): the AUROC per OOD set beside raw pixels and
the untrained network, plain-word warnings when the detector is not above them, the export command with the run's
real checkpoint, and the notes of ssad.report and the demo when a trained teacher ends below its untrained network."""

from __future__ import annotations

import json

from ssad.cli.outcome import (
    below_untrained,
    below_untrained_note,
    compare,
    comparison_lines,
    export_lines,
    next_step,
    read_baselines,
    report_notes,
    run_baselines_file,
    training_end,
)
from ssad.report.runs import Run


def baselines(raw: dict[str, float], untrained: dict[str, float]) -> dict:
    return {"raw_pixels": {"ood": {k: {"auroc": v} for k, v in raw.items()}},
            "untrained": {"ood": {k: {"auroc": v} for k, v in untrained.items()}},
            "untrained_as_built": {"ood": {k: {"auroc": 0.5} for k in raw}}}


BASE = baselines({"near": 0.882, "far": 0.998, "easy": 1.0}, {"near": 0.777, "far": 0.792, "easy": 1.0})


def test_table_beside_the_baselines_and_warnings_in_plain_words() -> None:
    table = compare({"near": 0.8805, "far": 0.6290, "easy": 1.0}, BASE)
    assert table["near"] == {"detector": 0.8805, "raw_pixels": 0.882, "untrained": 0.777}
    lines = comparison_lines(table)
    row = next(line for line in lines if line.split()[:1] == ["far"])
    assert row.split()[1:] == ["62.9", "99.8", "79.2"]
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 2  # near and far; easy is perfect for every score
    near, far = warnings
    assert "near" in near and "not above raw pixels (88.2)" in near and "untrained" not in near
    assert "below the untrained network (79.2)" in far and "training made it worse" in far
    assert "docs/howto/is-it-learning.md" in lines[-1] and "max_epochs" in lines[-1]


def test_no_warning_when_the_detector_beats_both() -> None:
    lines = comparison_lines(compare({"near": 0.95}, BASE))
    assert not any(line.startswith("warning") for line in lines) and "what to try" not in "\n".join(lines)


def test_a_set_a_baseline_did_not_score_shows_a_dash() -> None:
    lines = comparison_lines(compare({"mine": 0.7}, BASE))
    assert next(line for line in lines if "mine" in line).split()[1:] == ["70.0", "-", "-"]


def test_training_end_prints_the_export_command_with_the_real_checkpoint(tmp_path) -> None:
    (tmp_path / "checkpoints").mkdir()
    assert next_step(tmp_path) is None  # nothing to export
    (tmp_path / "checkpoints" / "epoch=1.ckpt").write_bytes(b"x")
    assert f"ckpt={tmp_path / 'checkpoints' / 'epoch=1.ckpt'} out=detector.pt" in next_step(tmp_path)
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    text = training_end({"ood": {"near": {"auroc": 0.7}}}, BASE, tmp_path)
    assert text.splitlines()[-1] == f"  python -m ssad.export ckpt={tmp_path}/checkpoints/last.ckpt out=detector.pt"
    assert "warning: on near the trained teacher (70.0)" in text
    assert "no baselines" in training_end({"ood": {"near": {"auroc": 0.7}}}, None, tmp_path)
    assert training_end({}, None, tmp_path).startswith("next:")


def test_the_runs_baselines_file_is_found_and_read(tmp_path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert run_baselines_file(ckpt, None) is None
    (run / "baselines.json").write_text(json.dumps(BASE))
    assert run_baselines_file(ckpt, "auto") == (run / "baselines.json").resolve()
    elsewhere = tmp_path / "sweep_baselines.json"
    elsewhere.write_text(json.dumps(BASE))
    assert run_baselines_file(ckpt, str(elsewhere)) == elsewhere
    assert read_baselines(elsewhere) == BASE
    (run / "bad.json").write_text("{")
    assert read_baselines(run / "bad.json") is None


def test_export_lines_from_the_detector_meta() -> None:
    meta = {"held_out_quality": {"near": {"auroc": 0.7}}, "baselines": compare({"near": 0.7}, BASE)}
    lines = export_lines(meta)
    assert "detector" in lines[1] and any("not above raw pixels" in line for line in lines)
    assert "eval.baselines=auto" in export_lines({"held_out_quality": {"near": {"auroc": 0.7}}})[0]
    assert export_lines({}) == []


def test_report_and_demo_notes_for_a_teacher_below_its_untrained_network() -> None:
    trained = {"ood": {"near": {"auroc": 0.629}, "far": {"auroc": 0.9}}}
    assert below_untrained(trained, BASE) == ["near"]
    note = below_untrained_note("rot_indist", ["near"])
    assert "ends below its untrained network on near" in note and "worse" in note
    runs = [Run("a", "rot_indist", "digits", 0, trained),
            Run("b", "none", "digits", 0, {"ood": {"near": {"auroc": 0.9}}}),
            Run("base", "untrained", "digits", None, BASE["untrained"], label="Untrained")]
    notes = report_notes(runs)
    assert len(notes) == 1 and notes[0].startswith("Note: rot_indist (seed 0)") and "near" in notes[0]
