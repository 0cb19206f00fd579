"""Bad inputs and faults of the deploy commands (``ssad.score``, ``ssad.export``, ``ssad.evaluate``,
``ssad.report``) and of Hydra's own command line, each run as a user would: one ``error:`` line that says what,
where and the fix, a non-zero exit (2 for a user error), no traceback, and nothing already written changed.

The commands run in this process through their real ``main`` (``sys.argv`` set as the shell would), one through
``python -m ssad.score`` in a subprocess; the detector and checkpoint are made by a real (tiny) training run."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ssad.bench.cli
import ssad.evaluate
import ssad.export
import ssad.report.cli
import ssad.score
from ssad.export import export_detector
from ssad.training.run import train
from tests.conftest import HANG_S, compose_cfg, compose_command

OLD = "file,score,anomalous\nkept.png,0.5,0\n"  # an earlier output that a failed command must leave as it was


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A tiny trained run (``run/checkpoints/*.ckpt``), its ``detector.pt``, and score inputs of every kind."""
    root = tmp_path_factory.mktemp("deploy")
    train(compose_cfg(root, "trainer.max_epochs=1"))
    export_detector(compose_command("export", f"ckpt={root}/run/checkpoints/last.ckpt", f"out={root}/detector.pt"))
    detector = (root / "detector.pt").read_bytes()
    (root / "truncated.pt").write_bytes(detector[: len(detector) // 2])
    (root / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.save({"format": "ssad-detector-v2", "payload": Shell(root / "RAN")}, root / "crafted.pt")
    (root / "empty").mkdir()
    (root / "notes.txt").write_text("not an image")
    np.save(root / "empty.npy", np.zeros((0, 16, 16, 3), np.uint8))
    np.save(root / "big.npy", np.random.default_rng(1).integers(0, 256, (3, 20, 20, 3), dtype=np.uint8))
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "one.png")
    (root / "cfgdir" / "eval").mkdir(parents=True)
    (root / "cfgdir" / "eval" / "broken.yaml").write_text("settings:\n  batch_size: [1, 2\n  k: 3\n")
    return root


class Shell:
    """A pickle that, if it were loaded in full, would run a shell command creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def run(main: Callable, argv: list[str], capfd: pytest.CaptureFixture) -> tuple[int, str]:
    """Run a command's ``main`` as ``prog ARGV...`` would; its exit status and all it printed."""
    saved = sys.argv
    sys.argv = ["prog", *argv]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    finally:
        sys.argv = saved
    captured = capfd.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """A fresh working folder (Hydra writes its ``<command>.log`` there) without ``HYDRA_FULL_ERROR``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    monkeypatch.delenv("SSAD_VERBOSE", raising=False)
    return tmp_path


def assert_one_error(code: int, output: str, *words: str) -> str:
    """Exit status 2, no traceback, and one ``error:`` message, the end of the output, holding every one of
    ``words``; returns the message (one line; a config error lists its keys on the lines below)."""
    assert code == 2, output
    assert "Traceback" not in output, output
    lines = output.rstrip().splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(starts) == 1, output
    message = "\n".join(lines[starts[0]:])
    assert "Error executing job" not in output and "HYDRA_FULL_ERROR" not in output, output  # Hydra's wrapping
    for word in words:
        assert word in message, message
    return message


# ------------------------------------------------------------------------------------------------ ssad.score
SCORE_CASES = {  # name: (arguments relative to the fixture's folder, words of the error line)
    "truncated detector": (["detector=truncated.pt", "input=big.npy"], ["truncated.pt", "not a readable detector",
                                                                        "export it again"]),
    "random bytes detector": (["detector=random.pt", "input=big.npy"], ["random.pt", "not a readable detector"]),
    "missing detector": (["detector=nowhere.pt", "input=big.npy"], ["nowhere.pt", "does not exist", "ssad.export"]),
    "folder as detector": (["detector=empty", "input=big.npy"], ["is a folder", "ssad.export"]),
    "missing input": (["detector=detector.pt", "input=nowhere"], ["input=", "nowhere", "does not exist"]),
    "empty folder": (["detector=detector.pt", "input=empty"], ["no image files", "empty"]),
    "empty npy": (["detector=detector.pt", "input=empty.npy"], ["empty.npy", "no images"]),
    "text file input": (["detector=detector.pt", "input=notes.txt"], ["notes.txt", "neither an image file"]),
    "tpr above 1": (["detector=detector.pt", "input=big.npy", "tpr=1.5"], ["tpr=1.5", "(0, 1]"]),
    "tpr of 0": (["detector=detector.pt", "input=big.npy", "tpr=0"], ["tpr=0", "(0, 1]"]),
}


@pytest.mark.parametrize("case", SCORE_CASES)
def test_score_refuses_bad_input_in_one_line_and_keeps_the_old_output(made, here, capfd, case):
    argv, words = SCORE_CASES[case]
    out = here / "scores.csv"
    out.write_text(OLD)
    argv = [a.split("=")[0] + "=" + str(made / a.split("=")[1]) if a.startswith(("detector=", "input=")) else a
            for a in argv]
    code, output = run(ssad.score.main, [*argv, f"out={out}", "device=cpu"], capfd)
    assert_one_error(code, output, *words)
    assert out.read_text() == OLD
    assert {p.name for p in here.iterdir()} <= {"scores.csv", "score.log"}  # no temporary file left


@pytest.mark.parametrize("key", ["out", "histogram"])
def test_score_checks_that_it_can_write_before_it_scores(made, here, capfd, key):
    (here / "a_file").write_text("keep")
    code, output = run(ssad.score.main, [f"detector={made}/detector.pt", f"input={made}/big.npy", "device=cpu",
                                         f"out={here}/ok.csv", f"{key}={here}/a_file/result.x"], capfd)
    assert_one_error(code, output, f"{key}={here}/a_file/result.x", "is a file, not a folder", f"another {key}=")
    assert "resized" not in output  # refused before the input was read
    assert (here / "a_file").read_text() == "keep" and not (here / "ok.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder")
def test_score_refuses_a_read_only_output_folder(made, here, capfd):
    locked = here / "locked"
    locked.mkdir(mode=0o555)
    code, output = run(ssad.score.main, [f"detector={made}/detector.pt", f"input={made}/big.npy",
                                         f"out={locked}/s.csv"], capfd)
    assert_one_error(code, output, f"out={locked}/s.csv", "cannot write in")


def test_score_a_single_image_file(made, here, capfd):
    code, output = run(ssad.score.main, [f"detector={made}/detector.pt", f"input={made}/one.png",
                                         f"out={here}/one.csv", "device=cpu"], capfd)
    assert code == 0, output
    rows = (here / "one.csv").read_text().splitlines()
    assert rows[0] == "rank,file,score,anomalous" and rows[1].startswith("1,one.png,") and len(rows) == 2
    assert "1 images" in output or "of 1 images" in output


def test_score_warns_once_in_one_line_when_it_resizes_a_npy(made, here, capfd):
    code, output = run(ssad.score.main, [f"detector={made}/detector.pt", f"input={made}/big.npy",
                                         f"out={here}/s.csv", "device=cpu"], capfd)
    assert code == 0, output
    said = [line for line in output.splitlines() if "resized" in line]
    assert len(said) == 1 and "20×20" in said[0] and "training size 16×16" in said[0], output
    assert "warnings.warn" not in output and "UserWarning" not in output


def test_a_crafted_detector_file_runs_nothing_through_the_real_command(made, tmp_path):
    """``python -m ssad.score`` on a detector file whose pickle calls os.system: refused, the command not run."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SSAD_VERBOSE")}
    proc = subprocess.run([sys.executable, "-m", "ssad.score", f"detector={made}/crafted.pt",
                           f"input={made}/one.png", f"out={tmp_path}/s.csv"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=HANG_S)
    assert_one_error(proc.returncode, proc.stdout + proc.stderr, "crafted.pt", "refused", "system",
                     "nothing of it was run", "trust_file=true")
    assert not (made / "RAN").exists() and not (tmp_path / "s.csv").exists()


# ------------------------------------------------------------------------------------- ssad.export / evaluate
COMMANDS = {"export": ssad.export.main, "evaluate": ssad.evaluate.main}


@pytest.fixture
def torn_run(made, here) -> Path:
    """A run folder whose ``last.ckpt`` was cut short, beside a complete ``epoch000.ckpt``."""
    folder = here / "torn" / "checkpoints"
    folder.mkdir(parents=True)
    shutil.copy(made / "run" / "checkpoints" / "epoch000.ckpt", folder / "epoch000.ckpt")
    data = (made / "run" / "checkpoints" / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 3])
    return folder


@pytest.mark.parametrize("command", COMMANDS)
def test_a_torn_checkpoint_points_at_another_checkpoint_by_its_full_path(torn_run, here, capfd, command):
    torn = (torn_run / "last.ckpt").read_bytes()
    (here / "detector.pt").write_text("old")
    code, output = run(COMMANDS[command], [f"ckpt={torn_run}/last.ckpt", f"out={here}/detector.pt"], capfd)
    message = assert_one_error(code, output, f"{torn_run}/last.ckpt", "cannot be read", f"ssad.{command}",
                               f"ckpt={torn_run}/epoch000.ckpt")
    assert "resume" not in message and "start over" not in message and "ckpt_path" not in message
    assert (torn_run / "last.ckpt").read_bytes() == torn and (here / "detector.pt").read_text() == "old"


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["missing checkpoint", "tpr out of range", "unwritable out"])
def test_export_and_evaluate_refuse_bad_arguments_before_any_work(made, here, capfd, command, case):
    ckpt = f"ckpt={made}/run/checkpoints/last.ckpt"
    (here / "a_file").write_text("keep")
    argv, words = {
        "missing checkpoint": ([f"ckpt={here}/gone.ckpt"], [f"{here}/gone.ckpt", "does not exist", "ckpt="]),
        # evaluate takes no tpr: a key forced in with ++ is refused as unknown
        "tpr out of range": (([ckpt, "++tpr=2"], ["unknown config key tpr"]) if command == "evaluate"
                             else ([ckpt, "tpr=2"], ["tpr=2.0 must be a share in (0, 1]"])),
        "unwritable out": ([ckpt, f"out={here}/a_file/x"], ["out=", "is a file, not a folder"]),
    }[case]
    code, output = run(COMMANDS[command], argv, capfd)
    assert_one_error(code, output, *words)
    assert (here / "a_file").read_text() == "keep"


@pytest.mark.parametrize("failure", [
    RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos 6528 vs 6416"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_export_on_a_full_disk_keeps_the_previous_detector(made, here, capfd, monkeypatch, failure):
    out = here / "detector.pt"
    shutil.copy(made / "detector.pt", out)
    before = out.read_bytes()

    def full_disk(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")  # a part was written before the disk filled
        raise failure

    monkeypatch.setattr(torch, "save", full_disk)
    code, output = run(ssad.export.main, [f"ckpt={made}/run/checkpoints/last.ckpt", f"out={out}"], capfd)
    assert_one_error(code, output, f"disk full while writing {out}", "the previous file is unchanged")
    assert "enforce fail" not in output
    assert out.read_bytes() == before and {p.name for p in here.iterdir()} <= {"detector.pt", "export.log"}


# ------------------------------------------------------------------------------------------ Hydra's errors
HYDRA_COMMANDS = {"score": (ssad.score.main, ["detector=d.pt", "input=x.npy"]),
                  "export": (ssad.export.main, ["ckpt=x.ckpt"]),
                  "evaluate": (ssad.evaluate.main, ["ckpt=x.ckpt"])}


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
@pytest.mark.parametrize("flag", ["--config-dir", "-cd"])
def test_a_yaml_syntax_error_in_config_dir_is_one_line_naming_file_and_line(made, here, capfd, command, flag):
    main, argv = HYDRA_COMMANDS[command]
    code, output = run(main, [flag, str(made / "cfgdir"), *argv], capfd)
    message = assert_one_error(code, output, "YAML syntax error", str(made / "cfgdir" / "eval" / "broken.yaml"),
                               "line 3", "opened at line 2")
    assert message == output.strip()  # the whole output: no parser traceback


@pytest.mark.parametrize("command", HYDRA_COMMANDS)
@pytest.mark.parametrize("override, words", [("lrr=1", ["unknown config key lrr"]),
                                             ("eval=nosuch", ["Could not find 'eval/nosuch'"])])
def test_hydra_refusals_are_short_and_fail(here, capfd, command, override, words):
    main, argv = HYDRA_COMMANDS[command]
    if command == "score" and override.startswith("eval="):
        override, words = "+eval=nosuch", ["Could not find 'eval/nosuch'"]
    code, output = run(main, [*argv, override], capfd)
    assert code != 0 and "Traceback" not in output, output
    assert all(word in output for word in words), output


@pytest.mark.parametrize("argv, words", [(["lrr=1"], ["unknown config key lrr"]),
                                         (["--json", "a_file/bench.json"], ["--json=a_file/bench.json", "is a file"])])
def test_bench_refuses_a_bad_override_or_output_in_one_line(here, capfd, argv, words):
    (here / "a_file").write_text("keep")
    code, output = run(lambda: ssad.bench.cli.main(["--preset", "tiny", "--device", "cpu", "--no-fit",
                                                    "--no-reference", *argv]), [], capfd)
    assert_one_error(code, output, *words)
    assert (here / "a_file").read_text() == "keep"


# ------------------------------------------------------------------------------------------------ ssad.report
@pytest.mark.parametrize("case, words", [("missing", ["no such folder"]), ("empty", ["no runs found under"]),
                                         ("file", ["is a file"])])
def test_report_of_a_missing_or_empty_folder(here, capfd, case, words):
    source = here / case
    if case == "empty":
        source.mkdir()
    elif case == "file":
        source.write_text("keep")
    code, output = run(lambda: ssad.report.cli.main([str(source)]), [], capfd)
    assert_one_error(code, output, str(source), *words)
    assert not (here / case / "report").exists() and (case != "file" or source.read_text() == "keep")
