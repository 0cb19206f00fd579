"""``python -m ssad.report``: :func:`ssad.report.cli.main`."""

from ssad.report.cli import main

main()
