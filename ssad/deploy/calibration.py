"""How far a detector's threshold can be trusted: how many in-distribution images calibrated it and the uncertainty
of the share it accepts. Torch-free, shared by the ``.pt`` detector and the onnxruntime one."""

from __future__ import annotations

import math

from ssad.cli.errors import ConfigError, InputError

MIN_CALIBRATION = 200  # in-distribution images below which a threshold is called a guess


def calibration_uncertainty(n: int, tpr: float) -> float:
    """The standard error of the share of in-distribution images that a threshold set at ``tpr`` on ``n``
    calibration images accepts on new ones (binomial: √(tpr·(1 − tpr)/n))."""
    return math.sqrt(tpr * (1 - tpr) / max(n, 1))


def calibration_note(n: int, tpr: float, reexport: str) -> str | None:
    """A warning when the threshold rests on fewer than :data:`MIN_CALIBRATION` in-distribution images (``n``),
    else None; ``reexport`` says how to make the detector file again."""
    if n >= MIN_CALIBRATION:
        return None
    if n == 0:
        return f"this detector file holds no calibration scores, so its threshold cannot be checked; {reexport}"
    return (f"the threshold was calibrated on only {n} in-distribution images (fewer than {MIN_CALIBRATION}): "
            f"the share of normal images it accepts is a guess, ±{100 * calibration_uncertainty(n, tpr):.0f} "
            f"points around {100 * tpr:.0f}%; how many it needs: docs/howto/own-images.md#threshold-calibration")


def check_threshold_request(tpr: float, has_calibration: bool, reexport: str) -> None:
    """Raise a user error when ``tpr`` is no share in (0, 1] or the detector keeps no calibration scores to pick a
    threshold from."""
    if not 0 < tpr <= 1:
        raise ConfigError(f"tpr={tpr} must be a share in (0, 1], e.g. 0.95 or 0.99")
    if not has_calibration:
        raise InputError(f"this detector file holds no calibration scores, so tpr= cannot pick a threshold; "
                         f"{reexport}")
