"""A self-contained detector file: teacher backbone + training feature bank + an OOD score + a threshold.

The OOD score is one of :mod:`ssad.scoring.scores` (stored by name and plain parameters; ``scorer=`` of
``ssad.export``), by default the paper's Eq. 6, whose scores are R = 1 − τ·log(−S), the readable form of Eq. 6's S
(:func:`ssad.scoring.metrics.readable_score`): one minus a soft nearest-neighbour cosine similarity to the training
images, in [0, 2], higher = more anomalous, the same ranking as S. Usage, without Hydra or the training config::

    from ssad.deploy.detector import Detector
    detector = Detector.load("detector.pt")
    scores, flags = detector.predict(images)   # uint8 (N, 3, H, W) at the training size (others are resized)
    strict = detector.threshold_at(0.99)       # accept 99% of the in-distribution calibration images
    scores, flags = detector.predict(images, threshold=strict)
"""

from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ssad.cli.errors import InputError, MissingFileError, UserError
from ssad.deploy.calibration import calibration_note, check_threshold_request
from ssad.deploy.inputs import read_input, resize_to
from ssad.deploy.safe_load import load_torch_file
from ssad.method.backbones import build_backbone
from ssad.scoring.features import image_features, resolve_device
from ssad.scoring.metrics import threshold_at_tpr
from ssad.scoring.scores import Eq6Score, Scorer, scorer_from_spec, scorer_spec
from ssad.utils.console import progress_bar
from ssad.utils.files import save_atomic

FORMAT = "ssad-detector-v2"  # threshold and calibration scores as R
REEXPORT = ("export it again from its training checkpoint: "
            "`python -m ssad.export ckpt=<run dir>/checkpoints/last.ckpt out=detector.pt`")


def _stacklevel_outside_ssad() -> int:
    """The ``stacklevel`` of the first caller outside ssad and torch (whose ``no_grad`` wraps ssad's methods), seen
    from the function that warns: the warning then names the user's line, whichever method passed the images on."""
    inside = (str(Path(__file__).resolve().parents[1]) + "/", str(Path(torch.__file__).resolve().parent) + "/")
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


class Detector(nn.Module):
    """OOD detector: ``scorer`` (default Eq. 6 at ``temperature``, publishing R = 1 − τ·log(−S)) on the teacher
    features of the bank. ``data_size``: images are first brought to the training
    resolution (as the training data were), then ``preprocess`` resizes them to the global-view size
    ``view_size``. ``threshold`` and ``calibration`` are published scores (R for Eq. 6); ``calibration``: the scores of
    in-distribution images never used as the bank (the test set, or the training set scored leave-one-out),
    from which :meth:`threshold_at` picks a threshold for any TPR."""

    def __init__(self, backbone: nn.Module, bank: Tensor, backbone_args: dict[str, Any], data_size: int,
                 view_size: int, temperature: float, threshold: float, meta: dict[str, Any] | None = None,
                 calibration: Tensor | None = None, scorer: Scorer | None = None) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.register_buffer("bank", bank.half())
        self.backbone_args, self.meta = dict(backbone_args), dict(meta or {})
        self.data_size, self.view_size = data_size, view_size
        self.temperature, self.threshold = temperature, threshold
        self.calibration = None if calibration is None else calibration.detach().double().cpu()
        # the OOD score (ssad.scoring.scores), fitted on the bank where it lies (see fitted_scorer)
        self.scorer = Eq6Score(temperature) if scorer is None else scorer
        self._fitted_on: tuple[Any, ...] | None = None
        # uint8 thumbnails of the bank's training images, in bank order (the HTML report's neighbours), or None
        self.thumbnails: Tensor | None = None

    @property
    def calibration_size(self) -> int:
        """How many in-distribution images the threshold was calibrated on (0 when the file holds none)."""
        return 0 if self.calibration is None else int(self.calibration.numel())

    def calibration_note(self) -> str | None:
        """A warning when the threshold rests on fewer than :data:`MIN_CALIBRATION` in-distribution images,
        else None."""
        return calibration_note(self.calibration_size, float(self.meta.get("threshold_tpr", 0.95)), REEXPORT)

    def threshold_at(self, tpr: float) -> float:
        """The threshold that accepts (calls in-distribution) ``tpr`` of the calibration images."""
        check_threshold_request(tpr, self.calibration is not None, REEXPORT)
        return threshold_at_tpr(self.calibration, tpr)

    @torch.no_grad()
    def features(self, images: Tensor) -> Tensor:
        """Normalised features that the teacher backbone scores uint8 images (N, 3, H, W) by, at the training
        resolution (:func:`ssad.method.backbones.describe`)."""
        return image_features(self.backbone, images.to(self.bank.device), self.view_size)[1]

    def at_data_size(self, images: Tensor) -> Tensor:
        """``images`` brought to the training size ``data_size`` with one bicubic interpolation, the one every entry
        point uses (:func:`ssad.deploy.inputs.resize_to`, as ``python -m ssad.score`` reads a file; warns when it
        resizes); unchanged when they have that size already."""
        if images.ndim != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images of shape (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if (height, width) == (self.data_size, self.data_size):
            return images
        warnings.warn(f"images of size {height}×{width} resized to the detector's training size {self.data_size}×"
                      f"{self.data_size} (one bicubic interpolation, as `python -m ssad.score` does); pass images "
                      "of that size to skip this", stacklevel=_stacklevel_outside_ssad())
        return torch.from_numpy(resize_to(images.cpu().numpy(), self.data_size))

    def fitted_scorer(self) -> Scorer:
        """The detector's OOD score fitted on its bank (as float32), fitted again after the bank moved."""
        key = (self.bank.device, self.bank.data_ptr(), id(self.scorer))
        if self._fitted_on != key:
            self.scorer.fit(self.bank.float())
            self._fitted_on = key
        return self.scorer

    @torch.no_grad()
    def score(self, images: Tensor, batch_size: int = 256, progress: bool = False) -> Tensor:
        """Anomaly score per image as the detector's OOD score publishes it (float64, CPU; higher = more anomalous):
        for Eq. 6, R = 1 − τ·log(−S), in [0, 2]. Images of another size than ``data_size`` are resized to it first
        (:meth:`at_data_size`)."""
        images = self.at_data_size(images)
        scorer = self.fitted_scorer()
        starts = progress_bar(range(0, len(images), batch_size), "scoring", progress)
        raw = torch.cat([scorer.score(self.features(images[i:i + batch_size])).cpu() for i in starts])
        return scorer.readable(raw)

    @torch.no_grad()
    def leave_one_out_scores(self) -> Tensor | None:
        """The published scores of the bank's training images, each against the others (CPU); None when the OOD
        score has no leave-one-out form."""
        scorer = self.fitted_scorer()
        raw = scorer.leave_one_out()
        return None if raw is None else scorer.readable(raw.cpu())

    def predict(self, images: Tensor, batch_size: int = 256, progress: bool = False,
                threshold: float | None = None) -> tuple[Tensor, Tensor]:
        """Scores R and is-anomalous flags: score above ``threshold`` (default: the exported one)."""
        scores = self.score(images, batch_size, progress)
        return scores, scores > (self.threshold if threshold is None else threshold)

    def score_files(self, path: str | Path, batch_size: int = 256, on_error: str = "raise",
                    threshold: float | None = None) -> tuple[list[str], Tensor, Tensor]:
        """Names, scores R and flags of a folder of images (recursive), one image file or a ``.npy`` array, read and
        resized as ``python -m ssad.score`` reads them (:func:`ssad.deploy.inputs.read_input`): the same file gets
        the same score through either."""
        names, images = read_input(path, self.data_size, on_error)
        scores, flags = self.predict(torch.from_numpy(images), batch_size, threshold=threshold)
        return names, scores, flags

    @torch.no_grad()
    def neighbours(self, images: Tensor | np.ndarray, k: int = 5, batch_size: int = 256) -> tuple[Tensor, Tensor]:
        """The bank rows of the ``k`` largest terms of each image's Eq. 6 sum (its nearest training features) and
        their cosine similarities: (N, k) int64 and float64, on the CPU. ``images``: uint8 (N, 3, H, W)."""
        images = self.at_data_size(torch.as_tensor(images))
        keys = nn.functional.normalize(self.bank.float(), dim=1)
        k = min(k, len(keys))
        found = [(self.features(images[i:i + batch_size]) @ keys.T).topk(k, dim=1)
                 for i in range(0, len(images), batch_size)]
        return torch.cat([f.indices for f in found]).cpu(), torch.cat([f.values for f in found]).double().cpu()

    def save(self, path: str | Path) -> Path:
        return save_atomic(path, {
            "format": FORMAT, "backbone_args": self.backbone_args, "backbone": self.backbone.state_dict(),
            "bank": self.bank, "data_size": self.data_size, "view_size": self.view_size,
            "temperature": self.temperature, "threshold": self.threshold, "meta": self.meta,
            "calibration": self.calibration, "thumbnails": self.thumbnails, "scorer": scorer_spec(self.scorer),
        })

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", trust_file: bool = False) -> Detector:
        """Rebuild a detector saved by :meth:`save` (``ssad.export``) on ``device`` (auto = CUDA if present).

        The file is read with ``torch.load(weights_only=True)`` and its backbone built through ssad's registry
        (:mod:`ssad.method.backbones`) from plain arguments, so nothing in the file runs; a file that would need more
        is refused (:class:`ssad.deploy.safe_load.UnsafeFileError`). ``trust_file=True`` reads it with full pickle,
        which runs code from the file: only for a file you made yourself or fully trust. The OOD score is rebuilt
        from the built-in scores by name (:mod:`ssad.scoring.scores.registry`); a score of the user's own, stored by
        its dotted path, is imported only with ``trust_file=True``."""
        path = Path(path)
        if path.is_dir():
            raise InputError(f"detector={path} is a folder; give the detector file that "
                             "`python -m ssad.export ckpt=... out=detector.pt` wrote")
        if not path.is_file():
            raise MissingFileError(f"detector file {path} does not exist; make one with "
                                   "`python -m ssad.export ckpt=... out=detector.pt`")
        try:
            state = load_torch_file(path, "detector file", REEXPORT, trust_file)
        except UserError:
            raise
        except (ValueError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            if reason.startswith(str(path)):  # load_torch_file's own message: already names the file and remedy
                raise InputError(reason) from err
            raise InputError(f"{path} is not a readable detector file ({reason}); {REEXPORT}") from err
        found = state.get("format") if isinstance(state, dict) else None
        if isinstance(found, str) and found.startswith("ssad-detector-") and found != FORMAT:
            raise InputError(f"{path} is a detector file of format {found}, which this ssad does not read (it reads "
                             f"{FORMAT}); {REEXPORT}")
        if found != FORMAT:
            raise InputError(f"{path} is not an ssad detector ({FORMAT}); `python -m ssad.export` writes one")
        try:
            args = dict(state["backbone_args"])
            backbone = build_backbone(args.pop("builder", "vit_backbone"), **args)
            backbone.load_state_dict(state["backbone"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            reason = str(err).splitlines()[0]
            raise InputError(f"{path}: its backbone cannot be rebuilt ({reason}); {REEXPORT}") from err
        threshold, calibration = state["threshold"], state.get("calibration")
        spec = state.get("scorer")  # none in a file of Eq. 6 only: Eq. 6 at its temperature
        scorer = None if spec is None else scorer_from_spec(spec, f"detector file {path}", trust_file)
        detector = cls(backbone, state["bank"], state["backbone_args"], state["data_size"], state["view_size"],
                       state["temperature"], threshold, state["meta"], calibration, scorer)
        thumbnails = state.get("thumbnails")
        detector.thumbnails = thumbnails if isinstance(thumbnails, Tensor) else None
        return detector.to(resolve_device(device))
