"""The static HTML report of ``python -m ssad.score ... report=DIR`` (issue 36): the flagged images beside their
nearest training images, no script, no network."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssad.deploy.detector import Detector
from ssad.score import score_images
from tests.conftest import HANG_S, compose_command
from tests.test_onnx import random_images, tiny_detector


class _Page(HTMLParser):
    """The tags, image sources and link targets of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sources: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "img":
            self.sources.append(values["src"] or "")
        for key in ("href", "src"):
            if values.get(key):
                self.links.append(values[key] or "")


def _folder(root: Path, detector: Detector) -> Path:
    """Six images like the training ones and three far from them (inverted and flat)."""
    root.mkdir()
    normal = random_images(6, detector.data_size, 1).numpy()  # the bank's own images: score low
    odd = np.stack([255 - normal[0], np.full_like(normal[1], 128), normal[2][:, ::-1, ::-1] // 4])
    for i, image in enumerate([*normal, *odd]):
        name = f"normal{i}.png" if i < 6 else f"odd{i - 6}.png"
        Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0))).save(root / name)
    return root


def _score(tmp_path: Path, detector_path: Path, folder: Path, report: Path, *more: str):
    return score_images(compose_command("score", f"detector={detector_path}", f"input={folder}",
                                        f"out={tmp_path}/scores.csv", f"report={report}", "device=cpu", *more))


def test_report_shows_flagged_images_beside_their_nearest_training_images(tmp_path):
    detector = tiny_detector("cnn_small")
    detector.save(tmp_path / "detector.pt")
    folder = _folder(tmp_path / "new", detector)
    names, scores, flags = _score(tmp_path, tmp_path / "detector.pt", folder, tmp_path / "report", "tpr=0.5")
    text = (tmp_path / "report" / "index.html").read_text()
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "<script" not in text.lower()
    assert not re.search(r"https?://", text), "the report must read offline"
    assert all(not link.startswith(("/", "file:")) and (tmp_path / "report" / link).is_file() for link in page.links)
    flagged = [n for n, f in zip(names, flags.tolist()) if f]
    assert flagged, "the test needs flagged images"
    for name in flagged:
        assert f"{name}: score" in text
    loaded = Detector.load(tmp_path / "detector.pt", device="cpu")
    most = int(np.argmax(scores.numpy()))
    index, similarity = loaded.neighbours(torch.from_numpy(np.stack([np.asarray(Image.open(folder / names[most])
                                                                          .convert("RGB")).transpose(2, 0, 1)])))
    row = text[text.index(f"{names[most]}: score"):].split('<div class="row">')[0]
    for m, cos in zip(index[0].tolist(), similarity[0].tolist()):
        assert f"training #{m}: cosine {cos:.3f}" in row
        assert (tmp_path / "report" / "img" / f"train{m}.png").is_file()
    assert f"{int(flags.sum())} ({100 * flags.double().mean():.1f}%)" in text
    assert "calibrated on 30 in-distribution images" in text and "held-out AUROC (photos)" in text
    assert "binomial standard error" in text
    assert text.index("most anomalous") < text.index("most normal images")
    assert (tmp_path / "report" / "histogram.png").stat().st_size > 0


def test_report_without_thumbnails_shows_scores_and_says_why(tmp_path):
    detector = tiny_detector("cnn_small", thumbnails=False)
    detector.save(tmp_path / "detector.pt")
    folder = _folder(tmp_path / "new", detector)
    _score(tmp_path, tmp_path / "detector.pt", folder, tmp_path / "report", "tpr=0.5")
    text = (tmp_path / "report" / "index.html").read_text()
    assert "keeps no thumbnails of its 40 training images" in text and "thumbnails_max=40" in text
    assert "training #" not in text and "odd0.png: score" in text


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_report_renders_offline_in_headless_chromium(tmp_path):
    detector = tiny_detector("cnn_small")
    detector.save(tmp_path / "detector.pt")
    _score(tmp_path, tmp_path / "detector.pt", _folder(tmp_path / "new", detector), tmp_path / "report", "tpr=0.5")
    shot = tmp_path / "page.png"
    done = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000",
                           f"--screenshot={shot}", (tmp_path / "report" / "index.html").as_uri()],
                          capture_output=True, text=True, timeout=HANG_S)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as page:
        colours = page.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50  # a drawn page, not a blank one
