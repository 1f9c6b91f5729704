"""The README's console examples are what the commands print today (tests/support/readme_examples.py).

Quick examples are run here as the README's comment says; the training ones are compared with the
session's trained model, which is the same command on the same data, so nothing is trained twice.
(The backtest's example is checked in tests/training/test_backtest.py, beside its fixture.)
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from support import readme_examples
from support.readme_examples import README, difference, examples

EXAMPLES = examples(README.read_text(encoding="utf-8"))
# Same command as the session's `trained_model` and `history_path`, so their output is this one's.
GENERATE_HISTORY = "leadscore generate --quarters {quarters} --leads-per-quarter {leads_per_quarter} --seed {seed}"
FROM_FIXTURES = {"train-summary", "train-unchanged", "backtest"}

# Console blocks that are not a marked example, and why.
UNMARKED = {
    "score:  42%": "a progress bar caught mid-run (it is drawn only on a terminal); its layout is "
    "features/progress.py's and tests/serving/reports/test_progress_cli.py runs it",
    "leadscore score: error: leads-1.csv (partition 1)": "needs a Dask cluster: "
    "test_distributed.py's test_cli_refuses_a_bad_part_with_one_line finds the line it printed in the README",
    "python bench/dask_scale.py": "a benchmark's measured figures, kept between its markers",
    "data: 1,000,008 leads": "a benchmark's measured figures, kept between its markers",
}


def console_blocks(text: str) -> list[tuple[int, str]]:
    """(offset, text) of every fenced block without a language: what a command printed."""
    blocks, opening, offset = [], None, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if opening is None:
                opening = (offset + len(line), line.strip() == "```")
            else:
                if opening[1]:
                    blocks.append((opening[0], text[opening[0] : offset]))
                opening = None
        offset += len(line)
    return blocks


def test_every_console_block_of_the_readme_is_a_checked_example() -> None:
    text = README.read_text(encoding="utf-8")
    checked = {example.span[0] for example in examples(text).values()}
    unchecked = [
        block.splitlines()[0]
        for start, block in console_blocks(text)
        if start not in checked and not block.startswith(tuple(UNMARKED))
    ]
    assert not unchecked, f"README output blocks with no <!-- example --> comment: {unchecked}"
    assert set(EXAMPLES) >= FROM_FIXTURES


@pytest.mark.parametrize("name", sorted(set(EXAMPLES) - FROM_FIXTURES))
def test_the_example_is_what_its_commands_print(name: str, tmp_path: Path) -> None:
    example = EXAMPLES[name]
    problem = difference(example, readme_examples.run(example, tmp_path, timeout=300))
    assert problem is None, problem


def test_the_training_summary_is_what_leadscore_train_prints(trained_model, train_history_size) -> None:
    example = EXAMPLES["train-summary"]
    assert example.setup == (GENERATE_HISTORY.format(**train_history_size),) and example.run == ("leadscore train",)
    # The fixture trained in its own folder; `leadscore train` there prints paths relative to it.
    folder = f"{trained_model.models_dir.parent}/"
    problem = difference(example, trained_model.result.summary().replace(folder, ""))
    assert problem is None, problem


def test_training_again_on_the_same_data_says_unchanged(
    trained_model, train_history_size, registry_copy: str, tmp_path: Path
) -> None:
    """The trained store copied to tmp_path/mlflow.db, the default store of a command run there."""
    example = EXAMPLES["train-unchanged"]
    assert example.setup == (GENERATE_HISTORY.format(**train_history_size), "leadscore train")
    assert registry_copy == f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "data").mkdir()
    for path in (trained_model.data_path, trained_model.schema_path):
        shutil.copyfile(path, tmp_path / "data" / path.name)
    problem = difference(example, readme_examples.run(replace(example, setup=()), tmp_path, timeout=300))
    assert problem is None, problem
