"""Pretrained initialisation of the timm backbones (``model.backbone.pretrained``) from local files in timm's format;
no test downloads (``pretrained=true`` and hub names need the network)."""

from __future__ import annotations

import logging

import pytest
import timm
import torch
from hydra.utils import instantiate
from safetensors.torch import save_file

from ssad.cli.errors import ConfigError, InputError, MissingFileError
from ssad.method.backbones import build_backbone, resnet18_cifar, small_cnn, vit_backbone
from ssad.method.pretrained import pretrained_source
from tests.conftest import compose_cfg

# A tiny ViT in timm's terms: its state dict is what timm's model of these arguments saves.
TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}


def timm_vit(img_size: int, patch_size: int = 8, embed_dim: int = 32, seed: int = 0) -> torch.nn.Module:
    """A timm ViT with a 10-class head and random weights, as a user's own pretraining would save it."""
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=img_size,
                             patch_size=patch_size, embed_dim=embed_dim, depth=2, num_heads=2)


def ssad_vit(pretrained, img_size: int = 32, **kwargs) -> torch.nn.Module:
    torch.manual_seed(1)  # other random weights than the file's
    return vit_backbone("vit_tiny_patch16_224", img_size=img_size, patch_size=8, drop_path_rate=0.0,
                        pretrained=pretrained, **{**TINY, **kwargs})


def test_a_state_dict_file_initialises_the_vit_but_its_head(tmp_path, caplog):
    source = timm_vit(img_size=32).state_dict()
    path = tmp_path / "vit.pth"
    torch.save(source, path)
    with caplog.at_level(logging.INFO, logger="ssad.method.pretrained"):
        model = ssad_vit(str(path))
    loaded = model.state_dict()
    assert set(loaded) == set(source) - {"head.weight", "head.bias"}
    for key, value in loaded.items():
        assert torch.equal(value, source[key]), key
    line = [r.getMessage() for r in caplog.records]
    assert len(line) == 1 and "head.bias, head.weight" in line[0] and str(path) in line[0]


def test_a_safetensors_file_works_too(tmp_path):
    source = timm_vit(img_size=32).state_dict()
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.items()}, str(path))
    loaded = ssad_vit(path).state_dict()
    assert all(torch.equal(loaded[k], source[k]) for k in loaded)


def test_position_embeddings_saved_at_another_image_size_are_resampled(tmp_path, caplog):
    source = timm_vit(img_size=64).state_dict()  # an 8×8 grid of patches; the model's is 4×4
    path = tmp_path / "vit64.pth"
    torch.save(source, path)
    with caplog.at_level(logging.INFO, logger="ssad.method.pretrained"):
        model = ssad_vit(str(path), img_size=32)
    loaded = model.state_dict()
    assert source["pos_embed"].shape == (1, 1 + 64, 32) and loaded["pos_embed"].shape == (1, 1 + 16, 32)
    # the class token's embedding is kept as it is; the grid's is resampled (timm's resample_abs_pos_embed)
    assert torch.equal(loaded["pos_embed"][:, 0], source["pos_embed"][:, 0])
    grid = source["pos_embed"][:, 1:].reshape(1, 8, 8, 32).permute(0, 3, 1, 2)
    expected = torch.nn.functional.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True)
    assert torch.allclose(loaded["pos_embed"][:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 16, 32), atol=1e-5)
    for key in set(loaded) - {"pos_embed"}:
        assert torch.equal(loaded[key], source[key]), key
    assert "resized: pos_embed" in caplog.records[-1].getMessage()


def test_the_teacher_starts_from_the_same_weights_and_a_detector_rebuilds_without_the_file(tmp_path):
    source = timm_vit(img_size=16, patch_size=4, embed_dim=24).state_dict()
    path = tmp_path / "vit.pt"
    torch.save(source, path)
    # the tests' one-block ViT has two blocks here, as the file
    cfg = compose_cfg(tmp_path, "model=vit_tiny_demo", "model.backbone.depth=2", "model.backbone.embed_dim=24",
                      "model.backbone.num_heads=2", f"model.backbone.pretrained={path}")
    model = instantiate(cfg.model, _convert_="all")
    for network in (model.student.backbone, model.teacher.backbone):
        assert all(torch.equal(v, source[k]) for k, v in network.state_dict().items())
    args = {k: v for k, v in cfg.model.backbone.items() if k != "_target_"}
    path.unlink()  # a detector or checkpoint holds its weights: rebuilding reads no pretrained file
    rebuilt = build_backbone("vit_backbone", **args)
    assert rebuilt.state_dict().keys() == model.teacher.backbone.state_dict().keys()


def test_imagenet_resnet18_weights_fill_the_cifar_resnet_but_its_stem(tmp_path, caplog):
    torch.manual_seed(0)
    source = timm.create_model("resnet18", pretrained=False).state_dict()  # the ImageNet stem and a 1000-way fc
    path = tmp_path / "resnet18.pth"
    torch.save(source, path)
    torch.manual_seed(1)
    with caplog.at_level(logging.INFO, logger="ssad.method.pretrained"):
        model = resnet18_cifar(pretrained=str(path))
    loaded = model.state_dict()
    assert loaded["conv1.weight"].shape == (64, 3, 3, 3)  # the CIFAR stem, left as initialised
    for key in set(loaded) - {"conv1.weight"}:
        assert torch.equal(loaded[key], source[key]), key
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING and "left as initialised: conv1.weight" in record.getMessage()


@pytest.mark.parametrize("other", ["wider_vit", "cnn"])
def test_weights_of_another_architecture_are_refused_naming_the_file_and_the_model(tmp_path, other):
    state = (timm_vit(img_size=32, embed_dim=48).state_dict() if other == "wider_vit"
             else small_cnn(width=8, depth=2).state_dict())
    path = tmp_path / f"{other}.pth"
    torch.save(state, path)
    with pytest.raises(InputError, match=rf"{path}: its weights do not fit vit_backbone\(vit_tiny_patch16_224, "
                       r"patch_size=8, embed_dim=32.*\): they fill 0 of") as caught:
        ssad_vit(str(path))
    expected = ("of other shapes (e.g. blocks.0.attn.proj.bias: (48,) in the weights, (32,) in the model)"
                if other == "wider_vit" else "tensors the model lacks (e.g. features.0.weight")
    assert expected in str(caught.value)


def test_unreadable_or_pickled_files_are_refused(tmp_path):
    with pytest.raises(MissingFileError, match="no such file"):
        ssad_vit(str(tmp_path / "absent.pth"))
    pickled = tmp_path / "module.pth"
    torch.save({"net": torch.nn.Linear(2, 2)}, pickled)  # a whole module: loading it would unpickle code
    with pytest.raises(InputError, match=r"module\.pth: holds more than tensors"):
        ssad_vit(str(pickled))
    garbage = tmp_path / "weights.safetensors"
    garbage.write_bytes(b"not safetensors")
    with pytest.raises(InputError, match="not a readable weights file"):
        ssad_vit(str(garbage))


def test_a_model_built_for_shapes_only_reads_nothing(tmp_path):
    with torch.device("meta"):  # as the run's estimate builds it: no file is read (this one does not exist)
        model = ssad_vit(str(tmp_path / "absent.pth"))
    assert all(p.is_meta for p in model.parameters())


def test_an_unknown_hub_name_is_refused_before_any_download():
    with pytest.raises(ConfigError, match="timm could not provide the weights 'no_such_model'.*give that path"):
        ssad_vit("timm:no_such_model")


def test_the_small_cnn_has_no_pretrained_weights(tmp_path):
    with pytest.raises(ConfigError, match="small CNN .* has no pretrained weights"):
        small_cnn(pretrained=True)
    cfg = compose_cfg(tmp_path, "model=cnn_small", f"model.backbone.pretrained={tmp_path}/w.pth")
    with pytest.raises(Exception) as caught:  # Hydra wraps what the builder raised; user_errors unwraps it
        instantiate(cfg.model.backbone)
    assert isinstance(caught.value.__cause__ or caught.value, ConfigError)


def test_sources_are_read_from_the_value():
    assert pretrained_source(None, "resnet18") is None and pretrained_source(False, "resnet18") is None
    assert pretrained_source(True, "resnet18") == ("hub", "resnet18")
    assert pretrained_source("timm:vit_small_patch16_224.augreg_in21k", "x") == (
        "hub", "vit_small_patch16_224.augreg_in21k")
    assert pretrained_source("hf-hub:org/repo", "x") == ("hub", "hf-hub:org/repo")
    assert pretrained_source("weights.safetensors", "x") == ("file", "weights.safetensors")
    with pytest.raises(ConfigError, match="timm:vit_small_patch16_224"):
        pretrained_source("vit_small_patch16_224", "x")


def test_presets_train_from_scratch_by_default(tmp_path):
    for preset in ("vit_small", "resnet18", "cnn_small"):
        assert compose_cfg(tmp_path, f"model={preset}").model.backbone.pretrained is None
