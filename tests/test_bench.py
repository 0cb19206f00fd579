"""The fast paths against the plain ones (CPU), the FLOPs count, the report's ratios, and the benchmark command
end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch.utils.flop_counter import FlopCounterMode

from ssad.bench import flops, presets, step
from ssad.bench.cli import main as bench_main
from ssad.bench.presets import EVAL_IMAGES, TRAIN_IMAGES
from ssad.bench.table import format_table
from ssad.method.backbones import vit_backbone
from ssad.method.heads import DINOHead, MultiCropNetwork
from tests.conftest import HANG_S

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
    dims = flops.ViTDims(dim=8, depth=1, patch=4, mlp_hidden=32, prefix_tokens=1, head=(8, 16, 4))
    # 8×8 image: P = 4 patches, N = 5 tokens. embed 2·4·(3·16)·8 = 3072; layer 2·5·(4·64 + 2·8·32) = 7680
    # plus attention 4·25·8 = 800; head 2·(8·16 + 16·4) = 384
    assert flops.forward_flops(dims, 8) == 3072 + 7680 + 800 + 384
    # 4×4 image: P = 1, N = 2. embed 2·1·48·8 = 768; layer 2·2·768 = 3072 plus 4·4·8 = 128; head 384
    assert flops.forward_flops(dims, 4) == 768 + 3072 + 128 + 384
    # 2+8 positive, 1+8 negative views: student 3·(3·11936 + 16·4352), teacher 2·11936
    assert flops.train_flops_per_image(dims, 8, 4, (2, 8, 1, 8)) == 3 * (3 * 11936 + 16 * 4352) + 2 * 11936


def test_flops_match_torch_flop_counter() -> None:
    """The analytic forward count equals PyTorch's count of the real network's matmuls and convolutions."""
    network = tiny_network(fused_attn=False)  # explicit q·kᵀ and a·v matmuls, which the counter sees
    dims = flops.vit_dims(network)
    for size in (16, 8):
        with FlopCounterMode(display=False) as counter:
            network([torch.randn(1, 3, size, size)])
        assert counter.get_total_flops() == flops.forward_flops(dims, size)


def test_grouped_views_equal_per_view_calls() -> None:
    network = tiny_network()
    with torch.no_grad():
        grouped = network(views())
        network.group_views = False
        per_view = network(views())
    for a, b in zip(grouped, per_view, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


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
    cfg = presets.compose_config("tiny", presets.FastPaths(bf16=False), [
        "negatives=none", "++model.backbone.depth=1", "model.backbone.drop_path_rate=0"])
    module, _ = step.build_module(cfg, torch.device("cpu"))
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


def cells(printed: str, label: str) -> list[str]:
    """The cells of the report's row ``label`` (label padded to 40 characters, then one 18-wide cell per run)."""
    line = next(line for line in printed.splitlines() if line.startswith(label.ljust(40)))
    return [line[i:i + 18].strip() for i in range(40, len(line), 18)]


def test_bench_command_tiny(tmp_path, capsys) -> None:
    """The tiny preset end to end: every figure present, FLOPs as counted by hand, and each ratio of the report
    the quotient of the timings it is made of (in the JSON and as printed)."""
    threads = torch.get_num_threads()
    try:
        result = bench_main(["--preset", "tiny", "--steps", "2", "--warmup", "1", "--threads", "1",
                             "--json", str(tmp_path / "bench.json")])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert json.loads((tmp_path / "bench.json").read_text()) == json.loads(json.dumps(result))
    # The tiny ViT (patch 8, d=48, 2 layers, MLP 192, head 48→64→64→32→K=64) on 32² globals and 16² locals.
    # 32²: P=16, N=17. embed 2·16·192·48 = 294912; layer 2·17·(4·48² + 2·48·192) + 4·17²·48 = 995520 (×2);
    # head 2·(48·64 + 64·64 + 64·32 + 32·64) = 22528. 16²: P=4, N=5: embed 73728, layer 281280 (×2), head 22528.
    g, loc = 294912 + 2 * 995520 + 22528, 73728 + 2 * 281280 + 22528
    # student fwd+bwd (3×) on 2+1 globals and 8+8 locals (rot_imgn negatives), teacher fwd on 2 globals
    assert result["flops_per_image"] == 3 * (3 * g + 16 * loc) + 2 * g == 57_016_448
    assert result["eval"]["flops_per_image"] == 294912 + 2 * 995520  # the backbone at 32²
    assert result["flops_method"] == "analytic" and "FLOPs per image: 0.05702 GFLOP" in printed

    ssad, ref, fit = result["ssad"], result["reference"], result["fit"]
    assert cells(printed, "") == ["ssad", "reference"]
    for column, run in enumerate((ssad, ref)):
        assert set(run["phase_ms"]) == set(step.PHASES) and all(v > 0 for v in run["phase_ms"].values())
        # a step = batch_size images; its phases cover it
        assert run["images_per_s"] * run["step_ms"] / 1000 == pytest.approx(result["batch_size"])
        assert sum(run["phase_ms"].values()) == pytest.approx(run["step_ms"], rel=0.02)
        assert cells(printed, "training images/s")[column] == f"{run['images_per_s']:.1f}"
        for phase, ms in run["phase_ms"].items():
            share = round(100 * ms / run["step_ms"])
            assert cells(printed, f"  {phase} ms (share)")[column] == f"{ms:.1f} ({share}%)"
        assert run["peak_memory_mib"] > 0 and run["mfu"] is None  # no dense peak known for a CPU
    assert cells(printed, "MFU (of the device's dense peak)") == ["n/a", "n/a"]
    assert result["speedup"] == pytest.approx(ssad["images_per_s"] / ref["images_per_s"])
    assert f"speed-up ssad / reference: {result['speedup']:.2f}×" in printed
    assert fit["of_step_loop"] == pytest.approx(fit["images_per_s"] / ssad["images_per_s"])
    assert f"({100 * fit['of_step_loop']:.0f}% of the step loop's images/s)" in printed
    crops = result["cpu_crops_per_s"]
    assert crops["ratio"] == pytest.approx(crops["ssad"] / crops["pil"]) and f"(ratio {crops['ratio']:.2f})" in printed
    evaluation_s = EVAL_IMAGES / result["eval"]["images_per_s"]
    evaluation_s += EVAL_IMAGES / result["scoring"]["queries"] * result["scoring"]["seconds"]
    epoch_s = TRAIN_IMAGES / fit["images_per_s"]
    assert result["evaluation_over_epoch"] == pytest.approx(evaluation_s / epoch_s)


def test_table_ratios_follow_the_timings() -> None:
    """The report's shares, speed-up, trainer.fit share, crop ratio and ablation ratios from known timings."""
    run = {"images_per_s": 100.0, "step_ms": 80.0, "peak_memory_mib": 1000.0, "mfu": 0.25,
           "phase_ms": {"augmentation": 8.0, "forward+backward": 60.0, "optimiser": 10.0, "EMA": 2.0}}
    ref = {**run, "images_per_s": 40.0, "step_ms": 200.0, "mfu": None,
           "phase_ms": {"augmentation": 50.0, "forward+backward": 100.0, "optimiser": 30.0, "EMA": 20.0}}
    r = {"preset": "tiny", "backbone": "vit_backbone", "device": "cpu", "batch_size": 8, "steps": 2, "warmup": 1,
         "overrides": [], "fast_paths": {"bf16": False, "fused_attn": True}, "flops_per_image": 2.5e9,
         "flops_method": "analytic", "ssad": run, "reference": ref, "speedup": 2.5,
         "fit": {"images_per_s": 80.0, "step_ms": 100.0, "of_step_loop": 0.8},
         "cpu_crops_per_s": {"ssad": 300.0, "pil": 100.0, "ratio": 3.0},
         "eval": {"images_per_s": 1000.0, "batch_size": 64, "mfu": None},
         "scoring": {"queries": 10, "bank": 20, "dim": 4, "seconds": 0.5}, "evaluation_over_epoch": 0.123,
         "ablation": {"bf16=True": 150.0}}
    printed = format_table(r)
    assert cells(printed, "  augmentation ms (share)") == ["8.0 (10%)", "50.0 (25%)"]
    assert cells(printed, "  forward+backward ms (share)") == ["60.0 (75%)", "100.0 (50%)"]
    assert cells(printed, "  EMA ms (share)") == ["2.0 (2%)", "20.0 (10%)"]
    assert cells(printed, "MFU (of the device's dense peak)") == ["25.0%", "n/a"]
    assert "FLOPs per image: 2.5 GFLOP" in printed and "ssad: fused_attn · reference: fp32 eager, unfused" in printed
    assert "speed-up ssad / reference: 2.50×" in printed
    assert "80.0 images/s, 100.0 ms per step (80% of the step loop's images/s)" in printed
    assert "ssad 300 crops/s, PIL 100 crops/s (ratio 3.00)" in printed
    assert "training epoch (trainer.fit): 12.3%" in printed
    assert re.search(r"ablation bf16=True\s+150\.0 images/s \(1\.50× the above\)", printed)


@pytest.mark.parametrize(("model", "expected", "absent"), [
    ("vit_small", {"patch_size": 8, "embed_dim": 48, "depth": 2, "fused_attn": True}, ()),
    ("cnn_small", {"width": 8}, ("patch_size", "fused_attn")),
    ("resnet18", {"drop_path_rate": 0.0}, ("patch_size", "fused_attn", "width")),
])
def test_tiny_preset_backbone_overrides(model: str, expected: dict, absent: tuple[str, ...]) -> None:
    """The tiny preset shrinks each backbone with its own keys (ResNet-18: none) and sets ``fused_attn`` only on
    a ViT."""
    cfg = presets.compose_config("tiny", presets.FastPaths(), [f"model={model}"])
    assert {key: cfg.model.backbone[key] for key in expected} == expected
    assert not set(absent) & set(cfg.model.backbone)


def test_flop_counter_agrees_with_vit_formula() -> None:
    """FlopCounterMode (the method for non-ViT backbones) on the tiny ViT against the analytic formula.

    Tolerance 5%: the formula's 3× forward for the student's forward+backward includes the gradient of the
    patch embedding's input, which autograd never computes (the images need no gradient). That is the whole
    difference (checked exactly): 3.6% at the tiny preset (patch 8 on 32²: a large embedding), 0.4% at the
    paper's. Unfused attention, whose matmuls the counter sees on a CPU (it has no formula for the CPU's
    fused kernel)."""
    cfg = presets.compose_config("tiny", presets.FastPaths(bf16=False, fused_attn=False))
    module, _ = step.build_module(cfg, torch.device("cpu"))
    augment = instantiate(cfg.augment)
    analytic, analytic_eval, method = flops.flops_per_image(module, augment, True, analytic=True)
    views = (augment.n_global, augment.n_local, 1, augment.n_local)
    counted = flops.counted_train_flops_per_image(module.student, module.teacher, augment.global_size,
                                                  augment.local_size, views)
    assert method == "analytic" and abs(counted / analytic - 1) < 0.05
    dims = flops.vit_dims(module.student)

    def embedding(size: int) -> int:
        return 2 * (size // dims.patch) ** 2 * 3 * dims.patch**2 * dims.dim

    student_embeddings = ((augment.n_global + 1) * embedding(augment.global_size)
                          + 2 * augment.n_local * embedding(augment.local_size))
    assert counted == analytic - student_embeddings
    assert flops.counted_forward_flops(module.teacher.backbone, augment.global_size) == analytic_eval


def small_cnn_tiny_flops() -> tuple[int, int]:
    """(training, evaluation) FLOPs per image of the tiny preset's small CNN (width 8: 3→8→16→32→64 channels, 3×3
    convolutions, 2×2 pooling after the first three; 2·C_in·C_out·9·H·W each) and head (64→64→64→32→K=64),
    counted by hand as FlopCounterMode counts: a student view's backward is twice its forward, less the first
    convolution's input gradient (the images need none)."""

    def convolutions(s: int) -> list[int]:
        return [2 * 3 * 8 * 9 * s**2, 2 * 8 * 16 * 9 * (s // 2) ** 2, 2 * 16 * 32 * 9 * (s // 4) ** 2,
                2 * 32 * 64 * 9 * (s // 8) ** 2]

    head = 2 * (64 * 64 + 64 * 64 + 64 * 32 + 32 * 64)

    def student(s: int) -> int:
        return 3 * (sum(convolutions(s)) + head) - convolutions(s)[0]

    teacher = sum(convolutions(32)) + head
    return 3 * student(32) + 16 * student(16) + 2 * teacher, sum(convolutions(32))  # 2+1 globals, 8+8 locals


@pytest.mark.parametrize(("model", "builder", "extra"), [
    ("cnn_small", "small_cnn", []),
    ("resnet18", "resnet18_cifar", ["eval.settings.batch_size=8"]),  # ResNet-18 at 32² is slow on a CPU
])
def test_bench_command_tiny_other_backbones(model: str, builder: str, extra: list[str], capsys) -> None:
    """The tiny preset runs end to end with a CNN backbone; its FLOPs come from the flop counter (the small CNN's
    as counted by hand)."""
    threads = torch.get_num_threads()
    try:
        result = bench_main(["--preset", "tiny", "--steps", "1", "--warmup", "0", "--threads", "1", "--no-fit",
                             "--no-reference", f"model={model}", *extra])
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert f"· {builder} ·" in printed and "FlopCounterMode" in printed
    assert result["backbone"] == builder and result["flops_method"] == "flop_counter"
    if model == "cnn_small":
        assert (result["flops_per_image"], result["eval"]["flops_per_image"]) == small_cnn_tiny_flops()
    assert result["flops_per_image"] > result["eval"]["flops_per_image"] > 0
    assert result["ssad"]["images_per_s"] > 0 and result["eval"]["images_per_s"] > 0
    assert not result["fast_paths"]["fused_attn"]  # no attention to fuse


def test_python_dash_m_ssad_bench_runs_the_command():
    """``python -m ssad.bench`` (the package's __main__) is the command line of ssad.bench.cli."""
    proc = subprocess.run([sys.executable, "-m", "ssad.bench", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).parent.parent, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m ssad.bench") and "--preset {paper,tiny}" in proc.stdout
