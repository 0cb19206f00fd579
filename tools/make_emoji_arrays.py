"""Write Google's Noto emoji of the ``emoji-datasource-google`` npm package as class-split ``.npy`` files: a colour
labelled set the CPU detector is checked on (docs/results/cpu-recipe.md; not shipped with ssad).

The package (iamcal/emoji-data; images Apache-2.0) holds one 64×64 RGBA PNG per emoji (``package/img/google/64/``)
and ``package/emoji.json``, whose ``category`` labels each emoji. The base emoji (no skin-tone variants, which would
put near-copies on both sides of the split) are composited onto white, shrunk to 32×32 (box filter) and labelled by
category in :data:`CATEGORIES` order, so that the class-split command line takes the pictures of things and beings
(0–4) as the in-distribution and the more abstract categories (5–8: activities, objects, symbols, flags) as
near-OOD. A seeded permutation (numpy default_rng(0)) puts four fifths in ``OUT/tr_x.npy``,
``tr_y.npy`` and one fifth in ``te_x.npy``, ``te_y.npy``. Only PNG and JSON members of the tarball are read.

Usage::

    npm pack emoji-datasource-google@16.0.0
    python tools/make_emoji_arrays.py emoji-datasource-google-16.0.0.tgz emoji
"""

from __future__ import annotations

import io
import json
import sys
import tarfile

import numpy as np
from PIL import Image
from split_arrays import write_split

CATEGORIES = ("Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
              "Activities", "Objects", "Symbols", "Flags")  # "Component" (5 skin-tone and hair swatches) left out
SIZE = 32
IMAGES = "package/img/google/64/"


def to_rgb(png: bytes) -> np.ndarray:
    """One RGBA emoji on white, box-filtered to SIZE×SIZE, as uint8 H×W×3."""
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, image).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(rgb, dtype=np.uint8)


def main(tarball: str, out: str) -> None:
    with tarfile.open(tarball) as tar:
        entries = json.load(tar.extractfile("package/emoji.json"))
        images, labels = [], []
        for entry in sorted(entries, key=lambda e: e["sort_order"]):
            if not entry.get("has_img_google") or entry["category"] not in CATEGORIES:
                continue
            member = tar.extractfile(IMAGES + entry["image"])
            images.append(to_rgb(member.read()))
            labels.append(CATEGORIES.index(entry["category"]))
    images, labels = np.stack(images), np.asarray(labels)
    counts = ", ".join(f"{name} {int((labels == k).sum())}" for k, name in enumerate(CATEGORIES))
    print(f"{len(images)} emoji ({counts})")
    write_split(images, labels, out, n_train=len(images) * 4 // 5)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
