"""What a training run will cost on the device it got, estimated before anything is built, and the stop when it
cannot fit in memory or would take longer than :data:`MAX_HOURS`.

The model is built on the ``meta`` device (its weights then allocated, left unset) and run on fake tensors
(PyTorch's ``FakeTensorMode``: shapes only, no memory, no arithmetic): its parameters give the memory of the weights,
gradients and AdamW's two moments; one student forward and backward on the views of one image gives the training
FLOPs per image (:func:`ssad.bench.flops.counted_train_flops_per_image`) and, through ``saved_tensors_hooks``, the
activations kept for the backward pass per image. The time divides the FLOPs of an epoch by the device's measured
matrix-multiply rate (a fraction of a second of timing) and an efficiency below 1, since a training step is not all
large matrix products. ``budget_check=false`` runs anyway.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ssad.cli.errors import UserError

log = logging.getLogger(__name__)

MAX_HOURS = 24.0  # a run longer than this stops, with the estimate, unless budget_check=false
MEMORY_SHARE = 0.9  # of the memory free now that a run may plan to use (the allocator, the data, the OS)
ACTIVATION_OVERHEAD = 1.5  # the forward's temporaries and the backward's gradients of the activations
TRAIN_EFFICIENCY = 0.4  # share of the device's matrix-multiply rate a training step reaches
CPU_PRESET = "experiment=demo"


class BudgetError(UserError, RuntimeError):
    """A run that would not fit in memory or would take too long on this device; its message has the estimate."""


@dataclass
class Estimate:
    """The cost of a training run on one device."""

    device: str
    parameters: int  # the student's (backbone and head); the teacher holds as many
    memory_needed: float  # bytes, at the run's batch size
    memory_free: float  # bytes free on the device now
    flops_per_image: float  # training FLOPs per in-distribution image (student forward and backward, teacher forward)
    flops_per_second: float  # the device's measured matrix-multiply rate
    images_per_epoch: int | None
    epochs: int

    @property
    def seconds_per_epoch(self) -> float | None:
        if not self.images_per_epoch:
            return None
        return self.images_per_epoch * self.flops_per_image / (self.flops_per_second * TRAIN_EFFICIENCY)

    @property
    def hours(self) -> float | None:
        per_epoch = self.seconds_per_epoch
        return None if per_epoch is None else per_epoch * self.epochs / 3600

    def problems(self) -> list[str]:
        """Why the run should not start here (empty when it fits and ends within :data:`MAX_HOURS`)."""
        found = []
        if self.memory_needed > MEMORY_SHARE * self.memory_free:
            found.append(f"it needs about {gib(self.memory_needed)} of memory and {self.device} has "
                         f"{gib(self.memory_free)} free")
        if self.hours is not None and self.hours > MAX_HOURS:
            found.append(f"it would take about {duration(self.hours * 3600)} on {self.device}")
        return found

    def describe(self) -> str:
        """One line: parameters, memory, time per epoch and for the run."""
        per_epoch = self.seconds_per_epoch
        time_text = ("time unknown (images per epoch unknown)" if per_epoch is None else
                     f"about {duration(per_epoch)} per epoch of {self.images_per_epoch:,} images, "
                     f"{duration(per_epoch * self.epochs)} for {self.epochs} epochs")
        return (f"estimate on {self.device}: {self.parameters / 1e6:.1f} M parameters, "
                f"{self.flops_per_image / 1e9:.1f} GFLOPs per training image, about {gib(self.memory_needed)} of "
                f"memory ({gib(self.memory_free)} free), {time_text}")


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GB"


def duration(seconds: float) -> str:
    """``seconds`` as a reader says it: 40 s, 12 min, 3.5 hours, 9 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"


def free_memory(device: torch.device) -> float:
    """Bytes free now: the GPU's (``torch.cuda.mem_get_info``), or the machine's available memory (Linux's
    MemAvailable, within a container's cgroup limit where one is set)."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = float(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    try:
        limit, used = (Path("/sys/fs/cgroup") / name for name in ("memory.max", "memory.current"))
        if limit.is_file() and limit.read_text().strip() != "max":
            available = min(available, float(limit.read_text()) - float(used.read_text()))
    except (OSError, ValueError):
        pass
    return available


def matmul_rate(device: torch.device, dtype: torch.dtype, seconds: float = 0.3) -> float:
    """FLOP/s of square matrix products on ``device`` in ``dtype``, timed for about ``seconds``."""
    n = 2048 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b  # the first call pays for set-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        a @ b
        calls += 1
        if device.type == "cuda" and calls % 10 == 0:
            torch.cuda.synchronize(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * calls / (time.perf_counter() - start)


def training_device(cfg: DictConfig) -> torch.device:
    """The device the trainer will use: a GPU when ``trainer.accelerator`` allows one and one is there."""
    accelerator = str(cfg.trainer.get("accelerator", "auto"))
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def model_costs(cfg: DictConfig) -> tuple[int, int, float, float]:
    """(student parameters, teacher parameters, training FLOPs per image, bytes of activations kept for the
    backward pass per image) of the model of ``cfg``, built with fake tensors (shapes only)."""
    from hydra.utils import instantiate
    from torch._subclasses.fake_tensor import FakeTensorMode

    from ssad.bench.flops import counted_train_flops_per_image

    with torch.device("meta"):  # no initialisation arithmetic; then memory for the weights only, left unset
        module = instantiate(cfg.model, _convert_="all").to_empty(device="cpu")
    fake = FakeTensorMode(allow_non_fake_inputs=True)
    augment = cfg.augment
    negatives = bool(cfg.negatives.get("parts") or []) and float(cfg.negatives.get("weight", 0) or 0) > 0
    views = (int(augment.n_global), int(augment.n_local), int(negatives), int(augment.n_local) * negatives)
    saved = [0.0]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved[0] += tensor.numel() * tensor.element_size()
        return tensor

    with fake, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        flops = counted_train_flops_per_image(module.student, module.teacher, int(augment.global_size),
                                              int(augment.local_size), views)
    count = sum(p.numel() for p in module.student.parameters())
    teacher = sum(p.numel() for p in module.teacher.parameters())
    return count, teacher, float(flops), saved[0]


def estimate(cfg: DictConfig, images_per_epoch: int | None = None, device: torch.device | None = None) -> Estimate:
    """The cost of training ``cfg`` on ``device`` (default: the one the trainer will use)."""
    device = device or training_device(cfg)
    student, teacher, flops, activations = model_costs(cfg)
    precision = str(cfg.trainer.get("precision", "auto"))
    half = device.type == "cuda" and (precision == "auto" or "16" in precision)
    # weights, gradients and AdamW's two moments of the student in fp32, the teacher's weights
    weights = 4 * (4 * student + teacher)
    batch = int(cfg.data.batch_size)
    needed = weights + batch * activations * (0.5 if half else 1.0) * ACTIVATION_OVERHEAD
    rate = matmul_rate(device, torch.bfloat16 if half else torch.float32)
    name = "the CPU" if device.type == "cpu" else torch.cuda.get_device_name(device)
    epoch = cfg.data.get("epoch_size") or images_per_epoch
    return Estimate(name, student, needed, free_memory(device), flops, rate, epoch, int(cfg.trainer.max_epochs))


def training_images(cfg: DictConfig) -> int | None:
    """Images an epoch trains on: ``data.epoch_size``, else the training set's size (read through the data cache);
    None when the set cannot be read here (training will say why)."""
    if cfg.data.get("epoch_size"):
        return int(cfg.data.epoch_size)
    from hydra.utils import instantiate

    try:
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        return len(datamodule.train_set)
    except Exception as err:  # noqa: BLE001 (the estimate goes on without a time; training reports the problem)
        log.debug("training set size unknown: %s", err)
        return None


def check_budget(cfg: DictConfig) -> Estimate | None:
    """Stop (:class:`BudgetError`, exit status 2) a run that cannot fit in memory or would take longer than
    :data:`MAX_HOURS` on this device, with the estimate and what to run instead; log the estimate otherwise.
    ``budget_check=false`` skips it."""
    if not cfg.get("budget_check", True):
        return None
    found = estimate(cfg, training_images(cfg))
    if found.problems():
        raise BudgetError(stop_message(found))
    log.info("%s", found.describe())
    return found


def stop_message(found: Estimate) -> str:
    """Why the run stops, its estimate, and what to run instead."""
    instead = (f"on a CPU use the CPU preset ({CPU_PRESET}: a small CNN, minutes) or a GPU" if "CPU" in found.device
               else "lower data.batch_size, use a smaller model (model=resnet18) or more GPUs (trainer=ddp)")
    return (f"this run would not finish here: {'; '.join(found.problems())} ({found.describe()}). Instead, "
            f"{instead}; or run it anyway with budget_check=false")


__all__ = ["BudgetError", "Estimate", "check_budget", "duration", "estimate", "model_costs", "training_images"]
