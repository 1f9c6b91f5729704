"""The analyst notebooks run top to bottom on small synthetic data, draw their charts, and are committed clean."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from features.synthetic import generate, write_history

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ALL_NOTEBOOKS = sorted(NOTEBOOKS.glob("*.ipynb"))


def execute(name: str, workdir: Path) -> nbformat.NotebookNode:
    """Run a notebook in `workdir` with the current environment (LEADSCORE_DATA, MLFLOW_TRACKING_URI)."""
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(notebook, timeout=180, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


def images(notebook: nbformat.NotebookNode) -> int:
    return sum("image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", []))


def text_output(notebook: nbformat.NotebookNode) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def small_history(tmp_path_factory) -> Path:
    """A working folder whose data/leads.parquet is a small synthetic history with its schema."""
    workdir = tmp_path_factory.mktemp("notebook-data")
    write_history(generate(quarters=8, leads_per_quarter=1500, seed=7), workdir / "data" / "leads.parquet")
    return workdir


@pytest.fixture()
def with_champion(trained_model, tmp_path, monkeypatch) -> Path:
    """A working folder whose defaults point at the session's trained champion and its history.

    `trained_model` (tests/conftest.py) is read-only here: the notebooks only read the registry.
    """
    monkeypatch.setenv("LEADSCORE_DATA", str(trained_model.data_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_model.tracking_uri)
    return tmp_path


def test_expected_notebooks_exist():
    assert [p.stem for p in ALL_NOTEBOOKS] == ["01-explore-leads", "02-model-quality",
                                               "03-lead-quality-by-campaign", "04-quarterly-retraining",
                                               "05-shared-kpis"]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebooks_carry_no_outputs(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, "a notebook with no code"
    assert all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_import_the_package_instead_of_redefining_logic(path):
    notebook = nbformat.read(path, as_version=4)
    source = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert "from serving.reports import analyst" in source
    assert "\ndef " not in f"\n{source}" and "\nclass " not in f"\n{source}"


def test_01_explore_leads(small_history, monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATA", str(small_history / "data" / "leads.parquet"))
    notebook = execute("01-explore-leads.ipynb", small_history)
    assert images(notebook) == 3
    out = text_output(notebook)
    assert "12,000 leads" in out
    assert "quarters with outcomes still open: 2026Q3" in out


def test_02_model_quality_reproduces_the_logged_metrics(with_champion, trained_model):
    notebook = execute("02-model-quality.ipynb", with_champion)
    assert images(notebook) == 5
    out = text_output(notebook)
    assert f"champion version {trained_model.version}" in out
    # The holdout rebuilt in the notebook gives the figures the training run logged.
    rows = dict(re.findall(r"^(roc_auc|log_loss|ece)\s+(\S+\s+\S+)$", out, flags=re.MULTILINE))
    assert set(rows) == {"roc_auc", "log_loss", "ece"}
    for pair in rows.values():
        recomputed, logged = map(float, pair.split())
        assert recomputed == pytest.approx(logged, abs=1e-4)


def test_03_lead_quality_by_campaign(with_champion):
    notebook = execute("03-lead-quality-by-campaign.ipynb", with_champion)
    assert images(notebook) == 3
    out = text_output(notebook)
    assert "2026Q3: 4,000 leads" in out and "conversions expected" in out
    assert "ai-assistant-launch" in out and "most frequent top lowering reasons" in out


def test_04_quarterly_retraining(with_champion, monkeypatch):
    monkeypatch.setenv("LEADSCORE_BACKTEST_FROM", "2026Q1")  # two quarters keep the replay short
    notebook = execute("04-quarterly-retraining.ipynb", with_champion)
    assert images(notebook) == 3
    out = text_output(notebook)
    assert "product_interest" in out
    assert "2026Q1" in out and "2026Q2" in out


def test_05_shared_kpis_names_the_planted_sellers(with_champion):
    from features.synthetic import STRONG_OWNER, WEAK_OWNER

    notebook = execute("05-shared-kpis.ipynb", with_champion)
    assert images(notebook) == 2
    out = text_output(notebook)
    assert f"{STRONG_OWNER}: " in out and "above expectation" in out
    assert f"{WEAK_OWNER}: " in out and "below expectation" in out
