"""Small synthetic histories shared by the features and training tests (generated once per session, in about
a second). Conftests import these fixtures so each package sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from features.synthetic import SyntheticHistory, generate, write_history

SIZE = {"quarters": 8, "leads_per_quarter": 1500}


@pytest.fixture(scope="session")
def history_size() -> dict[str, int]:
    """How the shared history was generated, for tests that check counts against it."""
    return dict(SIZE)


@pytest.fixture(scope="session")
def history() -> SyntheticHistory:
    return generate(**SIZE, seed=7)


@pytest.fixture(scope="session")
def history_files(history: SyntheticHistory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The history written as CSV and as Parquet, each with its truth and schema files beside it."""
    folder = tmp_path_factory.mktemp("history")
    csv = write_history(history, folder / "leads.csv")
    parquet = write_history(history, folder / "leads.parquet")
    return {"csv": csv["leads"], "parquet": parquet["leads"], "schema": csv["schema"], "truth_csv": csv["truth"]}
