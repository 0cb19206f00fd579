"""Readers of image sources: folders, arrays, benchmark files, embedded sets, and their cache."""
