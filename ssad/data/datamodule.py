"""The LightningDataModule: in-distribution positives + a negative-sampling variant, as uint8 batches.

Data flow: cached uint8 arrays → DataLoader (whole batches by fancy indexing, no per-image
decoding) → device → ``on_after_batch_transfer``: ``ssad.views.training.TrainingViews`` (negative transforms at the
source, multi-crop, negative transforms on the views).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import lightning as L
import numpy as np
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import Dataset

from ssad.cli.errors import ConfigError, UserError
from ssad.data.loaders import ArrayDataset, NegativeDataset, make_loader, resolve_num_workers
from ssad.data.oneclass import one_class_specs
from ssad.data.readers.images import UnreadableFilesError
from ssad.data.samplers import EpochSampler
from ssad.data.sources import ArraySet, RowView, accepts, check_ood_groups, check_source, load_source, plain
from ssad.views.augment import MultiCropAugment
from ssad.views.negatives import NegativePart, parse_variant
from ssad.views.training import TrainingViews

INDIST = "indist"
log = logging.getLogger(__name__)
# Lightning calls a mid-epoch resume of loaders without state_dict() unreliable; these resume exactly
# (EpochSampler positioned from the trainer's restored step count, see SSADDataModule.train_dataloader).
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


def holdout_split(data: ArraySet, fraction: float, seed: int) -> tuple[ArraySet, ArraySet]:
    """Split ``data`` into (train, test), a random ``fraction`` of the images (at least one) going to test.

    The permutation is drawn from ``seed`` (``data.holdout_seed``, not the run's seed), so every command that
    rebuilds the run's datamodule holds out the same images; the held-out images are never trained on. Both parts
    are :class:`RowView` s of the (memory-mapped) images: nothing is copied.
    """
    n = len(data)
    n_test = max(1, round(n * fraction))
    if n_test >= n:
        raise ConfigError(f"data.holdout={fraction} would leave no training images out of {n}: give more images, "
                          "or data.holdout=0 and a test set (data.test)")
    order = np.random.default_rng(seed).permutation(n)
    parts = [np.sort(order[n_test:]), np.sort(order[:n_test])]
    return tuple(replace(data, images=RowView(data.images, rows), name=name,
                         labels=None if data.labels is None else data.labels[rows])
                 for rows, name in zip(parts, (data.name, "test")))


@contextmanager
def about(role: str) -> Iterator[None]:
    """A user error raised within names the config key of the dataset it concerns (``role``, e.g. ``data.ood.x``)
    first: a reader knows its files, not the key that named them."""
    try:
        yield
    except UnreadableFilesError as err:  # named with the override that skips the files here
        raise _in_role(err.with_remedy("data.on_error=skip"), role) from None
    except UserError as err:
        raise _in_role(err, role) from None


def _in_role(err: UserError, role: str) -> UserError:
    """``err`` itself (its class and attributes kept), its message now starting with ``role``."""
    err.args = (f"{role}: {err}",)
    return err


def user_source(path: str) -> dict[str, Any]:
    """A user's own unlabeled images: a ``.npy`` array or a folder of images (recursive)."""
    return {"format": "npy", "path": path} if str(path).endswith(".npy") else {"format": "image_folder", "path": path}


class SSADDataModule(L.LightningDataModule):
    """Positives from ``train``, negatives from ``negatives.parts``; evaluation sets ``test`` and ``ood``.

    ``sources`` names the auxiliary datasets a variant may refer to (``source: imagenet``); a part may
    also give an inline source mapping, or ``indist`` for the in-distribution training set itself.
    ``path`` (a folder of images or a ``.npy`` file) stands for ``train`` when that is not given.
    ``ood_groups`` (``{group: [keys of ood]}``, e.g. OpenOOD's near and far) groups the OOD sets for the report.
    ``holdout`` > 0 (only without ``test``) keeps that share of the training images out of training as the
    test set, so a user's own data gets sensitivity, OOD metrics and an honest detector threshold; the held-out
    images are drawn with ``holdout_seed``.
    ``on_error`` (``raise`` or ``skip``) is what every image folder of the run does with unreadable files, unless
    its spec says otherwise; ``num_workers`` may be ``auto`` (:func:`resolve_num_workers`).
    An epoch is ``epoch_size`` in-distribution training images (None: one pass over the set; more than the set:
    further passes in new orders; fewer: a new random subset each epoch), so a preset can fix its step count
    whatever the size of the data; as many negatives are drawn (with replacement) as positives, both in an order
    fixed by ``seed`` and the epoch (exact mid-epoch resumption).
    ``normal_class`` (None: off) applies the one-class protocol to the labelled source of ``train``: that class of
    its training and test splits is the in-distribution, its other test classes the OOD set ``others``
    (:mod:`ssad.data.oneclass`).
    """

    def __init__(
        self,
        augment: MultiCropAugment,
        train: Mapping[str, Any] | None = None,
        path: str | None = None,
        negatives: Mapping[str, Any] | None = None,
        sources: Mapping[str, Mapping[str, Any]] | None = None,
        test: Mapping[str, Any] | None = None,
        ood: Mapping[str, Mapping[str, Any]] | None = None,
        ood_groups: Mapping[str, Sequence[str]] | None = None,
        seed: int = 0,
        name: str = "custom",
        size: int = 32,
        batch_size: int = 64,
        num_workers: int | str = 0,
        cache_dir: str | None = None,
        on_error: str = "raise",
        epoch_size: int | None = None,
        normal_class: int | None = None,
        *,
        holdout: float,
        holdout_seed: int,
    ) -> None:
        super().__init__()
        self.name, self.size, self.batch_size = name, size, batch_size
        resolve_num_workers(num_workers)  # checked now, resolved when the trainer's processes are known
        self.num_workers, self.cache_dir = num_workers, cache_dir
        self.on_error = on_error
        if train is None and path is None:
            raise ConfigError("no training data: set data.path (a folder of images or a .npy file) or data.train")
        if holdout and test:
            raise ConfigError("data.holdout and data.test are both set: hold out part of the training images "
                              "(data.holdout) or name a test set (data.test), not both")
        self.train_spec = plain(train) or user_source(path)
        self.train_role = "data.train" if train else "data.path"
        self.test_spec = plain(test)
        self.holdout, self.holdout_seed, self.seed = holdout, holdout_seed, seed
        self.epoch_size = epoch_size
        self.test_set: ArraySet | None = None
        self.ood_specs = plain(ood) or {}
        self.normal_class = normal_class
        if normal_class is not None:  # the one-class protocol: train, test and OOD follow from the class
            self.train_spec, self.test_spec, self.ood_specs = one_class_specs(
                plain(train), self.test_spec, normal_class, holdout, lambda spec: self.load(spec, "data.test").labels)
        self.ood_groups = check_ood_groups(ood_groups, self.ood_specs)
        self.sources = plain(sources) or {}
        self.augment = augment
        self.parts: list[NegativePart] = parse_variant(plain((negatives or {}).get("parts")) or [])
        self.views = TrainingViews(augment, self.parts)
        self.part_specs = [self.resolve_source(p.source) for p in self.parts]
        self.train_set: ArraySet | None = None

    # ----------------------------------------------------------------- sources
    def resolve_source(self, source: str | Mapping[str, Any]) -> dict[str, Any] | None:
        """A part's source as a spec mapping; None for the in-distribution training set."""
        if isinstance(source, str):
            if source == INDIST:
                return None
            if source not in self.sources:
                raise ConfigError(f"negative source {source!r} is not configured; choose '{INDIST}', one of "
                                  f"{sorted(self.sources)} (the `sources` config), or give an inline mapping")
            return self.sources[source]
        return plain(source)

    def part_role(self, i: int) -> str:
        """The config key that names negative part ``i``'s source (``sources.NAME`` or the inline mapping)."""
        source = self.parts[i].source
        return f"sources.{source}" if isinstance(source, str) else f"negatives.parts[{i}].source"

    def all_specs(self) -> dict[str, dict[str, Any]]:
        """Every dataset this run reads, by the config key that names it (``data.path``, ``data.ood.NAME``...)."""
        specs = {self.train_role: self.train_spec}
        for i, spec in enumerate(self.part_specs):
            if spec is not None:
                specs[self.part_role(i)] = spec
        if self.test_spec:
            specs["data.test"] = self.test_spec
        specs.update({f"data.ood.{k}": v for k, v in self.ood_specs.items()})
        return specs

    def check_sources(self) -> None:
        """Fail at start-up, before any training, when a dataset's spec is wrong or its files are missing; the
        error names the config key of the set (:func:`about`)."""
        for role, spec in self.all_specs().items():
            with about(role):
                check_source(spec)

    def load(self, spec: Mapping[str, Any], role: str) -> ArraySet:
        """``spec`` (named by the config key ``role``) through the cache, with ``data.on_error`` for a format that
        reads image files; an error names ``role``, an unreadable file the override that skips it."""
        with about(role):
            spec = dict(plain(spec))
            if "on_error" not in spec and accepts(spec, "on_error"):
                spec["on_error"] = self.on_error
            return load_source(spec, self.size, self.cache_dir)

    # ----------------------------------------------------------------- lightning hooks
    def prepare_data(self) -> None:
        """Read each source once and fill the cache (rank 0 only)."""
        self.check_sources()
        for role, spec in self.all_specs().items():
            self.load(spec, role)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.train_set = self.load(self.train_spec, self.train_role)
            if self.holdout:
                with about(self.train_role):
                    self.train_set, self.test_set = holdout_split(self.train_set, self.holdout, self.holdout_seed)
            self.neg_sets = [self.train_set if spec is None else self.load(spec, self.part_role(i))
                             for i, spec in enumerate(self.part_specs)]

    def train_dataloader(self) -> CombinedLoader:
        """Positives and as many negatives per epoch, in an order fixed by (seed, epoch); when the trainer
        resumes mid-epoch, both start after the batches already trained on."""
        positives = ArrayDataset(self.train_set.images)
        if len(positives) < self.batch_size:
            raise ConfigError(f"{self.train_role} ({self.name}): {len(positives)} training images < "
                              f"batch_size={self.batch_size}; lower data.batch_size")
        samplers = {"pos": EpochSampler(len(positives), self.seed, count=self.epoch_size)}
        datasets: dict[str, Dataset] = {"pos": positives}
        if self.parts:
            datasets["neg"] = NegativeDataset([s.images for s in self.neg_sets])
            weights = datasets["neg"].sample_weights([p.weight for p in self.parts])
            samplers["neg"] = EpochSampler(len(positives), self.seed + 2**32, weights,  # a stream of its own
                                           count=self.epoch_size)
        # whole optimiser steps only: with k micro-batches per step, an epoch's batches are a multiple of k
        accumulate = self.trainer.accumulate_grad_batches if self.trainer is not None else 1
        loader_batches = len(samplers["pos"]) // self.batch_size // accumulate * accumulate
        if not loader_batches:
            drawn = "training images" if not self.epoch_size else f"images an epoch (data.epoch_size={self.epoch_size})"
            raise ConfigError(f"{self.train_role} ({self.name}): {len(samplers['pos'])} {drawn} per process give no "
                              f"optimiser step of {accumulate} micro-batches × data.batch_size={self.batch_size}; "
                              "lower optim.effective_batch or data.batch_size" + (", or raise data.epoch_size"
                                                                                  if self.epoch_size else ""))
        log.info("%s", self.epoch_note(len(positives), self._steps_per_epoch(loader_batches)))
        epoch, batches = self._resume_position(loader_batches)
        for sampler in samplers.values():
            sampler.truncate(loader_batches * self.batch_size)
            sampler.resume_at(epoch, batches * self.batch_size)
        loaders = {k: make_loader(datasets[k], self.batch_size, samplers[k], self.loader_workers(), self.seed,
                                  drop_last=True) for k in datasets}
        return CombinedLoader(loaders, mode="min_size")

    def epoch_note(self, images: int, steps: int) -> str:
        """What an epoch trains on, said at the start of training (``data.epoch_size`` may make it several passes
        over a small set or a subset of a large one)."""
        if not self.epoch_size:
            return f"{images:,} training images, one pass an epoch, {steps} optimiser steps an epoch"
        share = (f"{self.epoch_size / images:.1f} passes over them" if self.epoch_size > images
                 else "a new random subset each epoch")
        return (f"{images:,} training images; an epoch draws {self.epoch_size:,} of them (data.epoch_size: {share}), "
                f"{steps} optimiser steps an epoch")

    def _steps_per_epoch(self, loader_batches: int) -> int:
        """Optimiser steps an epoch of ``loader_batches`` batches, after the trainer's ``limit_train_batches``; an
        epoch whose batches are not a multiple of the accumulation ends with a shorter step."""
        trainer = self.trainer
        if trainer is None:
            return loader_batches
        limit = trainer.limit_train_batches
        per_epoch = int(loader_batches * limit) if isinstance(limit, float) else min(loader_batches, int(limit))
        return max(math.ceil(per_epoch / trainer.accumulate_grad_batches), 1)

    def _resume_position(self, loader_batches: int) -> tuple[int, int]:
        """(epoch, batches of it already trained on) from the trainer's restored optimiser steps."""
        trainer = self.trainer
        if trainer is None or not trainer.global_step:
            return 0, 0
        epoch, steps = divmod(trainer.global_step, self._steps_per_epoch(loader_batches))
        return epoch, steps * trainer.accumulate_grad_batches

    def loader_workers(self) -> int:
        """``num_workers`` for this machine and the trainer's processes on it (``auto`` resolved)."""
        processes = self.trainer.num_devices if self.trainer is not None else 1
        return resolve_num_workers(self.num_workers, processes)


    def eval_sets(self) -> dict[str, ArraySet]:
        """The evaluation sets by role: ``train`` (the Eq. 6 bank), ``test`` when configured or held out, each
        OOD set."""
        self.setup()
        sets = {"train": replace(self.train_set, name="train")}
        if self.test_set is not None:
            sets["test"] = self.test_set
        specs = {"test": self.test_spec} if self.test_spec else {}
        specs.update(self.ood_specs)
        roles = {name: "data.test" if name == "test" else f"data.ood.{name}" for name in specs}
        return {**sets, **{name: replace(self.load(spec, roles[name]), name=name) for name, spec in specs.items()}}

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """On the device: the training step's views (:class:`ssad.views.training.TrainingViews`)."""
        if self.trainer is None or not self.trainer.training:
            return batch
        neg = batch.get("neg") or {}
        return self.views(batch["pos"]["image"], neg.get("image"), neg.get("part"))
