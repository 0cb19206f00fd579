"""An embedded labelled set that needs no download: letters rendered from the fonts matplotlib ships.

In the spirit of notMNIST (letters A–J in many typefaces): each image is one letter in one of the 22 text
fonts of ``matplotlib/mpl-data/fonts/ttf`` (DejaVu Sans/Serif/Mono, STIX, Computer Modern; regular, bold,
italic), at a random size, offset, stroke width and rotation (±15°), white on black, rendered at 96×96 and
brought to the requested size with one bicubic interpolation. The label is the letter's index in ``letters``.
Train and test are drawn from different random streams, so no image is in both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ssad.cli.errors import ConfigError
from ssad.data.readers.images import Arrays, resize_images

CANVAS = 96
EXCLUDED_FONTS = ("STIXNonUni", "STIXSiz", "cmex", "cmsy", "LastResort", "Display")  # symbols, not letters
SPLIT_SEEDS = {"train": 0, "test": 1}


def font_files() -> list[Path]:
    """matplotlib's text fonts, sorted by name (the same list on every machine with the same matplotlib)."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = sorted(p for p in folder.glob("*.ttf") if not any(x in p.name for x in EXCLUDED_FONTS))
    if not fonts:
        raise FileNotFoundError(f"no fonts under {folder}: the glyphs set needs matplotlib's bundled fonts")
    return fonts


def render_letter(letter: str, font: Path, rng: np.random.Generator) -> np.ndarray:
    """One letter, white on black, CANVAS×CANVAS uint8, with random size, offset, stroke and rotation."""
    canvas = Image.new("L", (CANVAS, CANVAS), 0)
    typeface = ImageFont.truetype(str(font), int(CANVAS * rng.uniform(0.55, 0.85)))
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=typeface)
    x = (CANVAS - (right - left)) / 2 - left + rng.uniform(-6, 6)
    y = (CANVAS - (bottom - top)) / 2 - top + rng.uniform(-6, 6)
    draw.text((x, y), letter, fill=255, font=typeface, stroke_width=int(rng.integers(0, 3)), stroke_fill=255)
    return np.asarray(canvas.rotate(rng.uniform(-15, 15), resample=Image.BICUBIC))


def glyphs(size: int, split: str = "train", per_class: int = 300, characters: str = "ABCDEFGHIJ") -> Arrays:
    """``per_class`` images of each of ``characters`` (labels 0..len−1), gray → RGB at ``size``×``size``."""
    if split not in SPLIT_SEEDS:
        raise ConfigError(f"glyphs: split={split!r}; choose one of {sorted(SPLIT_SEEDS)}")
    if per_class < 1 or not characters:
        raise ConfigError(f"glyphs: per_class={per_class}, characters={characters!r}; need per_class ≥ 1 and "
                          "characters")
    rng = np.random.default_rng(SPLIT_SEEDS[split])
    fonts = font_files()
    gray = np.stack([render_letter(letter, fonts[rng.integers(len(fonts))], rng)
                     for letter in characters for _ in range(per_class)])
    labels = np.repeat(np.arange(len(characters), dtype=np.int64), per_class)
    return resize_images(np.repeat(gray[:, None], 3, axis=1), size), labels
