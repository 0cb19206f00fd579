"""Scoring and evaluation: features, the OOD scores, metrics, the evaluation of a network, diagnostics, and the
raw-pixel and untrained-network baselines."""
