"""``python -m ssad.bench``: :func:`ssad.bench.cli.main`."""

from ssad.bench.cli import main

main()
