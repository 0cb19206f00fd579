"""Numeric limits of the OOD scores that code without PyTorch needs too (the config schema checks them before any
work, e.g. when ``python -m ssad.score`` scores through onnxruntime alone)."""

# Eq. 6's smallest usable τ: exp(cos/τ) must stay below float64's largest value, e^709.8
MIN_TEMPERATURE = 1 / 700
