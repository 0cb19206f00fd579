"""Scoring with an exported ONNX detector through onnxruntime and numpy alone (no PyTorch on this path).

:class:`OnnxDetector` reads what :func:`ssad.deploy.onnx_export.export_onnx` wrote (the graph and its metadata:
threshold, its TPR, calibration scores, sizes) and offers what ``python -m ssad.score`` uses of a ``.pt`` detector:
:meth:`~OnnxDetector.predict`, :meth:`~OnnxDetector.neighbours`, :meth:`~OnnxDetector.threshold_at` and the
calibration facts, on numpy arrays.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ssad.cli.errors import InputError, MissingFileError
from ssad.deploy.calibration import calibration_note, check_threshold_request

REEXPORT = "export it again: `python -m ssad.export ckpt=<run dir>/checkpoints/last.ckpt out=detector.onnx`"


def is_onnx(path: str | Path) -> bool:
    """Whether ``path`` names an ONNX detector (by its suffix)."""
    return Path(path).suffix.lower() == ".onnx"


TIE_MARGIN = 1e-5  # above the float32 rounding of R that the graph adds (measured well below it), far below a score gap


def graph_threshold(threshold: float, calibration: np.ndarray | None) -> float:
    """The threshold to feed the graph for the ``.pt`` detector's ``threshold``: a threshold picked on the calibration
    scores is one of them, and that image, not flagged by ``score > threshold`` in float64, would be flagged or not by
    the float32 graph as its rounding falls; so the graph compares with ``threshold`` plus :data:`TIE_MARGIN`, at
    most half the gap to the next calibration score above it (no calibration image changes side)."""
    margin = TIE_MARGIN
    if calibration is not None:
        above = np.asarray(calibration, dtype=np.float64)
        above = above[above > threshold]
        if len(above):
            margin = min(margin, (float(above.min()) - threshold) / 2)
    return float(threshold) + margin


def threshold_at_tpr(scores: np.ndarray, tpr: float) -> float:
    """The ⌈tpr·n⌉-th smallest calibration score (:func:`ssad.scoring.metrics.threshold_at_tpr` in numpy)."""
    n = len(scores)
    k = min(max(math.ceil(round(tpr * n, 9)), 1), n)
    return float(np.partition(np.asarray(scores, dtype=np.float64), k - 1)[k - 1])


class OnnxDetector:
    """An ONNX detector file opened with onnxruntime (CPU). Scores are the ``.pt`` detector's: R = 1 − τ·log(−S)
    (Eq. 6) or its 1-NN limit 1 − max cos (metadata ``score``); ``thumbnails`` is None: the ONNX file keeps no
    training images."""

    thumbnails = None

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"detector file {path} does not exist; make one with "
                                   "`python -m ssad.export ckpt=... out=detector.onnx`")
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise InputError("scoring an .onnx detector needs onnxruntime: pip install 'ssad[onnx]' "
                             "(or pip install onnxruntime)") from err
        options = ort.SessionOptions()
        options.log_severity_level = 3  # the threshold input's default is an initializer by design: no note on it
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own classes for unreadable or invalid files
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(f"{path} is not a readable ONNX detector ({reason}); {REEXPORT}") from err
        props = self.session.get_modelmeta().custom_metadata_map
        if not props.get("format", "").startswith("ssad-detector-onnx"):
            raise InputError(f"{path} is an ONNX model but not an ssad detector (no ssad metadata); {REEXPORT}")
        self.path = path
        self.data_size, self.view_size = int(props["data_size"]), int(props["view_size"])
        self.temperature, self.threshold = float(props["temperature"]), float(props["threshold"])
        self.bank_size = int(props["bank_size"])
        calibration = json.loads(props.get("calibration", "null"))
        self.calibration = None if calibration is None else np.asarray(calibration, dtype=np.float64)
        self.meta: dict[str, Any] = {
            "threshold_tpr": float(props["threshold_tpr"]) if props.get("threshold_tpr") else 0.95,
            "threshold_from": props.get("threshold_from", ""), "checkpoint": props.get("checkpoint", ""),
            "held_out_quality": json.loads(props.get("held_out_quality", "{}")), **json.loads(props.get("run", "{}")),
        }

    @property
    def calibration_size(self) -> int:
        return 0 if self.calibration is None else len(self.calibration)

    def calibration_note(self) -> str | None:
        """A warning when the threshold rests on fewer than :data:`MIN_CALIBRATION` in-distribution images."""
        return calibration_note(self.calibration_size, self.meta["threshold_tpr"], REEXPORT)

    def threshold_at(self, tpr: float) -> float:
        """The threshold that accepts ``tpr`` of the calibration images."""
        check_threshold_request(tpr, self.calibration is not None, REEXPORT)
        return threshold_at_tpr(self.calibration, tpr)

    def run(self, images: np.ndarray, batch_size: int = 256, threshold: float | None = None) -> dict[str, np.ndarray]:
        """The graph's outputs (score, anomalous, neighbours, similarity) for uint8 images (N, 3, S, S) at the
        training size S, ``batch_size`` images at a time."""
        if images.ndim != 4 or images.shape[1:] != (3, self.data_size, self.data_size) or images.dtype != np.uint8:
            raise InputError(f"expected uint8 images (N, 3, {self.data_size}, {self.data_size}), got {images.dtype} "
                             f"{tuple(images.shape)}; read them with ssad.deploy.inputs.read_input")
        chosen = self.threshold if threshold is None else threshold
        feed_threshold = np.array(graph_threshold(chosen, self.calibration), dtype=np.float32)
        names = [o.name for o in self.session.get_outputs()]
        parts = [self.session.run(None, {"images": np.ascontiguousarray(images[i:i + batch_size]),
                                         "threshold": feed_threshold})
                 for i in range(0, len(images), batch_size)]
        return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}

    def predict(self, images: np.ndarray, batch_size: int = 256,
                threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Scores R (float64) and is-anomalous flags (R > threshold; default: the exported one)."""
        out = self.run(images, batch_size, threshold)
        return out["score"].astype(np.float64), out["anomalous"].astype(bool)

    def neighbours(self, images: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The bank rows of each image's nearest training features and their cosine similarities."""
        out = self.run(images, batch_size)
        return out["neighbours"], out["similarity"].astype(np.float64)
