"""The user error of one job of a Hydra sweep, raised instead of exiting (:func:`ssad.cli.errors.exit_with`).

Hydra's sweepers record an ``Exception`` raised by a job and run the sweep's other jobs; an exit would stop them
all (and, under the joblib launcher, break its worker pool). After the batch, the sweeper raises the first failed
job's exception; as a ``CompactHydraException`` it prints as its one ``error:`` line, without a traceback, and the
sweep exits with status 1. Its own module, so that :mod:`ssad.cli.errors` imports no Hydra (a detector scores
images without it), and at top level, so that joblib's workers can send it back pickled.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class SweepJobError(CompactHydraException):
    """A user error in one job of a sweep; its message is the job's ``error:`` line."""
