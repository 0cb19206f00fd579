"""Shared fixtures: tiny configs composed from the real conf/ tree, tiny auxiliary datasets on disk."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from ssad.config.keys import CONFIG_DIR, prepare_hydra


@pytest.fixture(autouse=True, scope="session")
def hydra_ready() -> None:
    """The schema in Hydra's ConfigStore and its refusals worded, as every command does at start-up."""
    prepare_hydra()


# How long a command run by a test may take before the test calls it hung: generous, so that a machine loaded by
# other work (CI beside other jobs) slows the suite down but never fails it.
HANG_S = 3600

# No progress bars, model summary, plots or logger: what a test run prints and writes beyond its results.
QUIET = [
    "++trainer.enable_progress_bar=false",
    "++trainer.enable_model_summary=false",
    "eval.settings.progress=false",
    "eval.plots=false",
    "logger=none",
]
# A model and views small enough that one step takes milliseconds on a CPU.
TINY = [
    "experiment=demo",
    "data=digits",
    "data.size=16",
    "data.batch_size=16",
    "augment.global_size=16",
    "augment.local_size=8",
    "augment.n_local=2",
    "model.head.out_dim=32",
    "model.head.hidden_dim=32",
    "model.head.bottleneck_dim=16",
    "optim.warmup_epochs=1",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=3",
    "data.epoch_size=null",  # an epoch = one pass over the data, as the tests count batches
    "eval.baselines=null",  # the demo scores its baselines first; the tests that check that ask for it
    *QUIET,
]
# The tests' default network: a one-block ViT (a test choosing another `model=` gets that preset instead).
TINY_VIT = ["model=vit_tiny_demo", "model.backbone.depth=1", "model.backbone.embed_dim=24",
            "model.backbone.num_heads=2"]


def write_aux_data(data_dir: Path, n: int = 40) -> None:
    """Tiny files in the real formats of the auxiliary negative sources (ImageNet32 pickles, 300K .npy)."""
    rng = np.random.default_rng(0)
    (data_dir / "imagenet32").mkdir(parents=True, exist_ok=True)
    batch = {"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
             "labels": list(rng.integers(1, 1001, n))}
    with open(data_dir / "imagenet32" / "train_data_batch_1", "wb") as f:
        pickle.dump(batch, f)
    np.save(data_dir / "300K_random_images.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))


def compose_cfg(tmp_path: Path, *overrides: str, run_dir: str = "run"):
    """The training config with TINY settings, data and outputs under ``tmp_path``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        model = [] if any(o.startswith("model=") for o in overrides) else TINY_VIT
        cfg = compose("train", overrides=[*TINY, *model, f"paths.data_dir={tmp_path}/data",
                                          f"paths.output_dir={tmp_path}/{run_dir}", *overrides])
    return cfg


def compose_command(name: str, *overrides: str, hydra: bool = False):
    """The config of command ``name`` (``train``, ``export``, ``evaluate``, ``score``) from the real tree, without
    progress bars where the command has them; with Hydra's own node (``cfg.hydra``: mode, sweeper) if ``hydra``."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        extra = [] if name == "score" else ["eval.settings.progress=false"]
        return compose(name, overrides=[*extra, *overrides], return_hydra_config=hydra)


@pytest.fixture
def aux_data(tmp_path: Path) -> Path:
    write_aux_data(tmp_path / "data")
    return tmp_path
