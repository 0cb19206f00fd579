"""Time budgets of the GPU check's sections: a section stops at its budget, keeps the figures it has, and the check
goes on to the next.

Two stops: :func:`check_time` at step boundaries (the step loops' batches, ``trainer.fit``'s batches, evaluation
chunks), and :func:`hard_stop`, a ``SIGALRM`` timer for one call that outlasts the budget on its own (compiling,
starting DataLoader workers). Both raise :class:`BudgetSpent`, a ``BaseException`` so that no ``except Exception``
on the way swallows it (Lightning re-raises it after tearing the fit down).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
REPEAT = 2.0  # seconds between further alarms once a budget is spent


class BudgetSpent(BaseException):
    """A section's time budget is spent."""


class NotApplicable(Exception):  # noqa: N818 (a reason to skip, not an error)
    """A section that does not apply here (its message says why); it is skipped."""


def check_time(deadline: float, what: str) -> None:
    """Raise :class:`BudgetSpent` naming ``what`` was about to start when ``time.monotonic()`` is past
    ``deadline``."""
    if time.monotonic() >= deadline:
        raise BudgetSpent(f"budget spent before {what}")


def until(deadline: float, what: str, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` that first checks the deadline (:func:`check_time`): wraps a step loop's ``next_batch``."""

    def checked() -> T:
        check_time(deadline, what)
        return fn()

    return checked


@contextmanager
def hard_stop(seconds: float) -> Iterator[None]:
    """Raise :class:`BudgetSpent` in the main thread once ``seconds`` have passed (``SIGALRM``), whatever runs, and
    again every :data:`REPEAT` seconds after (a raise inside a ``__del__`` or a lock's release is printed and
    ignored by Python); the timer and the previous handler are restored on exit. Elsewhere than the main thread
    of a POSIX process it does nothing (the step-boundary checks remain)."""
    if seconds <= 0:
        raise BudgetSpent("no time left")
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame: Any) -> None:
        raise BudgetSpent(f"budget of {seconds:.0f} s spent in the middle of a call")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
