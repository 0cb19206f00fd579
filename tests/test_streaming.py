"""``python -m ssad.score`` streams its input (issue 36 item 4): a folder or array read, resized and scored a chunk at
a time gives the same CSV and report as one chunk, and the report keeps only the images it shows."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import torch
from PIL import Image

import ssad.score
from ssad.deploy.detector import Detector
from ssad.deploy.html_report import NORMAL, SHOWN
from ssad.deploy.inputs import resize_to
from ssad.method.backbones import build_backbone
from ssad.score import ReportImages, score_images
from tests.conftest import compose_command

SIZE = 16


def _images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    """Smooth random uint8 images (N, 3, size, size), so that features differ between images."""
    coarse = np.random.default_rng(seed).integers(0, 256, (n, 3, 4, 4), dtype=np.uint8)
    return resize_to(coarse, size)


@pytest.fixture(scope="module")
def detector_path(tmp_path_factory) -> str:
    """A small-CNN detector on random images, with calibration scores, a threshold and thumbnails."""
    args = {"builder": "small_cnn", "width": 8, "depth": 3, "layer_norm": True}
    torch.manual_seed(0)
    plain = dict(args)
    backbone = build_backbone(plain.pop("builder"), **plain).eval()
    train = _images(30, 1)
    detector = Detector(backbone, torch.zeros(1, 1), args, SIZE, SIZE, 0.04, 0.0,
                        meta={"threshold_tpr": 0.5, "threshold_from": "test"})
    detector.bank = detector.features(torch.from_numpy(train)).half()
    detector.calibration = detector.score(torch.from_numpy(_images(20, 2)))
    detector.threshold = float(detector.calibration.median())
    detector.thumbnails = torch.from_numpy(train)
    path = tmp_path_factory.mktemp("streaming") / "detector.pt"
    detector.save(path)
    return str(path)


def _folder(root, n: int = 11):
    """``n`` PNGs in two subfolders, of two sizes (half are resized on reading)."""
    for i, image in enumerate(_images(n, 3, 20)):
        picture = image if i % 2 else resize_to(image[None], SIZE)[0]
        folder = root / ("a" if i < n // 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.ascontiguousarray(picture.transpose(1, 2, 0))).save(folder / f"img{i:02d}.png")
    return root


@pytest.fixture
def chunk_sizes(monkeypatch) -> list[int]:
    """The sizes of the chunks that score_images reads, recorded through the real reader."""
    sizes: list[int] = []
    real = ssad.score.input_chunks

    def recording(*args, **kwargs):
        total, chunks = real(*args, **kwargs)

        def recorded():
            for names, images in chunks:
                sizes.append(len(images))
                yield names, images
        return total, recorded()

    monkeypatch.setattr(ssad.score, "input_chunks", recording)
    return sizes


def _score(tmp_path, detector_path, source, name, chunk=None, *more):
    out = tmp_path / f"{name}.csv"
    result = score_images(compose_command("score", f"detector={detector_path}", f"input={source}", f"out={out}",
                                          f"report={tmp_path / name}", "device=cpu", "batch_size=2", *more),
                          chunk=chunk)
    return out.read_text(), (tmp_path / name / "index.html").read_text(), result


def test_a_folder_scored_in_chunks_gives_the_csv_and_report_of_one_chunk(detector_path, tmp_path, chunk_sizes):
    folder = _folder(tmp_path / "images")
    whole_csv, whole_page, (names, scores, flags) = _score(tmp_path, detector_path, folder, "whole")
    assert chunk_sizes == [11]
    chunk_sizes.clear()
    text, page, (chunked_names, chunked_scores, chunked_flags) = _score(tmp_path, detector_path, folder, "chunked", 4)
    assert chunk_sizes == [4, 4, 3]  # the chunked path, not one read of everything
    assert text == whole_csv and len(text.splitlines()) == 12
    assert chunked_names == names and torch.equal(chunked_scores, scores) and torch.equal(chunked_flags, flags)
    assert 0 < int(flags.sum()) < 11  # the report shows flagged images and normal ones
    assert page.replace("chunked", "whole") == whole_page
    assert sorted(p.name for p in (tmp_path / "chunked" / "img").iterdir()) == \
        sorted(p.name for p in (tmp_path / "whole" / "img").iterdir())


def test_an_array_scored_in_chunks_gives_the_csv_of_one_chunk(detector_path, tmp_path, chunk_sizes):
    np.save(tmp_path / "new.npy", _images(7, 4, 20).transpose(0, 2, 3, 1))  # HWC, resized on reading
    whole, _, _ = _score(tmp_path, detector_path, tmp_path / "new.npy", "whole")
    chunked, _, _ = _score(tmp_path, detector_path, tmp_path / "new.npy", "chunked", 2)
    assert chunk_sizes == [7, 2, 2, 2, 1]
    chunk_sizes.clear()
    _score(tmp_path, detector_path, tmp_path / "new.npy", "rounded", 3)
    assert chunk_sizes == [2, 2, 2, 1]  # a multiple of the batch size (2): the batches of one chunk
    assert chunked == whole and "new.npy[6]" in chunked


def test_unreadable_files_in_a_later_chunk(detector_path, tmp_path):
    folder = _folder(tmp_path / "images")
    (folder / "b" / "img07.png").write_bytes(b"\x89PNG cut short")
    with pytest.raises(ValueError, match=r"1 of the first 8 of 11 image files could not be read: .*img07.png.*"
                                         r"on_error=skip"):
        _score(tmp_path, detector_path, folder, "raised", 4)
    assert not (tmp_path / "raised.csv").exists()
    with pytest.warns(UserWarning, match=r"1 of 11 image files could not be read: .*img07.png") as caught:
        chunked, _, _ = _score(tmp_path, detector_path, folder, "chunked", 4, "on_error=skip")
    assert len([w for w in caught if "could not be read" in str(w.message)]) == 1  # once, at the end
    with pytest.warns(UserWarning, match="img07.png"):
        whole, _, _ = _score(tmp_path, detector_path, folder, "whole", None, "on_error=skip")
    # a skipped file shifts the batches: the same rows, scores equal to float32 rounding
    rows, whole_rows = _rows(chunked), _rows(whole)
    assert len(rows) == 10 and "b/img07.png" not in rows and rows.keys() == whole_rows.keys()
    assert all(rows[name] == pytest.approx(whole_rows[name], rel=1e-5) for name in rows)


def _rows(text: str) -> dict[str, float]:
    return {row["file"]: float(row["score"]) for row in csv.DictReader(io.StringIO(text))}


def test_report_images_keep_the_report_rows_of_the_whole_input():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, 500).astype(np.float64)  # many ties, across chunks
    images = rng.integers(0, 256, (500, 3, 2, 2), dtype=np.uint8)
    kept = ReportImages(SHOWN, NORMAL)
    for start in range(0, 500, 37):
        kept.offer(start, scores[start:start + 37], images[start:start + 37])
    order = np.argsort(-scores, kind="stable")  # the report's order
    wanted = {*order[:SHOWN].tolist(), *order[::-1][:NORMAL].tolist()}
    assert set(kept.index.tolist()) == wanted and len(kept.images) == len(wanted)
    for i in wanted:
        assert np.array_equal(kept[i], images[i])
    chosen = np.asarray(sorted(wanted))
    assert np.array_equal(kept[chosen], images[chosen])
