"""Loading a file never runs code from it (issue 12): detector files, checkpoints (evaluate, export, resume) and the
CIFAR / downsampled-ImageNet pickles refuse a payload that would create a marker file, and genuine files still
load with the very same scores. A checkpoint's stored data config is rebuilt from plain values by ssad's own classes,
so a ``_target_`` that would start a process (issue 32) is refused by the commands, naming the file and the key."""

from __future__ import annotations

import copy
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ssad.cli.errors import InputError
from ssad.data.readers import arrays, benchmarks
from ssad.data.sources import load_source
from ssad.deploy.checkpoints import load_checkpoint, rebuild_datamodule
from ssad.deploy.detector import Detector
from ssad.deploy.safe_load import UnsafeFileError, load_data_pickle
from ssad.export import export_detector
from ssad.score import score_images
from ssad.scoring.checkpoint import evaluate_checkpoint
from ssad.training.run import train
from tests.conftest import HANG_S, compose_cfg, compose_command


class Payload:
    """Unpickled by a plain unpickler, it creates ``marker`` (``open(marker, "w")``): code run by loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def _payload_works(tmp_path: Path) -> None:
    """The payload does run under a plain ``pickle.loads`` (so a missing marker below means it was refused)."""
    probe = tmp_path / "probe_marker"
    pickle.loads(pickle.dumps(Payload(probe))).close()
    assert probe.exists()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny trained run, its checkpoint and an exported detector (``detector.pt``)."""
    tmp = tmp_path_factory.mktemp("safe_load")
    train(compose_cfg(tmp, "negatives=rot_indist", "trainer.max_epochs=1"))
    export_detector(compose_command("export", f"ckpt={tmp}/run/checkpoints/last.ckpt", f"out={tmp}/detector.pt"))
    return tmp


def _checkpoint(run: Path) -> dict:
    return torch.load(run / "run/checkpoints/last.ckpt", weights_only=True)


def _digits_test(size: int) -> torch.Tensor:
    test = load_source({"format": "digits", "split": "test", "classes": [0, 1, 2, 3, 4]}, size)
    return torch.from_numpy(np.ascontiguousarray(test.images))


# ------------------------------------------------------------------------------------------ dataset pickles
PICKLE_READERS = {
    "cifar10": ("cifar-10-batches-py/test_batch", lambda root: benchmarks.cifar10(root, 8, split="test")),
    "cifar100": ("cifar-100-python/test", lambda root: benchmarks.cifar100(root, 8, split="test")),
    "imagenet_pickle": ("train_data_batch_1", lambda root: arrays.imagenet_pickle(root, 8)),
}


@pytest.mark.parametrize("reader", PICKLE_READERS)
def test_a_pickle_batch_with_a_payload_is_refused_naming_the_file(tmp_path, reader):
    _payload_works(tmp_path)
    relative, read = PICKLE_READERS[reader]
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = tmp_path / "marker"
    images = np.zeros((2, 3 * 8 * 8), dtype=np.uint8)
    batch = {"data": images, "labels": [1, 2], "fine_labels": [1, 2], "extra": Payload(marker)}
    path.write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(UnsafeFileError, match=re.escape(f"{path}: refused to unpickle: it names ") + r"\S*open"):
        read(str(tmp_path))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_genuine_batches_unpickle_as_with_plain_pickle(tmp_path, protocol):
    rng = np.random.default_rng(protocol)
    batch = {b"data": rng.integers(0, 256, (3, 12), dtype=np.uint8), b"labels": list(rng.integers(1, 9, 3)),
             "mean": rng.random(12), "batch_label": "testing batch 1 of 1", b"empty": b"", "raw": b"\x00\xff"}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    loaded = load_data_pickle(path)
    assert loaded.keys() == batch.keys()
    for key, value in batch.items():
        assert np.array_equal(loaded[key], value) and type(loaded[key]) is type(value)


def test_a_corrupt_pickle_batch_is_named(tmp_path):
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": np.zeros((2, 3), np.uint8)})[:-7])
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable pickle batch")):
        load_data_pickle(path)


# ------------------------------------------------------------------------------------------ detector files
def test_a_detector_file_with_a_payload_is_refused(run, tmp_path):
    _payload_works(tmp_path)
    marker = tmp_path / "marker"
    state = torch.load(run / "detector.pt", weights_only=True)
    state["meta"]["note"] = Payload(marker)
    evil = tmp_path / "evil.pt"
    torch.save(state, evil)
    refused = re.escape(f"{evil}: refused") + ".*open.*nothing of it was run.*ssad.export"
    with pytest.raises(UnsafeFileError, match=refused):
        Detector.load(evil, device="cpu")
    np.save(tmp_path / "x.npy", np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(UnsafeFileError, match="trust_file=true, which runs code"):
        score_images(compose_command("score", f"detector={evil}", f"input={tmp_path}/x.npy", f"out={tmp_path}/s.csv"))
    assert not marker.exists() and not (tmp_path / "s.csv").exists()


def test_the_score_command_exits_non_zero_on_a_refused_file(run, tmp_path):
    marker = tmp_path / "marker"
    state = torch.load(run / "detector.pt", weights_only=True)
    state["bank"] = Payload(marker)
    torch.save(state, tmp_path / "evil.pt")
    np.save(tmp_path / "x.npy", np.zeros((2, 16, 16, 3), np.uint8))
    done = subprocess.run([sys.executable, "-m", "ssad.score", f"detector={tmp_path}/evil.pt",
                           f"input={tmp_path}/x.npy", f"out={tmp_path}/s.csv", "device=cpu"],
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode != 0 and "refused to load this detector file" in done.stderr
    assert not marker.exists() and not (tmp_path / "s.csv").exists()


def test_a_detector_backbone_comes_only_from_the_registry(run, tmp_path):
    state = torch.load(run / "detector.pt", weights_only=True)
    state["backbone_args"]["builder"] = "os.system"
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other.pt: its backbone cannot be rebuilt \(unknown backbone 'os.system'"):
        Detector.load(tmp_path / "other.pt", device="cpu")


def test_a_genuine_detector_scores_exactly_as_at_export(run):
    detector = Detector.load(run / "detector.pt", device="cpu")
    # export calibrated on the digits test set with the in-memory detector: the loaded one gives the same bits
    assert torch.equal(detector.score(_digits_test(detector.data_size)), detector.calibration)
    trusted = Detector.load(run / "detector.pt", device="cpu", trust_file=True)
    assert torch.equal(trusted.score(_digits_test(detector.data_size)), detector.calibration)


# ------------------------------------------------------------------------------------------ checkpoints
@pytest.fixture
def evil_checkpoint(run, tmp_path) -> tuple[Path, Path]:
    """A checkpoint whose pickle would create ``marker`` when loaded."""
    _payload_works(tmp_path)
    marker = tmp_path / "marker"
    checkpoint = _checkpoint(run)
    checkpoint["loops"]["payload"] = Payload(marker)
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    return tmp_path / "evil.ckpt", marker


def test_a_checkpoint_with_a_payload_is_refused_by_evaluate_export_and_resume(evil_checkpoint, tmp_path):
    evil, marker = evil_checkpoint
    refused = re.escape(f"{evil}: refused to load this checkpoint: it names ") + r"\S*open.*nothing of it was run"
    with pytest.raises(UnsafeFileError, match=refused):
        evaluate_checkpoint(compose_command("evaluate", f"ckpt={evil}", f"out={tmp_path}/results.json"))
    with pytest.raises(UnsafeFileError, match=refused):
        export_detector(compose_command("export", f"ckpt={evil}", f"out={tmp_path}/detector.pt"))
    with pytest.raises(UnsafeFileError, match=refused):
        train(compose_cfg(tmp_path, f"ckpt_path={evil}", run_dir="resumed"))
    assert not marker.exists()
    assert not (tmp_path / "results.json").exists() and not (tmp_path / "detector.pt").exists()
    assert not (tmp_path / "resumed" / "checkpoints").exists()


@pytest.mark.parametrize("where", ["model", "model.backbone", "data", "data.augment"])
def test_a_checkpoint_naming_os_system_as_a_target_is_refused(run, tmp_path, where):
    marker = tmp_path / "marker"
    checkpoint = _checkpoint(run)
    node = checkpoint["ssad_config"]
    for key in where.split("."):
        node = node[key]
    node.clear()
    node.update({"_target_": "os.system", "_args_": [f"touch {marker}"]})
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    match = rf"evil.ckpt: refused: its stored config sets {where}._target_='os.system'"
    with pytest.raises(UnsafeFileError, match=match):
        evaluate_checkpoint(compose_command("evaluate", f"ckpt={tmp_path}/evil.ckpt", f"out={tmp_path}/r.json"))
    with pytest.raises(UnsafeFileError, match=match):
        export_detector(compose_command("export", f"ckpt={tmp_path}/evil.ckpt", f"out={tmp_path}/d.pt"))
    assert not marker.exists()


SUBPROCESS_HANDLER = "torch.distributed.elastic.multiprocessing.subprocess_handler.subprocess_handler.SubprocessHandler"


def _starts_touch(marker: Path) -> dict:
    """A config node whose instantiation by Hydra starts ``/usr/bin/touch marker`` (a public class of torch)."""
    return {"_target_": SUBPROCESS_HANDLER, "entrypoint": "/usr/bin/touch", "args": [str(marker)], "env": {},
            "stdout": None, "stderr": None, "local_rank_id": 0, "numa_options": None}


def test_the_subprocess_payload_runs_when_instantiated(tmp_path):
    """The payload below is real: Hydra's instantiate of the node starts the process (so a missing marker in the
    next tests means that nothing was instantiated)."""
    from hydra.utils import instantiate

    instantiate(_starts_touch(tmp_path / "probe")).proc.wait(timeout=HANG_S)
    assert (tmp_path / "probe").exists()


@pytest.mark.parametrize("command", ["ssad.export", "ssad.evaluate"])
def test_a_checkpoint_whose_data_config_starts_a_process_is_refused_by_the_command(run, tmp_path, command):
    marker = tmp_path / "marker"
    checkpoint = _checkpoint(run)
    checkpoint["ssad_config"]["data"]["negatives"] = _starts_touch(marker)
    torch.save(checkpoint, tmp_path / "evil.ckpt")
    done = subprocess.run([sys.executable, "-m", command, f"ckpt={tmp_path}/evil.ckpt", f"out={tmp_path}/out"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=HANG_S)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "evil.ckpt: refused" in errors[0]
    assert f"data.negatives._target_='{SUBPROCESS_HANDLER}'" in errors[0] and "trust_file=true" in errors[0]
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("where", "node", "key"), [
    # a class of ssad itself is refused where ssad does not build one
    ("ood", {"x": {"_target_": "ssad.data.datamodule.SSADDataModule"}}, "data.ood.x._target_"),
    ("sources", {"photos": {"_target_": "torch.hub.load", "repo_or_dir": "x"}}, "data.sources.photos._target_"),
    ("negatives", {"parts": [{"_target_": "subprocess.Popen"}]}, "data.negatives.parts[0]._target_"),
    ("augment", {"_target_": "ssad.views.augment.MultiCropAugment", "jitter": {"_target_": "os.getcwd"}},
     "data.augment.jitter._target_"),
    ("augment", {"_target_": "ssad.views.augment.MultiCropAugment", "_partial_": True}, "data.augment._partial_"),
    ("negatives", {"parts": [], "_args_": ["x"]}, "data.negatives._args_"),
])
def test_a_stored_data_config_names_only_ssads_data_module_and_augmentation(run, where, node, key):
    data = copy.deepcopy(_checkpoint(run)["ssad_config"]["data"])
    data[where] = node
    with pytest.raises(UnsafeFileError, match=rf"^f\.ckpt: refused: its stored config (sets|has the Hydra key) "
                                              rf"{re.escape(key)}.*nothing was built from it.*trust_file=true"):
        rebuild_datamodule(data, "f.ckpt")


def test_a_stored_data_argument_the_data_module_does_not_take_is_named(run):
    data = copy.deepcopy(_checkpoint(run)["ssad_config"]["data"])
    data["batch_sise"] = 8
    with pytest.raises(InputError, match=r"f\.ckpt: .*data\.batch_sise is not an argument of SSADDataModule"):
        rebuild_datamodule(data, "f.ckpt")


def test_a_genuine_data_config_rebuilds_the_same_data_module_as_hydra(run):
    from hydra.utils import instantiate

    data = _checkpoint(run)["ssad_config"]["data"]
    mine, theirs = rebuild_datamodule(data, "f.ckpt"), instantiate(data)
    assert type(mine.augment) is type(theirs.augment) and vars(mine.augment).keys() == vars(theirs.augment).keys()
    assert all(repr(getattr(mine.augment, k)) == repr(getattr(theirs.augment, k)) for k in vars(mine.augment)
               if not k.startswith("_"))
    assert (mine.train_spec, mine.ood_specs, mine.parts, mine.size) == (theirs.train_spec, theirs.ood_specs,
                                                                       theirs.parts, theirs.size)
    assert np.array_equal(mine.eval_sets()["train"].images, theirs.eval_sets()["train"].images)
    assert isinstance(rebuild_datamodule(data, "f.ckpt", trust_file=True), type(mine))


def test_a_genuine_checkpoint_rebuilds_the_same_model_as_hydra(run):
    path = run / "run/checkpoints/last.ckpt"
    model, run_cfg = load_checkpoint(path)
    trusted, _ = load_checkpoint(path, trust_file=True)  # instantiated by Hydra from the stored config
    assert type(model.teacher.backbone) is type(trusted.teacher.backbone)
    mine, theirs = model.state_dict(), trusted.state_dict()
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert dict(model.hparams) == dict(trusted.hparams) and run_cfg.data.name == "digits"


def test_a_checkpoint_holding_numpy_arrays_is_refused_and_nothing_of_it_runs(run, tmp_path):
    checkpoint = _checkpoint(run)
    checkpoint["rng_states"]["numpy"] = np.random.get_state()  # a NumPy array: not a tensor or a plain value
    torch.save(checkpoint, tmp_path / "old.ckpt")
    refused = r"old\.ckpt: refused to load this checkpoint: it names numpy\..*trust_file"
    with pytest.raises(UnsafeFileError, match=refused):
        load_checkpoint(tmp_path / "old.ckpt")


def test_resume_still_reads_a_genuine_checkpoint(run, tmp_path):
    checkpoint = copy.deepcopy(_checkpoint(run))
    torch.save(checkpoint, tmp_path / "last.ckpt")
    summary = train(compose_cfg(tmp_path, f"ckpt_path={tmp_path}/last.ckpt", "trainer.max_epochs=2",
                                "eval.every_n_epochs=5"))
    assert summary["epochs"] == 2
