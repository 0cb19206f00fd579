"""README's commands compose: every ``python -m ssad.train|evaluate|export|score ...`` line in its code blocks is
composed with the real config tree and validated as the command would at start-up (known keys, types, ranges),
without running it, so a renamed preset or key fails the suite. A sweep's comma list is composed at its first
value; paths in the commands need not exist (nothing is read)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import open_dict

from ssad.config.keys import CONFIG_DIR
from ssad.config.validation import validate

README = Path(__file__).resolve().parent.parent / "README.md"
COMMAND = re.compile(r"^python -m ssad\.(train|evaluate|export|score)\b")


def readme_commands(text: str) -> list[tuple[str, list[str]]]:
    """``(command, arguments)`` of every ssad command line in ``text``'s fenced code blocks (a line ending in ``\\``
    continues on the next; ``# ...`` comments dropped)."""
    commands, in_block, pending = [], False, ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_block, pending = not in_block, ""
            continue
        if not in_block:
            continue
        pending += line.rstrip("\\").strip() + " "
        if line.rstrip().endswith("\\"):
            continue
        words, pending = shlex.split(pending, comments=True), ""
        match = COMMAND.match(" ".join(words[:3]))
        if match:
            commands.append((match.group(1), words[3:]))
    return commands


def first_of_sweeps(arguments: list[str]) -> list[str]:
    """The overrides of ``arguments`` (``-m`` dropped), each sweep (``a,b,c``) at its first value."""
    overrides = [a for a in arguments if a not in ("-m", "--multirun")]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" if o.is_sweep_override() else o.input_line
            for o in parsed]


COMMANDS = readme_commands(README.read_text(encoding="utf-8"))


def test_readme_shows_the_practitioners_three_commands():
    assert {name for name, _ in COMMANDS} >= {"train", "export", "score"}


@pytest.mark.parametrize(("name", "arguments"), COMMANDS, ids=[" ".join(a)[:60] for _, a in COMMANDS])
def test_readme_command_composes(name, arguments):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=first_of_sweeps(arguments), return_hydra_config=True)
    with open_dict(cfg):
        del cfg["hydra"]  # Hydra's own node composed (hydra.* overrides checked), not the command's keys
    validate(cfg, name)


def test_a_renamed_key_or_preset_fails():
    """The test above can fail: a preset or key that does not exist is refused."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        with pytest.raises(Exception, match="no_such_preset"):
            compose("train", overrides=["experiment=no_such_preset"])
        cfg = compose("train", overrides=["experiment=demo", "+data.pathh=/x"])
    with pytest.raises(ValueError, match="pathh"):
        validate(cfg, "train")
