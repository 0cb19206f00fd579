"""Where the files of a benchmark set come from: the official downloads, and the checks every locator shares
(the split is one the set has; the files are there, fetched, or named in the error with the fix).

``fetch=False`` never downloads and is the cheap start-up check; the readers themselves locate with
``fetch=True``, which downloads where ``download=True`` and the files are missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ssad.cli.errors import ConfigError, MissingFileError


@dataclass(frozen=True)
class Download:
    """An official download: an archive extracted into the root, or a single file saved there."""

    url: str
    md5: str
    extract: bool = True

    def fetch(self, root: Path) -> None:
        from torchvision.datasets.utils import download_and_extract_archive, download_url

        try:
            if self.extract:
                download_and_extract_archive(self.url, str(root), md5=self.md5)
            else:
                download_url(self.url, str(root), md5=self.md5)
        except (OSError, RuntimeError) as err:  # no network, HTTP errors (URLError), md5 mismatch
            raise MissingFileError(f"could not download {self.url} into {root} ({err}); fetch it by hand, "
                                   "place it there (extracted) and set download=false") from err


CIFAR10_DOWNLOAD = Download("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                            "c58f30108f718f92721af3b95e74349a")
CIFAR100_DOWNLOAD = Download("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                             "eb9058c3a382ffc7106e4002c42a8d85")
SVHN_DOWNLOADS = {
    "train": Download("http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                      "e26dedcc434d2e4c54c9b2d4a06d8373", extract=False),
    "test": Download("http://ufldl.stanford.edu/housenumbers/test_32x32.mat",
                     "eb5a983be6a315427106f1b164d9cef3", extract=False),
    "extra": Download("http://ufldl.stanford.edu/housenumbers/extra_32x32.mat",
                      "a93ce644f1a588dc4d68dda5feec44a7", extract=False),
}
STL10_DOWNLOAD = Download("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                          "91f7769df0f17e558f3565bffb0c7dfb")
DTD_DOWNLOAD = Download("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",
                        "fff73e5086ae6bdbea199a49dfb8a4c1")
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's first mirror of the MNIST files
MNIST_DOWNLOADS = {name: Download(f"{MNIST_MIRROR}{name}.gz", md5, extract=False) for name, md5 in (
    ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
)}


def require(files: list[Path], root: str, source: Download, download: bool, fetch: bool,
            how: str) -> list[Path]:
    """``files`` when they all exist. Missing ones are downloaded when ``download`` (and ``fetch``; without
    it they are expected to be downloaded later), else a MissingFileError names them and the fix."""
    missing = [f for f in files if not f.exists()]
    if missing and download:
        if not fetch:
            return files
        source.fetch(Path(root))
        missing = [f for f in files if not f.exists()]
    if missing:
        raise MissingFileError(f"missing {', '.join(str(f) for f in missing)}; {how} (from {source.url}), "
                               "or set download=true where the network allows")
    return files


def check_split(split: str, choices: Sequence[str], dataset: str) -> None:
    """A :class:`ConfigError` naming the split and the choices when ``split`` is not one of ``choices``."""
    if split not in choices:
        raise ConfigError(f"{dataset}: split={split!r}; choose one of {list(choices)}")
