"""The fast paths against the plain ones (CPU), the FLOPs count, and the benchmark command end to end."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from ssad import bench
from ssad.backbones import vit_backbone
from ssad.models import DINOHead, MultiCropNetwork

TINY_VIT = {"name": "vit_tiny_patch16_224", "img_size": 16, "patch_size": 4, "embed_dim": 24, "depth": 2,
            "num_heads": 2, "drop_path_rate": 0.0}


def tiny_network(fused_attn: bool = True) -> MultiCropNetwork:
    torch.manual_seed(0)
    backbone = vit_backbone(fused_attn=fused_attn, **TINY_VIT)
    return MultiCropNetwork(backbone, DINOHead(24, out_dim=32, hidden_dim=32, bottleneck_dim=16)).eval()


def views(batch: int = 3) -> list[torch.Tensor]:
    torch.manual_seed(1)
    return [torch.randn(batch, 3, 16, 16) for _ in range(3)] + [torch.randn(batch, 3, 8, 8) for _ in range(4)]


def test_flops_hand_count() -> None:
    dims = bench.ViTDims(dim=8, depth=1, patch=4, mlp_hidden=32, prefix_tokens=1, head=(8, 16, 4))
    # 8×8 image: P = 4 patches, N = 5 tokens. embed 2·4·(3·16)·8 = 3072; layer 2·5·(4·64 + 2·8·32) = 7680
    # plus attention 4·25·8 = 800; head 2·(8·16 + 16·4) = 384
    assert bench.forward_flops(dims, 8) == 3072 + 7680 + 800 + 384
    # 4×4 image: P = 1, N = 2. embed 2·1·48·8 = 768; layer 2·2·768 = 3072 plus 4·4·8 = 128; head 384
    assert bench.forward_flops(dims, 4) == 768 + 3072 + 128 + 384
    # 2+8 positive, 1+8 negative views: student 3·(3·11936 + 16·4352), teacher 2·11936
    assert bench.train_flops_per_image(dims, 8, 4, (2, 8, 1, 8)) == 3 * (3 * 11936 + 16 * 4352) + 2 * 11936


def test_flops_match_torch_flop_counter() -> None:
    """The analytic forward count equals PyTorch's count of the real network's matmuls and convolutions."""
    network = tiny_network(fused_attn=False)  # explicit q·kᵀ and a·v matmuls, which the counter sees
    dims = bench.vit_dims(network)
    for size in (16, 8):
        with FlopCounterMode(display=False) as counter:
            network([torch.randn(1, 3, size, size)])
        assert counter.get_total_flops() == bench.forward_flops(dims, size)


def test_grouped_views_equal_per_view_calls() -> None:
    network = tiny_network()
    with torch.no_grad():
        grouped = network(views())
        network.group_views = False
        per_view = network(views())
    for a, b in zip(grouped, per_view, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_attention_equals_unfused() -> None:
    fused, unfused = tiny_network(fused_attn=True), tiny_network(fused_attn=False)
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused.backbone(x), unfused.backbone(x), atol=1e-5, rtol=1e-5)


def test_bf16_features_close_to_fp32() -> None:
    network = tiny_network()
    x = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        fp32 = network.backbone(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = network.backbone(x)
            logits = network([x])[0]
    assert not torch.equal(bf16, fp32) and logits.dtype == torch.float32  # the head's last layer stays fp32
    assert F.cosine_similarity(bf16.float(), fp32, dim=-1).min() > 0.99


@pytest.mark.skipif(not any(shutil.which(cxx) for cxx in ("g++", "clang++", "c++")),
                    reason="torch.compile (inductor) needs a C++ compiler on a CPU")
def test_compiled_loss_matches_eager() -> None:
    """``model.compile=true`` compiles both backbones in ``configure_model``; the loss is unchanged.

    Global views only and no gradient: one graph (student and teacher share it) keeps inductor's CPU
    compilation short."""
    cfg = bench.compose_config("tiny", bench.FastPaths(bf16=False), [
        "negatives=none", "++model.backbone.depth=1", "model.backbone.drop_path_rate=0"])
    module, _ = bench.build_module(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    batch = {"pos_global": [torch.randn(2, 3, 32, 32) for _ in range(2)], "pos_local": []}
    center = module.center.clone()
    with torch.no_grad():
        eager = module.training_step(batch, 0)
        module.center.copy_(center)
        module.hparams.compile = True
        module.configure_model()
        compiled = module.training_step(batch, 0)
    assert module.student.backbone._compiled_call_impl is not None
    torch.testing.assert_close(compiled, eager, atol=1e-4, rtol=1e-4)


def test_bench_command_tiny(tmp_path, capsys) -> None:
    threads = torch.get_num_threads()
    try:
        result = bench.main(["--preset", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1",
                             "--json", str(tmp_path / "bench.json")])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for label in ("training images/s", "augmentation ms", "forward+backward ms", "optimiser ms", "EMA ms",
                  "peak memory", "MFU", "FLOPs per image", "evaluation:", "Eq. 6 scoring", "speed-up",
                  "crops/s", "trainer.fit"):
        assert label in printed
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(result))
    for run in (result["ssad"], result["reference"]):
        assert run["images_per_s"] > 0 and run["step_ms"] > 0 and run["peak_memory_mib"] > 0
        assert set(run["phase_ms"]) == set(bench.PHASES) and all(v > 0 for v in run["phase_ms"].values())
    assert result["flops_per_image"] > 0 and result["eval"]["images_per_s"] > 0
    assert result["flops_method"] == "analytic" and "analytic ViT formula" in printed
    assert result["scoring"]["seconds"] > 0 and result["speedup"] > 0
    assert all(v > 0 for v in result["cpu_crops_per_s"].values())
    assert result["fit"]["images_per_s"] > 0 and result["fit"]["of_step_loop"] > 0  # the real trainer.fit ran


@pytest.mark.parametrize(("model", "expected", "absent"), [
    ("vit_small", {"patch_size": 8, "embed_dim": 48, "depth": 2, "fused_attn": True}, ()),
    ("cnn_small", {"width": 8}, ("patch_size", "fused_attn")),
    ("resnet18", {"drop_path_rate": 0.0}, ("patch_size", "fused_attn", "width")),
])
def test_tiny_preset_backbone_overrides(model: str, expected: dict, absent: tuple[str, ...]) -> None:
    """The tiny preset shrinks each backbone with its own keys (ResNet-18: none) and sets ``fused_attn`` only on
    a ViT."""
    cfg = bench.compose_config("tiny", bench.FastPaths(), [f"model={model}"])
    assert {key: cfg.model.backbone[key] for key in expected} == expected
    assert not set(absent) & set(cfg.model.backbone)


def test_flop_counter_agrees_with_vit_formula() -> None:
    """FlopCounterMode (the method for non-ViT backbones) on the tiny ViT against the analytic formula.

    Tolerance 5%: the formula's 3× forward for the student's forward+backward includes the gradient of the
    patch embedding's input, which autograd never computes (the images need no gradient). That is the whole
    difference (checked exactly): 3.6% at the tiny preset (patch 8 on 32²: a large embedding), 0.4% at the
    paper's. Unfused attention, whose matmuls the counter sees on a CPU (it has no formula for the CPU's
    fused kernel)."""
    cfg = bench.compose_config("tiny", bench.FastPaths(bf16=False, fused_attn=False))
    module, _ = bench.build_module(cfg, torch.device("cpu"))
    augment = instantiate(cfg.augment)
    analytic, analytic_eval, method = bench.flops_per_image(module, augment, True, bench.VIT)
    views = (augment.n_global, augment.n_local, 1, augment.n_local)
    counted = bench.counted_train_flops_per_image(module.student, module.teacher, augment.global_size,
                                                  augment.local_size, views)
    assert method == "analytic" and abs(counted / analytic - 1) < 0.05
    dims = bench.vit_dims(module.student)

    def embedding(size: int) -> int:
        return 2 * (size // dims.patch) ** 2 * 3 * dims.patch**2 * dims.dim

    student_embeddings = ((augment.n_global + 1) * embedding(augment.global_size)
                          + 2 * augment.n_local * embedding(augment.local_size))
    assert counted == analytic - student_embeddings
    assert bench.counted_forward_flops(module.teacher.backbone, augment.global_size) == analytic_eval


@pytest.mark.parametrize(("model", "builder", "extra"), [
    ("cnn_small", "small_cnn", []),
    ("resnet18", "resnet18_cifar", ["eval.settings.batch_size=8"]),  # ResNet-18 at 32² is slow on a CPU
])
def test_bench_command_tiny_other_backbones(model: str, builder: str, extra: list[str], capsys) -> None:
    """The tiny preset runs end to end with a CNN backbone; its FLOPs come from the flop counter."""
    threads = torch.get_num_threads()
    try:
        result = bench.main(["--preset", "tiny", "--steps", "1", "--warmup", "0", "--threads", "1", "--no-fit",
                             "--no-reference", f"model={model}", *extra])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert f"· {builder} ·" in printed and "FlopCounterMode" in printed
    assert result["backbone"] == builder and result["flops_method"] == "flop_counter"
    assert result["flops_per_image"] > 0 and result["eval"]["flops_per_image"] > 0
    assert result["ssad"]["images_per_s"] > 0 and result["eval"]["images_per_s"] > 0
    assert not result["fast_paths"]["fused_attn"]  # no attention to fuse
