"""User errors: problems with what a user gave (a value, a file, a folder) that the user can fix.

Every command runs its work through :func:`user_errors`, which prints a :class:`UserError`'s message as one
``error: ...`` line on stderr and exits with status 2, without a traceback: a traceback is for ssad's own bugs.
``HYDRA_FULL_ERROR=1`` (or ``SSAD_VERBOSE=1``) lets the error through with its traceback. In a sweep, a user error
fails its own job only: the other jobs run, then the sweep ends with the first failed job's overrides and error
line, exit status 1.

The subclasses also derive from the built-in exception they stand for (``ValueError``, ``FileNotFoundError``),
so code that catches those keeps working.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

USER_ERROR_STATUS = 2  # the shell's convention for a usage error; 1 stays for a failure of ssad itself


class UserError(Exception):
    """A problem the user can fix; its message names what is wrong, where, and the fix."""


class ConfigError(UserError, ValueError):
    """A config value that is out of range, of the wrong type or in conflict with another."""


class InputError(UserError, ValueError):
    """An input file or folder that cannot be used as it is (empty, unreadable, of another format)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named that does not exist."""


def verbose() -> bool:
    """Whether user errors keep their traceback (``HYDRA_FULL_ERROR=1`` or ``SSAD_VERBOSE=1``)."""
    return any(os.environ.get(name, "") not in ("", "0") for name in ("HYDRA_FULL_ERROR", "SSAD_VERBOSE"))


def exit_with(err: BaseException) -> None:
    """Print ``err`` as one ``error:`` line on stderr and exit with :data:`USER_ERROR_STATUS`; in one job of a
    sweep, fail that job alone (:class:`ssad.cli.sweep_errors.SweepJobError`) so that the sweep's other jobs run."""
    print(f"error: {err}", file=sys.stderr, flush=True)
    if _in_sweep():
        from ssad.cli.sweep_errors import SweepJobError

        raise SweepJobError(f"error: {err}") from None
    raise SystemExit(USER_ERROR_STATUS) from None


def _in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (any launcher)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode
    except ImportError:
        return False
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class _NeverRaisedError(Exception):
    """Stands for Hydra's ``InstantiationException`` where Hydra is not installed (nothing raises it then)."""


def _instantiation_exception() -> type[Exception]:
    """Hydra's ``InstantiationException``, imported when an error is matched against it: a detector scores images
    without Hydra installed (the training extra)."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:
        return _NeverRaisedError
    return InstantiationException


def user_errors(fn: F) -> F:
    """Run ``fn``; a :class:`UserError` becomes one ``error:`` line and exit status 2 (unless :func:`verbose`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except UserError as err:
            if verbose():
                raise
            exit_with(err)
        except _instantiation_exception() as err:  # Hydra wraps what a constructor raised: a user error stays one
            if verbose() or not isinstance(err.__cause__, UserError):
                raise
            exit_with(err.__cause__)

    return wrapper  # type: ignore[return-value]
