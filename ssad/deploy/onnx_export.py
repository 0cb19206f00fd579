"""A detector as one ONNX graph: uint8 images (N, 3, H, W) at the training size → the anomaly score R and the flag.

The graph holds what the ``.pt`` detector (:class:`ssad.deploy.detector.Detector`) does in order: the
preprocessing (float, bicubic resize to the view size, ImageNet normalisation), the teacher backbone and what it
scores an image by (both :func:`ssad.scoring.features.image_features`, as in evaluation), the L2-normalised fp16
feature bank, and the detector's score: Eq. 6 in log-sum-exp form and its readable form
R = 1 − τ·log(−S) = 1 − τ·(logsumexp_m(cos(f_x, f_m)/τ) − log M), or its τ → 0 limit 1 − max_m cos(f_x, f_m)
(``scorer=nn``). Inputs: ``images`` (uint8, dynamic batch)
and ``threshold`` (float32 scalar; optional: an initializer of the same name holds the exported threshold, plus the
margin of :func:`ssad.deploy.onnx_scoring.graph_threshold` that resolves ties as the ``.pt`` detector does).
Outputs: ``score`` (float32 R), ``anomalous`` (R > threshold), and the nearest training features,
``neighbours`` (bank rows) and ``similarity`` (their cosines). The model's metadata holds the score's name, the
threshold, its TPR, the calibration scores and count, the sizes, τ, the ssad version and the training run
(:func:`metadata`).
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ssad import __version__
from ssad.cli.errors import ConfigError
from ssad.deploy.detector import Detector
from ssad.deploy.onnx_scoring import graph_threshold
from ssad.scoring.features import image_features
from ssad.utils.files import atomic_path

OPSET = 17
NEIGHBOURS = 5  # the nearest training features (the largest terms of Eq. 6's sum) the graph returns per image
SCORES = ("eq6", "nn")  # the scores the graph computes
INPUTS = ("images", "threshold")
OUTPUTS = ("score", "anomalous", "neighbours", "similarity")


class DetectorGraph(nn.Module):
    """The traced module: a :class:`Detector`'s preprocessing, backbone, normalised bank and score in float32."""

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.backbone = detector.backbone
        # the bank as the .pt detector scores with it: fp16 values, normalised in float32 (ssad.scoring.metrics)
        self.register_buffer("keys", F.normalize(detector.bank.detach().float().cpu(), dim=1))
        self.temperature, self.view_size = float(detector.temperature), int(detector.view_size)
        self.log_m = math.log(self.keys.shape[0])
        self.k = min(NEIGHBOURS, self.keys.shape[0])
        self.nearest = score_name(detector) == "nn"

    def forward(self, images: Tensor, threshold: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        features = image_features(self.backbone, images, self.view_size)[1]
        cosines = features @ self.keys.T
        similarity, neighbours = torch.topk(cosines, self.k, dim=1)
        if self.nearest:
            score = 1.0 - similarity[:, 0]
        else:
            score = 1.0 - self.temperature * (torch.logsumexp(cosines / self.temperature, dim=1) - self.log_m)
        return score, score > threshold, neighbours, similarity


def metadata(detector: Detector) -> dict[str, str]:
    """The ``metadata_props`` of the exported model (strings; structured values as JSON)."""
    meta = detector.meta
    props: dict[str, Any] = {
        "format": "ssad-detector-onnx-v1", "ssad_version": __version__, "score": score_name(detector),
        "threshold": repr(float(detector.threshold)), "threshold_tpr": meta.get("threshold_tpr", ""),
        "threshold_from": meta.get("threshold_from", ""), "calibration_images": detector.calibration_size,
        "data_size": detector.data_size, "view_size": detector.view_size, "temperature": detector.temperature,
        "bank_size": int(detector.bank.shape[0]), "checkpoint": meta.get("checkpoint", ""),
        "run": json.dumps({k: meta.get(k) for k in ("dataset", "variant", "seed")}),
        "held_out_quality": json.dumps(meta.get("held_out_quality") or {}),
    }
    if detector.calibration is not None:
        props["calibration"] = json.dumps(detector.calibration.tolist())  # exact float64 values
    return {key: str(value) for key, value in props.items()}


def _with_default_threshold(model: Any, threshold: float) -> Any:
    """Give the ``threshold`` input an initializer of the same name: ONNX's way to make an input optional with
    a default (onnxruntime uses the initializer when the input is not fed)."""
    import numpy as np
    from onnx import numpy_helper

    model.graph.initializer.append(numpy_helper.from_array(np.array(threshold, dtype=np.float32), "threshold"))
    return model


def score_name(detector: Detector) -> str:
    """The registry name of the detector's score."""
    return detector.scorer.name or "a score of your own"


def _check_score(detector: Detector) -> None:
    """The graph computes Eq. 6 at the detector's τ or its 1-NN limit: refuse a detector that publishes another."""
    name = score_name(detector)
    if name not in SCORES or (name == "eq6" and float(detector.scorer.temperature) != float(detector.temperature)):
        raise ConfigError(f"the ONNX export computes Eq. 6 or its 1-NN limit (scorer=eq6 or scorer=nn); this "
                          f"detector publishes the {name!r} score. Export it with one of those, or as a .pt detector "
                          "file (out=detector.pt)")


def export_onnx(detector: Detector, path: str | Path) -> Path:
    """Write ``detector`` as one ONNX graph to ``path`` (through a temporary file: a failed export leaves any earlier
    file there as it was) and return the path. Needs the ``onnx`` package (``pip install 'ssad[onnx]'``)."""
    _check_score(detector)
    try:
        import onnx
    except ImportError as err:
        raise ImportError("exporting to ONNX needs the onnx package: pip install 'ssad[onnx]' "
                          "(or pip install onnx onnxruntime)") from err
    graph = DetectorGraph(detector.cpu()).eval()
    size = detector.data_size
    example = (torch.zeros(2, 3, size, size, dtype=torch.uint8), torch.tensor(float(detector.threshold)))
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values it folds into constants
        torch.onnx.export(graph, example, buffer, dynamo=False, opset_version=OPSET, input_names=list(INPUTS),
                          output_names=list(OUTPUTS), dynamic_axes={name: {0: "batch"} for name in
                                                                    ("images", *OUTPUTS)})
    calibration = None if detector.calibration is None else detector.calibration.numpy()
    default = graph_threshold(float(detector.threshold), calibration)  # the exported threshold, ties as the .pt
    model = _with_default_threshold(onnx.load_from_string(buffer.getvalue()), default)
    onnx.helper.set_model_props(model, metadata(detector))
    onnx.checker.check_model(model)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
    return Path(path)


def export_format(out: str | Path, file_format: str | None = None) -> str:
    """``pt`` or ``onnx``: ``file_format`` when given, else the suffix of ``out`` (``.onnx`` → onnx). For onnx,
    checks that the onnx package is installed before any work."""
    chosen = file_format or ("onnx" if Path(out).suffix.lower() == ".onnx" else "pt")
    if chosen not in ("pt", "onnx"):
        raise ConfigError(f"format={chosen!r}: choose pt (a PyTorch detector file) or onnx (one ONNX graph)")
    if chosen == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError as err:
            raise ConfigError("format=onnx needs the onnx package: pip install 'ssad[onnx]' "
                              "(or pip install onnx onnxruntime), or export out=detector.pt") from err
    return chosen
