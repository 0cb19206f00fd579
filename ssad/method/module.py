"""The LightningModule: student g_s, EMA teacher g_t, its centring, and the objective L = L_pos + λ·L_neg."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor, nn

from ssad.cli.errors import UserError
from ssad.config.fields import defaults
from ssad.config.schema import OptimSchema
from ssad.method import schedules
from ssad.method.batching import scaled_lr
from ssad.method.centring import build_centring
from ssad.method.heads import DINOHead, MultiCropNetwork, make_deterministic
from ssad.method.losses import distillation_loss, negative_loss

# an optimiser factory: called with the parameter groups and ``lr`` (e.g. ``functools.partial(torch.optim.AdamW)``)
OptimizerFactory = Callable[..., torch.optim.Optimizer]


class SSADModule(L.LightningModule):
    """Self-distillation with negative samples (Rafiee et al. 2022, Eqs. 3–5).

    The batch arrives as views made on the device by the datamodule: ``pos_global`` (M lists of (B,3,G,G)),
    ``pos_local`` (N lists of (B,3,L,L)) and, when negatives are used, ``neg_global`` and ``neg_local``.
    Schedules follow DINO: per-step cosine learning rate with linear warm-up, cosine weight decay and
    cosine teacher momentum m→1; τ_t is linear per epoch. With gradient accumulation (``optim.effective_batch``
    larger than the devices' batch) the optimiser step is DINO's iteration: the schedules, the EMA teacher and
    the centre advance once per optimiser step; every micro-batch of a step sees the same centre and teacher,
    and the centre moves by the mean teacher output over all of the step's micro-batches and processes, so that
    k micro-batches of b images update as one batch of k·b does. Fast paths: ``group_views`` (one backbone call
    per resolution, else per view) and ``compile`` (``torch.compile`` of both backbones). ``centring`` picks the
    teacher's centre and output normalisation (:mod:`ssad.method.centring`: ``{name: ema, momentum: m}``, the
    paper's, or ``{name: sinkhorn, momentum: m, iterations: n}``; m: the running centre's momentum).
    ``optimizer`` is the optimiser factory (the config's ``optim.optimizer``, a ``_partial_`` target; None: AdamW),
    called with the parameter groups and the learning rate; ``optim`` its schedule and clipping (the keys of
    :class:`ssad.config.schema.OptimSchema`, whose defaults fill the keys it leaves out).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: Mapping[str, Any] | None = None,
        student_temp: float = 0.1,
        teacher_temp: float = 0.01,
        warmup_teacher_temp: float = 0.055,
        teacher_temp_epochs: int | None = None,
        centring: Mapping[str, Any] | None = None,
        momentum_teacher: float = 0.996,
        neg_weight: float = 1.0,
        batch_size: int = 64,
        optimizer: OptimizerFactory | None = None,
        optim: Mapping[str, Any] | None = None,
        group_views: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        # the schedule alone in the hyperparameters: the factory is code, which a checkpoint does not keep
        optim = {key: value for key, value in dict(optim or {}).items() if key != "optimizer"}
        self.save_hyperparameters(ignore=["backbone", "optimizer"])
        self.optimizer_factory: OptimizerFactory = optimizer or torch.optim.AdamW
        self.optim = {**defaults(OptimSchema), **optim}
        head_module = DINOHead(backbone.num_features, **dict(head or {}))
        self.student = MultiCropNetwork(backbone, head_module, group_views)
        self.teacher = make_deterministic(copy.deepcopy(self.student))  # same weights, no drop-path/dropout
        self.teacher.requires_grad_(False)
        self.centring = build_centring(centring, head_module.last_layer.out_features)
        self.run_config: dict[str, Any] | None = None  # the resolved Hydra config, kept in checkpoints
        self.last_loss: Tensor | None = None  # of the latest micro-batch, detached
        self._compiled = False

    def configure_model(self) -> None:
        """With ``compile=True``, compile the student and teacher backbones in place (``nn.Module.compile``:
        parameter names and checkpoints unchanged), one static graph per view shape; idempotent."""
        if self.hparams.compile and not self._compiled:
            self.student.backbone.compile(dynamic=False)
            self.teacher.backbone.compile(dynamic=False)
            self._compiled = True

    @property
    def center(self) -> Tensor:
        """The running centre c, (1, K): the EMA of the teacher's mean output (``centring.center``)."""
        return self.centring.center

    # ----------------------------------------------------------------- schedules
    @property
    def steps_per_epoch(self) -> int:
        return max(int(self.trainer.estimated_stepping_batches) // max(self.trainer.max_epochs, 1), 1)

    def effective_batch(self) -> int:
        """Images per optimiser step: the batch summed over processes and accumulated micro-batches."""
        return self.hparams.batch_size * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def effective_lr(self) -> float:
        """lr = lr_base × effective batch / 256 (:func:`ssad.method.batching.scaled_lr`)."""
        return scaled_lr(self.optim["base_lr"], self.effective_batch())

    def teacher_temperature(self) -> float:
        """τ_t for the current epoch: linear from ``warmup_teacher_temp`` to ``teacher_temp``."""
        epochs = self.hparams.teacher_temp_epochs or self.trainer.max_epochs
        return schedules.linear(self.current_epoch, epochs, self.hparams.warmup_teacher_temp,
                                self.hparams.teacher_temp)

    def _step_schedules(self, step: int) -> dict[str, float]:
        total = int(self.trainer.estimated_stepping_batches)
        warmup = self.optim["warmup_epochs"] * self.steps_per_epoch
        return {
            "lr": schedules.cosine(step, total, self.effective_lr(), self.optim["min_lr"], warmup, 0.0),
            "wd": schedules.cosine(step, total, self.optim["weight_decay"], self.optim["weight_decay_end"]),
            "momentum": schedules.cosine(step, total, self.hparams.momentum_teacher, 1.0),
        }

    # ----------------------------------------------------------------- training
    def training_step(self, batch: Mapping[str, list[Tensor]], batch_idx: int) -> Tensor:
        pos_g, pos_l = batch["pos_global"], batch["pos_local"]
        neg_g, neg_l = batch.get("neg_global", []), batch.get("neg_local", [])
        # order: globals (pos, neg) then locals (pos, neg) -> one backbone call per resolution
        out = self.student(pos_g + neg_g + pos_l + neg_l)
        n1, n2, n3 = len(pos_g), len(pos_g) + len(neg_g), len(pos_g) + len(neg_g) + len(pos_l)
        student_pos, student_neg = out[:n1] + out[n2:n3], out[n1:n2] + out[n3:]
        with torch.no_grad():
            teacher_out = self.teacher(pos_g)
        tau_t = self.teacher_temperature()
        teacher_probs = self.centring.targets(teacher_out, tau_t, self._all_reduce)
        l_pos = distillation_loss(student_pos, teacher_probs, self.hparams.student_temp)
        loss = l_pos
        if student_neg and self.hparams.neg_weight > 0:
            l_neg = negative_loss(student_neg, self.hparams.student_temp)
            loss = l_pos + self.hparams.neg_weight * l_neg
            self.log("train/L_neg", l_neg, on_step=True, on_epoch=True, sync_dist=True)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(nonfinite_loss_message(self.trainer, loss.item()))
        self.last_loss = loss.detach()  # the epoch's loss curve (ssad.training.callbacks.OODEvaluation) sums these
        self.centring.accumulate(teacher_out)  # the centre itself moves after the optimiser step
        # sync_dist: epoch means over all processes (the loss curve in results.json is the global one)
        self.log("train/L_pos", l_pos, on_step=True, on_epoch=True, sync_dist=True)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("train/tau_t", tau_t, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def _all_reduce(self, tensor: Tensor, op: str) -> Tensor:
        """``tensor`` reduced (``"sum"`` or ``"max"``) over the training processes (:mod:`ssad.method.centring`)."""
        return self.trainer.strategy.reduce(tensor, reduce_op=op)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer, optimizer_closure=None) -> None:
        values = self._step_schedules(self.global_step)
        for group in optimizer.param_groups:
            group["lr"] = values["lr"]
            if group["regularized"]:
                group["weight_decay"] = values["wd"]
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)  # runs the step's last micro-batch
        self.centring.update(self._all_reduce, self.trainer.world_size)
        self._ema_update(values["momentum"])
        self.log_dict({"train/lr": values["lr"], "train/wd": values["wd"], "train/momentum": values["momentum"]},
                      on_step=True, on_epoch=False)

    @torch.no_grad()
    def _ema_update(self, momentum: float) -> None:
        """θ_t ← m·θ_t + (1 − m)·θ_s (Eq. 2), one fused op over all parameters."""
        teacher = [p.data for p in self.teacher.parameters()]
        student = [p.data for p in self.student.parameters()]
        torch._foreach_mul_(teacher, momentum)
        torch._foreach_add_(teacher, student, alpha=1.0 - momentum)

    def on_before_optimizer_step(self, optimizer) -> None:
        """Freeze the last layer during the first epoch(s) by dropping its gradients (DINO)."""
        if self.current_epoch < self.optim["freeze_last_layer"]:
            for p in self.student.head.last_layer.parameters():
                p.grad = None

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        """Clip at ``clip_grad``: per parameter as DINO does (default), or the global norm (``global``)."""
        clip = self.optim["clip_grad"]
        if not clip:
            return
        if self.optim["clip_mode"] == "global":
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
            return
        grads = [p.grad for p in self.student.parameters() if p.grad is not None]
        if grads:
            norms = torch.stack(torch._foreach_norm(grads))
            scale = (clip / (norms + 1e-6)).clamp(max=1.0)
            torch._foreach_mul_(grads, list(scale.unbind()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """The optimiser of ``optimizer`` (AdamW by default) over two groups: no weight decay on biases and norm
        parameters (1-D tensors); the schedules set each group's lr and weight decay every step."""
        regularized, plain = [], []
        for name, p in self.student.named_parameters():
            if p.requires_grad:
                (plain if name.endswith(".bias") or p.ndim <= 1 else regularized).append(p)
        groups = [{"params": regularized, "regularized": True},
                  {"params": plain, "regularized": False, "weight_decay": 0.0}]
        extra = {}
        if getattr(self.optimizer_factory, "keywords", {}).get("fused") and not torch.cuda.is_available():
            extra["fused"] = None  # the fused kernel is used on CUDA only
        return self.optimizer_factory(groups, lr=self.optim["base_lr"], **extra)

    # ----------------------------------------------------------------- resumability
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the run's config (a checkpoint is self-describing) and the random state, so that a resumed
        run draws the same crops and batches."""
        checkpoint["ssad_config"] = self.run_config
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_torch(np.random.get_state()),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states")
        if states:
            torch.set_rng_state(states["torch"])
            name, keys, *rest = states["numpy"]
            np.random.set_state((name, keys.numpy(), *rest))
            random.setstate(states["python"])
            if states["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])


def last_checkpoint(trainer: L.Trainer) -> Path | None:
    """The run's ``last.ckpt`` (of its ``ModelCheckpoint``) when one has been written, else None."""
    callback = getattr(trainer, "checkpoint_callback", None)
    if callback is None or not getattr(callback, "dirpath", None):
        return None
    path = Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}"
    return path if path.is_file() else None


class NonFiniteLossError(UserError, FloatingPointError):
    """The loss became NaN or infinite: a run's settings to change (printed as one ``error:`` line)."""


def nonfinite_loss_message(trainer: L.Trainer, loss: float) -> str:
    """Why the run stopped on a non-finite loss, and what is true for it: whether a checkpoint holds weights to go
    back to, and whether reduced precision can be the cause (``trainer.precision=32-true`` suggested only when the
    run uses another precision)."""
    lines = [f"non-finite loss ({loss}) at epoch {trainer.current_epoch}, step {trainer.global_step}: training "
             "stopped."]
    last = last_checkpoint(trainer)
    if last is not None:
        lines.append(f"{last} holds the last good weights (saved at the end of an earlier epoch or at an "
                     "interruption); rerunning the same hydra.run.dir after a change resumes from it.")
    else:
        lines.append("No checkpoint was written yet (the first is written at the end of epoch 1): start again after "
                     "a change.")
    precision = str(trainer.precision)
    if precision in ("32-true", "32", "64-true", "64"):
        lines.append(f"The run already computes in full precision ({precision}), so rounding is not the cause.")
    else:
        lines.append(f"This run uses trainer.precision={precision}: trainer.precision=32-true tells whether "
                     "rounding is the cause.")
    lines.append("What to try: docs/howto/is-it-learning.md#non-finite-loss")
    return " ".join(lines)


def _numpy_state_to_torch(state: tuple) -> tuple:
    """NumPy's RNG state with its key array as a tensor (checkpoints load with ``weights_only=True``)."""
    name, keys, *rest = state
    return (name, torch.from_numpy(keys.copy()), *rest)
