"""Small utilities: console output and atomic file writes."""
