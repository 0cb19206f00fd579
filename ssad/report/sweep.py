"""The report at the end of a sweep: a Hydra callback, so that one command trains a sweep and reports it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ssad.cli.errors import UserError
from ssad.report.cli import print_tables, write_report
from ssad.report.runs import collect_runs

log = logging.getLogger(__name__)


class SweepReport(Callback):
    """When a multirun ends, what ``python -m ssad.report SWEEP_DIR`` writes, in ``SWEEP_DIR/report``, with its
    Markdown tables printed. Listed before ``SweepBaselines`` in a preset (Hydra calls the end callbacks in reverse
    order), so that the sweep's ``baselines.json`` is written first. A report that cannot be made is a warning with
    the command that makes it again: the runs themselves are done and kept."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        try:
            paths = write_report(collect_runs(sweep), sweep / "report")
        except (UserError, OSError, ValueError) as err:
            log.warning("no report of %s: %s; once that is fixed: python -m ssad.report %s", sweep, err, sweep)
            return
        print_tables(paths)
        log.info("wrote the report to %s (again, or of part of the runs: python -m ssad.report %s)",
                 sweep / "report", sweep)
