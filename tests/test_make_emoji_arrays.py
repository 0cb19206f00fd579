"""tools/make_emoji_arrays.py on a tarball written in the npm package's real layout (emoji.json and 64×64 PNGs)."""

import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent.parent / "tools"))
from make_emoji_arrays import CATEGORIES, main  # noqa: E402


def add(tarball: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tarball.addfile(info, io.BytesIO(data))


def png(red: int, alpha: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (64, 64), (red, 0, 0, alpha)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_labels_the_emoji_by_category_on_white_and_splits_them(tmp_path):
    # 5 emoji per category, the red channel of category k at 20·k; one more without a Google image
    entries = [{"image": f"{k}-{i}.png", "category": name, "sort_order": 10 * k + i, "has_img_google": True}
               for k, name in enumerate(CATEGORIES) for i in range(5)]
    entries.append({"image": "none.png", "category": CATEGORIES[0], "sort_order": 999, "has_img_google": False})
    with tarfile.open(tmp_path / "e.tgz", "w:gz") as tarball:
        add(tarball, "package/emoji.json", json.dumps(entries).encode())
        for e in entries[:-1]:
            k = CATEGORIES.index(e["category"])
            add(tarball, f"package/img/google/64/{e['image']}", png(20 * k, 255 if k else 0))
    main(str(tmp_path / "e.tgz"), str(tmp_path / "out"))
    tr_x, tr_y, te_x, te_y = (np.load(tmp_path / "out" / f"{n}.npy") for n in ("tr_x", "tr_y", "te_x", "te_y"))
    n = 5 * len(CATEGORIES)
    assert tr_x.shape == (n * 4 // 5, 32, 32, 3) and len(te_x) == n - n * 4 // 5 and tr_x.dtype == np.uint8
    for x, y in ((tr_x, tr_y), (te_x, te_y)):
        opaque = y > 0
        assert np.array_equal(x[opaque, 5, 7, 0], 20 * y[opaque])  # images keep their category's label
        assert (x[~opaque] == 255).all()  # a transparent emoji is white, not black
    every = np.repeat(np.arange(len(CATEGORIES)), 5).tolist()
    assert sorted(np.concatenate([tr_y, te_y]).tolist()) == every  # each emoji once
