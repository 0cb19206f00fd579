"""Unknown config keys fail with the known keys listed, however they arrive; legitimate additions keep working."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from ssad.config.keys import CONFIG_DIR, check_keys
from ssad.config.validation import validate
from tests.conftest import HANG_S, compose_cfg, compose_command

OPTIM_KEYS = "base_lr, clip_grad, clip_mode, effective_batch, freeze_last_layer, min_lr, optimizer, warmup_epochs"


def test_a_typo_on_the_command_line_lists_the_known_keys(tmp_path):
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(tmp_path, "optim.lrr=0.1")
    assert "optim has no key 'lrr'" in str(err.value) and OPTIM_KEYS in str(err.value)
    assert "+optim.lrr" not in str(err.value)  # Hydra's own advice, which then failed silently, is gone
    with pytest.raises(ConfigCompositionException, match="did you mean 'out_dim'"):
        compose_cfg(tmp_path, "model.head.out_dimm=3")


@pytest.mark.parametrize("prefix", ["+", "++"])
def test_an_added_key_that_nothing_reads_fails_at_start_up(tmp_path, prefix):
    cfg = compose_cfg(tmp_path, f"{prefix}optim.lrr=0.1")  # Hydra accepts it ...
    with pytest.raises(ValueError) as err:  # ... the start-up check does not
        validate(cfg)
    assert "unknown config key optim.lrr" in str(err.value) and OPTIM_KEYS in str(err.value)


def test_a_key_the_code_takes_is_pointed_to_plus_plus(tmp_path):
    with pytest.raises(ConfigCompositionException, match=r"set it with \+\+trainer.overfit_batches=2"):
        compose_cfg(tmp_path, "trainer.overfit_batches=2")
    with pytest.raises(ConfigCompositionException, match=r"add it with \+data.ood.mine="):
        compose_cfg(tmp_path, "data.ood.mine={format: synthetic, n: 4}")


def test_legitimate_additions_pass(tmp_path):
    cfg = compose_cfg(tmp_path, "+data.ood.mine={format: synthetic, n: 4}", "++trainer.limit_train_batches=2",
                      "+data.path=mine.npy", "++model.head.n_layers=2",
                      "+callbacks.extra={_target_: ssad.training.callbacks.CheckpointOnInterrupt, dirpath: x}")
    validate(cfg)
    validate(compose_cfg(tmp_path, "data=folder", "data.path=mine.npy", "data.on_error=skip"))
    cfg = compose_cfg(tmp_path, "+callbacks.extra={_target_: ssad.training.callbacks.CheckpointOnInterrupt, "
                                "dirpath: x, every: 2}")
    with pytest.raises(ValueError, match="callbacks.extra.every: callbacks.extra has no key 'every'; its keys: "
                                         "dirpath"):
        validate(cfg)


@pytest.mark.parametrize("name", ["evaluate", "export", "score"])
def test_other_commands_refuse_unknown_keys_too(name):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(name, overrides=["+tprr=0.9", "eval.settings.progress=false"] if name != "score"
                      else ["+tprr=0.9"])
    with pytest.raises(ValueError, match="the config has no key 'tprr'"):
        check_keys(cfg, name)


@pytest.mark.parametrize("name,override,key", [
    ("evaluate", "accelerator=tpu", "accelerator"),
    ("evaluate", "eval.settings.temperature=0", "eval.settings.temperature"),
    ("export", "tpr=1.5", "tpr"),
    ("export", "eval.size=0", "eval.size"),
    ("score", "batch_size=0", "batch_size"),
    ("score", "on_error=ignore", "on_error"),
])
def test_other_commands_name_a_bad_value_and_its_range(name, override, key):
    with pytest.raises(ValueError, match=rf"invalid configuration:\n  {key.replace('.', '[.]')}=.* must be "):
        validate(compose_command(name, override), name)
    validate(compose_command(name), name)  # the defaults are valid


def test_a_value_of_the_wrong_type_fails_while_composing_naming_the_key(tmp_path):
    with pytest.raises(ConfigCompositionException, match="eval.settings.knn_k"):
        compose_cfg(tmp_path, "eval.settings.knn_k=many")
    with pytest.raises(ConfigCompositionException, match="tpr"):
        compose_command("export", "tpr=high")


def _train_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SSAD_DATA": str(tmp_path / "data"), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, "-m", "ssad.train", f"hydra.run.dir={tmp_path}/outputs/run",
                           "logger=none", *overrides], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=HANG_S)


def test_command_line_refuses_both_ways_and_leaves_no_run_folder(tmp_path):
    plain = _train_cli(tmp_path, "optim.lrr=0.1")
    assert plain.returncode != 0 and "optim has no key 'lrr'" in plain.stderr and OPTIM_KEYS in plain.stderr
    added = _train_cli(tmp_path, "+optim.lrr=0.1")
    assert added.returncode != 0
    assert "unknown config key optim.lrr" in added.stderr and OPTIM_KEYS in added.stderr
    # Hydra had created the run folder (.hydra/, train.log) before the check failed: it is gone, with `outputs/`
    assert not (tmp_path / "outputs").exists()
