"""Deployment: the detector file, checkpoints read back safely, and loading files without running code."""
