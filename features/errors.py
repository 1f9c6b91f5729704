"""Errors a user can act on: each carries one readable line naming the field and the problem."""

from __future__ import annotations


class LeadscoreError(Exception):
    """Base for every error the CLI prints as one line and the API returns as a 4xx body."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def __str__(self) -> str:
        return self.args[0]


class SchemaError(LeadscoreError):
    """The lead schema YAML is malformed or inconsistent."""


class DataError(LeadscoreError):
    """A data file cannot be read, or does not fit its schema."""


class TrainingError(LeadscoreError):
    """Training cannot produce a trustworthy model from the given data."""


class ModelNotFoundError(LeadscoreError):
    """No bundle at the given path, version or alias."""
