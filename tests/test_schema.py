"""ssad/config/schema.py on its own: checks, nodes, and the problems of a composed config named by full key."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from ssad.config.fields import POSITIVE_INT, SCALE, SchemaError, check_values
from ssad.config.keys import CONFIG_DIR
from ssad.config.schema import AugmentSchema, OptimSchema
from ssad.config.validation import schema_problems
from tests.conftest import compose_cfg


def test_a_check_is_false_for_a_value_of_the_wrong_type_instead_of_raising():
    assert POSITIVE_INT(3) and not POSITIVE_INT(0) and not POSITIVE_INT(True) and not POSITIVE_INT("3")
    assert SCALE([0.4, 1.0]) and not SCALE([0.5, 0.4]) and not SCALE(0.4)  # len() of a float: TypeError → False


def test_a_node_names_every_bad_field_and_skips_unset_ones():
    with pytest.raises(SchemaError) as err:
        OptimSchema(base_lr=-1.0, min_lr=-2.0, clip_mode="sometimes")  # the other fields stay MISSING
    assert err.value.problems == ["base_lr=-1.0 must be a number > 0", "min_lr=-2.0 must be a number >= 0",
                                  "clip_mode='sometimes' must be 'per_param' or 'global'"]


def test_check_values_prefixes_the_full_key():
    with pytest.raises(SchemaError, match=r"augment\.n_global=1 must be an integer >= 2"):
        check_values(AugmentSchema, {"n_global": 1}, "augment.")


def test_the_composed_presets_are_in_range_and_a_bad_value_is_named_by_its_full_key(tmp_path):
    assert schema_problems(compose_cfg(tmp_path)) == []
    cfg = compose_cfg(tmp_path, "data.batch_size=0", "optim.base_lr=-0.1", "augment.global_scale=[0.9,0.2]")
    assert sorted(schema_problems(cfg)) == sorted([
        "data.batch_size=0 must be a positive integer", "optim.base_lr=-0.1 must be a number > 0",
        "augment.global_scale=[0.9, 0.2] must be a range [low, high] with 0 < low <= high <= 1"])


def test_an_optional_node_is_checked_only_where_the_config_holds_it(tmp_path):
    cfg = compose_cfg(tmp_path, "callbacks.collapse.max_cosine=2")
    assert schema_problems(cfg) == ["callbacks.collapse.max_cosine=2 must be a number in [0, 1]"]
    assert schema_problems(compose_cfg(tmp_path, "callbacks=none")) == []  # no collapse node: nothing to check


def test_composition_refuses_a_value_of_the_wrong_type_naming_the_key():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        with pytest.raises(Exception, match="batch_size"):
            compose("train", overrides=["data.batch_size=many"])
        cfg = compose("score", overrides=["tpr=0.9"])
    assert OmegaConf.select(cfg, "tpr") == 0.9 and schema_problems(cfg, "score") == []
