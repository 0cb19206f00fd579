"""The GPU check: every GPU figure in one call, each section within its time budget."""
