"""The features tests use the small synthetic histories in tests/support/histories.py."""

from support.histories import history, history_files, history_size

__all__ = ["history", "history_files", "history_size"]
