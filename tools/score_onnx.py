"""Score a folder of images with an ssad ONNX detector, using nothing but onnxruntime, numpy and Pillow.

Usage: python score_onnx.py detector.onnx FOLDER [scores.csv]
Writes one row per image, most anomalous first: rank, file, score, anomalous.
"""

import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def load(path: Path, size: int) -> np.ndarray:
    """One image as uint8 (3, size, size): EXIF orientation, RGB, one bicubic resize (as ssad reads files)."""
    with Image.open(path) as image:
        rgb = ImageOps.exif_transpose(image).convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def main(detector: str, folder: str, out: str = "scores.csv", batch: int = 64) -> None:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the threshold input has a default value by design: no notice about it
    session = ort.InferenceSession(detector, options, providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    size, threshold = int(meta["data_size"]), float(meta["threshold"])
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and not p.name.startswith("."))
    scores, flags = [], []
    for start in range(0, len(files), batch):
        images = np.stack([load(p, size) for p in files[start:start + batch]])
        score, anomalous, _, _ = session.run(None, {"images": images})  # threshold: the exported one
        scores += score.astype(float).tolist()
        flags += anomalous.astype(int).tolist()
    order = sorted(range(len(files)), key=lambda i: -scores[i])
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "file", "score", "anomalous"])
        writer.writerows((r + 1, files[i].relative_to(root), f"{scores[i]:.8g}", flags[i]) for r, i in enumerate(order))
    print(f"{sum(flags)} of {len(files)} images flagged (score > {threshold:.4g}, accepting "
          f"{100 * float(meta['threshold_tpr']):g}% of normal images); {json.loads(meta['run'])}; wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
