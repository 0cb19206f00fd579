"""A static HTML report of a scoring run: ``python -m ssad.score ... report=DIR`` writes ``DIR/index.html`` and PNGs.

No script, no network: the page reads offline in any browser. It shows a summary (images scored and flagged, the
threshold with its TPR on n calibration images ± the binomial standard error √(tpr·(1 − tpr)/n), the held-out
AUROC the export measured), the histogram of the new scores over the calibration scores, the most anomalous
images first, each beside its nearest training images (the largest terms of its Eq. 6 sum, the cosine
similarity under each), and the most normal few at the end for contrast. The neighbours need the training
thumbnails a ``.pt`` detector keeps (export key ``thumbnails_max``); without them the report shows scores only and
says why.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from ssad.utils.files import atomic_path, write_text_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHOWN = 40  # most anomalous images shown (all flagged ones up to this many)
NORMAL = 5  # most normal images shown at the end
SCORE_AXIS = "anomaly score (higher = more unusual)"
STYLE = """body{font-family:sans-serif;max-width:1200px;margin:1em auto;color:#222}
table.summary td{padding:2px 12px 2px 0}
.row{display:flex;align-items:flex-start;gap:14px;padding:8px 0;border-bottom:1px solid #ddd}
.item{text-align:center;font-size:12px;width:100px;overflow-wrap:anywhere}
.item img{width:96px;height:96px;image-rendering:pixelated;border:1px solid #999}
.query img{border:3px solid #c00}.normal img{border:3px solid #2a7}
.arrow{align-self:center;color:#666;font-size:13px;width:80px;text-align:center}
.flag{color:#c00;font-weight:bold}.key{font-size:13px;color:#444}.note{background:#fff6d8;padding:6px 10px}"""


def histogram_figure(scores: np.ndarray, threshold: float, calibration: np.ndarray | None = None) -> Figure:
    """Histogram of the scores beside the in-distribution calibration scores, with the threshold; a plain-language
    axis and the flagged count in the title."""
    import matplotlib.pyplot as plt

    from ssad.scoring.plots import legend_below, overlaid_histograms

    scores = np.asarray(scores, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    samples = {"scored images": scores}
    if calibration is not None:
        samples = {"normal images (calibration)": np.asarray(calibration, dtype=np.float64), **samples}
    overlaid_histograms(ax, samples, bins=50, density=calibration is not None)
    ax.axvline(threshold, color="r", ls="--", label="threshold")
    ax.set_xlabel(SCORE_AXIS)
    ax.set_ylabel("share of images (density)" if calibration is not None else "images")
    ax.set_title(f"{int((scores > threshold).sum())} of {len(scores)} images flagged (score > {threshold:.4g})",
                 fontsize=10)
    legend_below(ax, ncol=3)
    fig.tight_layout()
    return fig


def save_figure(fig: Figure, path: str | Path) -> None:
    """``fig`` as a PNG at ``path`` through a temporary file (a failed write leaves an earlier file as it was)."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def _png(image: np.ndarray, path: Path) -> str:
    Image.fromarray(np.ascontiguousarray(np.asarray(image).transpose(1, 2, 0))).save(path)
    return f"img/{path.name}"


def _item(src: str, caption: str, cls: str = "", flagged: bool = False) -> str:
    """One image with its caption (``name: value``) under it, on two lines; ``flagged`` adds a red mark."""
    head, _, tail = caption.partition(": ")
    mark = '<br><span class="flag">flagged</span>' if flagged else ""
    return (f'<div class="item {cls}"><img src="{html.escape(src)}" alt="{html.escape(caption)}">'
            f"<br>{html.escape(head)}<br>{html.escape(tail)}{mark}</div>")


def summary_rows(detector: Any, scores: np.ndarray, flags: np.ndarray, threshold: float) -> list[tuple[str, str]]:
    """The summary table: (label, value) rows."""
    n, tpr = detector.calibration_size, float(detector.meta.get("threshold_tpr", 0.95))
    rows = [("images scored", str(len(scores))),
            ("flagged as anomalous", f"{int(flags.sum())} ({100 * flags.mean() if len(flags) else 0:.1f}%)")]
    if n:
        se = 100 * math.sqrt(tpr * (1 - tpr) / n)
        rows.append(("threshold", f"{threshold:.4g}: accepts {100 * tpr:g}% ± {se:.1f} points (binomial standard "
                                  f"error) of normal images, calibrated on {n} in-distribution images "
                                  f"({detector.meta.get('threshold_from') or 'the run'})"))
    else:
        rows.append(("threshold", f"{threshold:.4g} (the detector file holds no calibration scores)"))
    for name, quality in (detector.meta.get("held_out_quality") or {}).items():
        rows.append((f"held-out AUROC ({name})", f"{100 * quality['auroc']:.1f}%"))
    return rows


def _neighbour_note(detector: Any) -> str | None:
    """Why the report shows no neighbours, or None when it can."""
    if getattr(detector, "thumbnails", None) is not None:
        return None
    if str(getattr(detector, "path", "")).lower().endswith(".onnx"):
        return ("an ONNX detector keeps no training images, so this report shows scores only; score with the .pt "
                "detector of the same export to see each image's nearest training images")
    bank = int(detector.bank.shape[0]) if hasattr(detector, "bank") else 0
    return (f"this detector file keeps no thumbnails of its {bank} training images (more than the export's "
            f"thumbnails_max, or an older file), so this report shows scores only; export again with "
            f"thumbnails_max={max(bank, 1)} to see each image's nearest training images")


def write_report(out_dir: str | Path, detector: Any, names: list[str], images: np.ndarray, scores: np.ndarray,
                 flags: np.ndarray, threshold: float) -> Path:
    """Write the report to ``out_dir`` (``index.html``, ``histogram.png``, ``img/*.png``); return the page's
    path. ``detector``: a :class:`ssad.deploy.detector.Detector` or :class:`ssad.deploy.onnx_scoring.OnnxDetector`
    (``neighbours(images)``, ``thumbnails``, the calibration facts)."""
    out = Path(out_dir)
    (out / "img").mkdir(parents=True, exist_ok=True)
    scores, flags = np.asarray(scores, dtype=np.float64), np.asarray(flags, dtype=bool)
    calibration = None if detector.calibration is None else np.asarray(detector.calibration, dtype=np.float64)
    save_figure(histogram_figure(scores, threshold, calibration), out / "histogram.png")
    order = np.argsort(-scores, kind="stable")
    top = order[:max(min(SHOWN, int(flags.sum())), min(NORMAL, len(order)))]
    normal = [i for i in order[::-1][:NORMAL] if i not in set(top.tolist())][::-1]
    note = _neighbour_note(detector)
    neighbours: dict[int, list[tuple[int, float]]] = {}
    if note is None and len(top):
        chosen = np.asarray([*top, *normal])
        index, similarity = detector.neighbours(np.ascontiguousarray(images[chosen]))
        neighbours = {int(i): list(zip(np.asarray(index[j]).tolist(), np.asarray(similarity[j]).tolist()))
                      for j, i in enumerate(chosen)}
    thumbs = None if note is not None else np.asarray(detector.thumbnails)
    written: set[int] = set()

    def row(i: int, cls: str) -> str:
        cells = [_item(_png(images[i], out / "img" / f"x{i}.png"), f"{names[i]}: score {scores[i]:.4f}", cls,
                       bool(flags[i]))]
        if neighbours.get(i):
            cells.append('<div class="arrow">its nearest training images →</div>')
            for m, cos in neighbours[i]:
                if m not in written:
                    _png(thumbs[m], out / "img" / f"train{m}.png")
                    written.add(m)
                cells.append(_item(f"img/train{m}.png", f"training #{m}: cosine {cos:.3f}"))
        return f'<div class="row">{"".join(cells)}</div>'

    flagged, shown = int(flags.sum()), len(top)
    heading = (f"The {shown} most anomalous images (of {flagged} flagged)" if flagged else
               f"No image is flagged; the {shown} highest scores")
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>ssad scoring report</title>',
             f"<style>{STYLE}</style></head><body>", "<h1>Anomaly scoring report</h1>", '<table class="summary">',
             *(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(v)}</td></tr>"
               for k, v in summary_rows(detector, scores, flags, threshold)),
             "</table>",
             f'<p>The {SCORE_AXIS} is R = 1 − τ·log(−S) of Eq. 6: one minus a soft nearest-neighbour cosine similarity '
             "to the training images. An image is flagged when its score is above the threshold.</p>",
             '<h2>Scores</h2><img src="histogram.png" alt="histogram of the scores with the threshold">',
             f"<h2>{heading}</h2>"]
    if note:
        parts.append(f'<p class="note">{html.escape(note)}</p>')
    else:
        parts.append('<p class="key">Beside each image: the training images whose terms make most of its Eq. 6 '
                     "sum, with their cosine similarity to it (1 = the same features). An image far from all of them "
                     "is unusual. Red frame: among the most anomalous; green: among the most normal.</p>")
    parts += [row(int(i), "query") for i in top]
    if normal:
        parts += ["<h2>The most normal images, for contrast</h2>", *(row(int(i), "normal") for i in normal)]
    parts.append("</body></html>")
    page = out / "index.html"
    write_text_atomic(page, "\n".join(parts) + "\n")
    return page
