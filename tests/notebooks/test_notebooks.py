"""The analyst notebooks run top to bottom on small synthetic data, draw their charts, and are committed clean."""

from __future__ import annotations

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
    assert "from serving import analyst" in source
    assert "\ndef " not in f"\n{source}" and "\nclass " not in f"\n{source}"


def test_01_explore_leads(small_history, monkeypatch):
    monkeypatch.setenv("LEADSCORE_DATA", str(small_history / "data" / "leads.parquet"))
    notebook = execute("01-explore-leads.ipynb", small_history)
    assert images(notebook) == 3
    out = text_output(notebook)
    assert "12,000 leads" in out
    assert "quarters with outcomes still open: 2026Q3" in out
