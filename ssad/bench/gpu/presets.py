"""The sizes and time budgets of ``python -m ssad.bench.gpu.check`` (issue 38): ``gpu`` (the paper's setting on one
H100, within 8 minutes) and ``tiny`` (every section in seconds on a CPU, for the test suite)."""

from __future__ import annotations

from dataclasses import dataclass, field

# the sections in the order they run; a name with a ``resnet18.`` prefix repeats the section with model=resnet18
SECTIONS = ("bench", "memory", "bf16_vs_fp32", "fit", "eval",
            "resnet18.bench", "resnet18.memory", "resnet18.fit", "resnet18.eval")
RESNET18 = "resnet18."  # the prefix of the sections that repeat with model=resnet18
LEVERS = ("bf16", "fused_adamw", "fused_attn", "group_views", "compile")  # ssad.bench.presets.FastPaths


@dataclass(frozen=True)
class CheckPreset:
    """What each section of the check measures and how long it may take.

    ``bench`` is the preset of ``conf/bench.yaml`` whose training config every section starts from, ``overrides``
    the Hydra overrides on top of it (the tiny preset's smaller views); ``steps``/``warmup`` the timed and untimed
    steps of each step-loop run; ``levers`` the fast paths the ablation flips (one at a time; the others are
    skipped with ``lever_skip`` as the reason); ``resnet18_overrides`` and ``resnet18_levers`` the same for the
    ResNet-18 sections (after ``model=resnet18``); ``memory_batches`` the batch sizes whose peak memory is measured
    (largest last); ``precision_steps`` the steps of the bf16 and fp32 runs; ``fit_steps``/``fit_warmup`` the
    batches of ``trainer.fit``; ``epoch_images`` the training images of an epoch (CIFAR10's 50k), ``eval_images``
    the images a whole evaluation extracts and scores (the 50k training and 10k test images and eight OOD sets of
    10k), ``bank`` the Eq. 6 bank (the training images); ``crop_images`` the images
    of the CPU augmentation comparison; ``budgets`` seconds per section (:data:`SECTIONS`), ``deadline`` seconds
    for the whole check (a section gets what is left when that is less than its budget); ``threads`` the CPU
    threads of the process (None: PyTorch's default)."""

    name: str
    bench: str
    overrides: tuple[str, ...]
    synthetic_images: int
    steps: int
    warmup: int
    levers: tuple[str, ...]
    lever_skip: str
    resnet18_overrides: tuple[str, ...]
    resnet18_levers: tuple[str, ...]
    memory_batches: tuple[int, ...]
    precision_steps: int
    fit_steps: int
    fit_warmup: int
    epoch_images: int
    eval_images: int
    bank: int
    crop_images: int
    budgets: dict[str, float] = field(default_factory=dict)
    deadline: float = 0.0
    threads: int | None = None


PRESETS = {
    # about 7.5 minutes when every section takes its whole budget; the bench's compile lever runs last
    "gpu": CheckPreset(
        name="gpu", bench="paper", overrides=(), synthetic_images=50_000, steps=20, warmup=5, levers=LEVERS,
        lever_skip="", resnet18_overrides=(), resnet18_levers=LEVERS, memory_batches=(64, 128, 256),
        precision_steps=50, fit_steps=200, fit_warmup=10,
        epoch_images=50_000, eval_images=60_000 + 8 * 10_000, bank=50_000, crop_images=64,
        budgets={"bench": 150, "memory": 60, "bf16_vs_fp32": 45, "fit": 70, "eval": 40, "resnet18.bench": 40,
                 "resnet18.memory": 20, "resnet18.fit": 30, "resnet18.eval": 15},
        deadline=440),
    # seconds on a CPU: 16²/8² views, 2 local views, batch 4, a 2-block ViT of width 48 (conf/bench.yaml's tiny)
    "tiny": CheckPreset(
        name="tiny", bench="tiny",
        overrides=("data.batch_size=4", "augment.global_size=16", "augment.local_size=8", "augment.n_local=2"),
        synthetic_images=256, steps=1, warmup=1, levers=LEVERS[:4],
        lever_skip="not in the tiny preset (on a CPU torch.compile takes minutes, a ResNet-18 step a second)",
        resnet18_overrides=("data.batch_size=2", "augment.global_size=8", "augment.local_size=4"),
        resnet18_levers=(), memory_batches=(2, 4, 8), precision_steps=2, fit_steps=2, fit_warmup=1,
        epoch_images=256, eval_images=704, bank=256, crop_images=8,
        budgets={"bench": 10, "memory": 3, "bf16_vs_fp32": 3, "fit": 4, "eval": 2, "resnet18.bench": 8,
                 "resnet18.memory": 4, "resnet18.fit": 5, "resnet18.eval": 3},
        deadline=40, threads=1),  # one thread: on busy cores PyTorch's threads wait on each other
}
