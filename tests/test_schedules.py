import math

import pytest

from ssad.method.schedules import cosine, linear


def test_cosine_warmup_then_decay():
    values = [cosine(s, 100, 1.0, 0.0, warmup_steps=10, warmup_start=0.0) for s in range(101)]
    assert values[0] == 0.0 and values[5] == pytest.approx(0.5) and values[10] == pytest.approx(1.0)
    assert values[55] == pytest.approx(0.5, abs=1e-9)
    assert values[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_cosine_increasing_momentum_reaches_one():
    assert cosine(0, 50, 0.996, 1.0) == pytest.approx(0.996)
    assert cosine(50, 50, 0.996, 1.0) == pytest.approx(1.0)
    assert cosine(25, 50, 0.996, 1.0) == pytest.approx(0.998)


def test_linear_teacher_temperature():
    assert linear(0, 500, 0.055, 0.01) == pytest.approx(0.055)
    assert linear(499, 500, 0.055, 0.01) == pytest.approx(0.01)
    assert linear(1000, 500, 0.055, 0.01) == pytest.approx(0.01)
    assert math.isclose(linear(1, 3, 0.05, 0.01), 0.03)
