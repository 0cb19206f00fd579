"""Backbones (ViT, ResNet-18 with the CIFAR stem, small CNN) and the deterministic teacher."""

import re

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from ssad.data.sources import ArraySet
from ssad.deploy.checkpoints import load_checkpoint
from ssad.deploy.detector import Detector
from ssad.export import export_detector
from ssad.method.backbones import BACKBONES, FeatureShift, build_backbone, builder_name, resnet18_cifar, small_cnn
from ssad.method.module import SSADModule
from ssad.scoring.baselines import calibrate_batchnorm
from ssad.training.run import train
from tests.conftest import compose_cfg, compose_command

SMALL_HEAD = {"out_dim": 16, "hidden_dim": 16, "bottleneck_dim": 8}
# per model preset: overrides that keep a CPU step in milliseconds
MODELS = {
    "vit_tiny_demo": [],
    "cnn_small": ["model.backbone.width=8", "model.backbone.depth=2"],
    "resnet18": [],
}


def test_cnn_features_are_pooled_with_the_width_the_head_takes():
    cnn = small_cnn(width=8, depth=3)
    assert cnn.num_features == 32 and cnn(torch.rand(2, 3, 16, 16)).shape == (2, 32)
    resnet = resnet18_cifar()
    assert resnet.conv1.stride == (1, 1) and resnet.conv1.kernel_size == (3, 3)
    assert isinstance(resnet.maxpool, torch.nn.Identity)
    # CIFAR stem: a 32×32 image keeps 32×32 through the stem, 4×4 after the last stage
    assert resnet.forward_features(torch.rand(1, 3, 32, 32)).shape == (1, 512, 4, 4)
    assert resnet(torch.rand(2, 3, 32, 32)).shape == (2, resnet.num_features) == (2, 512)


def test_registry_rebuilds_from_plain_arguments_only():
    assert builder_name("ssad.method.backbones.small_cnn") == "small_cnn"
    assert set(BACKBONES) == {"vit_backbone", "resnet18_cifar", "small_cnn"}
    assert build_backbone("small_cnn", width=4, depth=2).num_features == 8
    with pytest.raises(ValueError, match="not one of ssad's backbones"):
        builder_name("os.system")
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("exec")


def _unit_batchnorm(network: torch.nn.Module) -> torch.nn.Module:
    """timm zero-initialises each residual branch's last BatchNorm, which hides drop-path at initialisation."""
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    return network


@pytest.mark.parametrize("backbone", [
    lambda: BACKBONES["vit_backbone"]("vit_tiny_patch16_224", img_size=16, patch_size=8, embed_dim=16, depth=2,
                                      num_heads=2, drop_path_rate=0.5, drop_rate=0.5),
    lambda: _unit_batchnorm(resnet18_cifar(drop_path_rate=0.5)),
], ids=["vit", "resnet18"])
def test_teacher_is_deterministic_after_train_while_the_student_is_not(backbone):
    torch.manual_seed(0)
    module = SSADModule(backbone(), head=SMALL_HEAD)
    module.train()  # what Lightning calls before every epoch
    assert module.teacher.training
    views = [torch.rand(4, 3, 16, 16) for _ in range(2)]
    with torch.no_grad():
        first, second = module.teacher(views), module.teacher(views)
        student_a, student_b = module.student(views), module.student(views)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not all(torch.allclose(a, b) for a, b in zip(student_a, student_b))


def test_teacher_batchnorm_statistics_track_its_inputs(tmp_path):
    cfg = compose_cfg(tmp_path, "model=cnn_small", *MODELS["cnn_small"], "trainer.max_epochs=1")
    initial = instantiate(cfg.model, _convert_="all").teacher.backbone.state_dict()
    train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    trained = {k[len("teacher.backbone."):]: v for k, v in ckpt["state_dict"].items()
               if k.startswith("teacher.backbone.")}
    means = [k for k in initial if k.endswith("running_mean")]
    assert means and all(not torch.equal(trained[k], initial[k]) for k in means)
    assert all(int(trained[k.replace("running_mean", "num_batches_tracked")]) > 0 for k in means)


@pytest.mark.parametrize("model", list(MODELS))
def test_every_backbone_trains_exports_and_scores(tmp_path, model):
    train(compose_cfg(tmp_path, f"model={model}", *MODELS[model], "trainer.max_epochs=1",
                      "++trainer.limit_train_batches=2"))
    exported = export_detector(compose_command("export", f"ckpt={tmp_path}/run/checkpoints/last.ckpt",
                                               f"out={tmp_path}/detector.pt"))
    detector = Detector.load(tmp_path / "detector.pt", device="cpu")
    assert detector.backbone_args["builder"] == builder_name(compose_cfg(tmp_path, f"model={model}")
                                                             .model.backbone._target_)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (5, 3, 16, 16), dtype=np.uint8))
    scores, flags = detector.predict(images)
    assert scores.shape == (5,) and torch.isfinite(scores).all() and flags.dtype == torch.bool
    assert torch.allclose(scores, exported.predict(images)[0])


def test_small_cnn_layer_norm_centres_f_and_survives_export(tmp_path):
    f = small_cnn(width=8, depth=2, layer_norm=True)(torch.rand(3, 3, 16, 16))
    assert torch.allclose(f.mean(dim=1), torch.zeros(3), atol=1e-5)  # each f centred over its channels
    assert not torch.allclose(small_cnn(width=8, depth=2)(torch.rand(3, 3, 16, 16)).mean(dim=1), torch.zeros(3))
    train(compose_cfg(tmp_path, "model=cnn_small", *MODELS["cnn_small"], "model.backbone.layer_norm=true",
                      "model.backbone.feature_shift=0",
                      "trainer.max_epochs=1", "++trainer.limit_train_batches=2"))
    export_detector(compose_command("export", f"ckpt={tmp_path}/run/checkpoints/last.ckpt",
                                    f"out={tmp_path}/detector.pt"))
    detector = Detector.load(tmp_path / "detector.pt", device="cpu")
    assert detector.backbone_args["layer_norm"] is True
    assert isinstance(detector.backbone.norm, torch.nn.LayerNorm)


def test_feature_shift_subtracts_a_fraction_of_the_batch_mean_in_training_and_of_the_running_mean_after():
    shift = FeatureShift(4, fraction=0.5)
    x = torch.rand(6, 4) + 1.0
    assert torch.allclose(shift(x), x - 0.5 * x.mean(dim=0))
    assert torch.allclose(shift.running_mean, 0.1 * x.mean(dim=0))  # momentum 0.1 from 0, like BatchNorm's
    shift.eval()
    assert torch.allclose(shift(x), x - 0.5 * shift.running_mean)
    # gradients flow through the batch mean: a constant shift of every image's f is removed by half
    x.requires_grad_(True)
    shift.train()(x).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.5))


def test_feature_shift_is_measured_for_the_untrained_network_and_survives_export(tmp_path):
    cnn = small_cnn(width=4, depth=2, feature_shift=1.0).eval()
    images = np.random.default_rng(0).integers(0, 256, (12, 3, 8, 8), dtype=np.uint8)
    assert calibrate_batchnorm(cnn, ArraySet(images, None, "train"), size=8, batch_size=4)
    from ssad.scoring.features import preprocess
    with torch.no_grad():
        x = preprocess(torch.from_numpy(images), 8)
        f, pooled = cnn(x), cnn.features(x).mean(dim=(-2, -1))
    # α = 1: the training features centred (up to BatchNorm's batch vs running statistics in the layers below)
    assert f.mean(dim=0).norm() < 0.1 * pooled.mean(dim=0).norm()
    assert cnn.norm.momentum == 0.1 and not cnn.training
    train(compose_cfg(tmp_path, "model=cnn_small", *MODELS["cnn_small"], "model.backbone.feature_shift=0.5",
                      "trainer.max_epochs=1", "++trainer.limit_train_batches=2"))
    export_detector(compose_command("export", f"ckpt={tmp_path}/run/checkpoints/last.ckpt",
                                    f"out={tmp_path}/detector.pt"))
    detector = Detector.load(tmp_path / "detector.pt", device="cpu")
    assert detector.backbone_args["feature_shift"] == 0.5 and detector.backbone.norm.fraction == 0.5
    assert detector.backbone.norm.running_mean.abs().sum() > 0  # the teacher's tracked mean, not the initial 0


@pytest.mark.parametrize("kwargs, named", [({"feature_shift": 1.5}, "[0, 1]"),
                                           ({"feature_shift": 0.5, "layer_norm": True}, "choose one")])
def test_small_cnn_refuses_bad_centring(kwargs, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        small_cnn(width=4, depth=2, **kwargs)


def test_small_cnn_scores_by_f_beside_a_grid_of_an_earlier_block():
    torch.manual_seed(0)
    cnn = small_cnn(width=4, depth=3, grid_block=2, grid_cells=2, f_weight=1.5).eval()
    x = torch.rand(5, 3, 16, 16)
    with torch.no_grad():
        f, scored = cnn.describe(x)
        block2 = cnn.features[:7](x)  # conv-BN-ReLU-pool, conv-BN-ReLU: block 2's output, 8×8
    assert torch.equal(f, cnn(x)) and scored.shape == (5, 16 + 8 * 2 * 2)
    assert torch.allclose(scored[:, :16].norm(dim=1), torch.full((5,), 1.5))  # f, normalised, weighs 1.5
    grid = torch.nn.functional.adaptive_avg_pool2d(block2, 2).flatten(1)
    assert torch.allclose(scored[:, 16:], torch.nn.functional.normalize(grid, dim=1), atol=1e-6)
    plain = small_cnn(width=4, depth=3).eval()
    assert torch.equal(plain.describe(x)[1], plain(x))  # without grid_block an image is scored by f
    with pytest.raises(ValueError, match="grid_block=4"):
        small_cnn(width=4, depth=3, grid_block=4)


def test_frozen_blocks_keep_their_initial_weights_through_training(tmp_path):
    cnn = small_cnn(width=4, depth=3, frozen_blocks=2)
    trainable = [name for name, p in cnn.named_parameters() if p.requires_grad]
    assert trainable == ["features.8.weight", "features.9.weight", "features.9.bias"]  # block 3's conv and BN
    with pytest.raises(ValueError, match="frozen_blocks=3"):
        small_cnn(width=4, depth=3, frozen_blocks=3)
    train(compose_cfg(tmp_path, "model=cnn_small", *MODELS["cnn_small"], "model.backbone.frozen_blocks=1",
                      "trainer.max_epochs=1", "++trainer.limit_train_batches=2"))
    module, _ = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")
    student, teacher = module.student.backbone.features, module.teacher.backbone.features
    # the teacher follows the student by EMA: equal (up to rounding) only where neither left the initialisation
    def gap(i: int) -> float:
        return float((student[i].weight - teacher[i].weight).detach().abs().max())
    assert gap(0) < 1e-7 and gap(1) < 1e-7
    assert gap(4) > 1e-5 and gap(5) > 1e-5  # block 2 trained
