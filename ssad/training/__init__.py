"""The training run: callbacks, loggers and the run folder."""
