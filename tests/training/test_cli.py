"""`leadscore generate`, `schema infer` and `validate` from the command line: exit codes and what users read."""

from __future__ import annotations

import argparse
from importlib import metadata
from pathlib import Path

import pandas as pd
import pytest

from features.schema import load_schema
from features.synthetic import bundled_schema
from training.cli import build_parser, main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_leads_truth_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data" / "leads.csv"
    code, stdout, _ = run(capsys, "generate", "--quarters", "2", "--leads-per-quarter", "300", "--out", str(out))
    assert code == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["leads.csv", "leads.schema.yaml", "leads.truth.csv"]
    assert len(pd.read_csv(out)) == 600
    assert load_schema(out.parent / "leads.schema.yaml") == bundled_schema()
    assert stdout.startswith("wrote 600 leads (")


def test_validate_passes_a_clean_file_and_finds_its_schema_beside_it(
    history_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run(capsys, "validate", str(history_files["parquet"]))
    assert code == 0 and stderr == ""
    assert stdout.splitlines()[0] == (
        f"leads.parquet: 12,000 rows, 32 columns, checked against {history_files['schema']}"
    )
    assert stdout.splitlines()[-1] == "OK: 0 errors, 0 warnings"


def test_validate_exits_2_and_lists_each_planted_fault(
    history_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = pd.read_csv(history_files["csv"], dtype=str, nrows=200)
    frame.loc[4, "industry"] = "Software"
    frame.loc[6, "lead_id"] = frame.loc[5, "lead_id"]
    frame.loc[8, "converted"] = "perhaps"
    path = tmp_path / "faulty.csv"
    frame.to_csv(path, index=False)
    code, stdout, _ = run(capsys, "validate", str(path), "--schema", str(history_files["schema"]))
    assert code == 2
    assert "ERROR    industry: 1 value not allowed" in stdout
    assert "         row 5 (id=value: L00000005='Software')" in stdout
    assert "ERROR    lead_id: 2 rows share 1 id (ids must be unique)" in stdout
    assert "ERROR    converted: 1 value not in the schema's positive or negative values (0, 1)" in stdout
    assert stdout.splitlines()[-1].startswith("FAILED: 3 errors, 0 warnings")


def test_warnings_do_not_fail_validate(
    history_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "extra.csv"
    pd.read_csv(history_files["csv"], dtype=str, nrows=50).assign(notes="call back").to_csv(path, index=False)
    code, stdout, _ = run(capsys, "validate", str(path))
    assert code == 0
    assert "WARNING  1 column not in the schema, ignored: notes" in stdout


def test_schema_infer_writes_a_loadable_draft(
    history_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "drafts" / "mine.schema.yaml"
    code, stdout, _ = run(
        capsys, "schema", "infer", str(history_files["csv"]), "--target", "converted", "--out", str(out)
    )
    assert code == 0
    schema = load_schema(out)
    assert set(schema.excluded) == {"lead_status"}
    assert stdout.splitlines()[0] == (f"wrote {out}: 24 features, 1 column left out, possible leakage in lead_status")
    assert [p.name for p in out.parent.iterdir()] == ["mine.schema.yaml"]


def test_schema_infer_prints_the_draft_without_out(
    history_files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, _ = run(
        capsys,
        "schema",
        "infer",
        str(history_files["parquet"]),
        "--target",
        "converted",
        "--id",
        "lead_id",
        "--positive",
        "1",
    )
    assert code == 0
    assert stdout.startswith("# Drafted by `leadscore schema infer leads.parquet`")
    assert "  lead_status: possible leakage, sales fills in fields like this after contact" in stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "bad.csv: the file is empty"),
        ("lead_id,converted\n", "bad.csv: the file has a header but no rows"),
        (
            "lead_id;converted;industry\nL1;1;retail\n",
            "bad.csv: the header is one column 'lead_id;converted;industry'; the file seems separated by semicolons",
        ),
        ("name,age\nann,3\n", "bad.csv: none of the schema's columns are in the file (found: name, age)"),
    ],
)
def test_validate_bad_files_print_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    code, stdout, stderr = run(capsys, "validate", str(path))
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr.startswith("leadscore validate: error: ") and message in stderr


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "{dir}/absent.parquet"], "data file not found"),
        (["validate", "{csv}", "--schema", "{dir}/absent.yaml"], "schema file not found"),
        (["schema", "infer", "{csv}", "--target", "Converted"], "target column 'Converted' is not in the data"),
        (["schema", "infer", "{csv}", "--target", "lead_source"], "cannot tell which values of 'lead_source'"),
        (["generate", "--quarters", "0", "--out", "{dir}/x.csv"], "quarters and leads-per-quarter must be at least 1"),
    ],
)
def test_impossible_requests_print_one_line(
    history_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    filled = [a.format(dir=tmp_path, csv=history_files["csv"]) for a in argv]
    code, _, stderr = run(capsys, *filled)
    assert code == 2
    assert stderr.count("\n") == 1 and message in stderr and "Traceback" not in stderr


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"leadscore {metadata.version('leadscore')}"


def _commands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(parser.prog, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _commands(sub)
    return found


def test_every_option_of_every_command_says_what_it_does_and_its_default() -> None:
    for prog, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction):
                continue
            assert action.help, f"{prog} {action.dest} has no help text"
            if action.option_strings and not action.required and action.default not in (None, False, argparse.SUPPRESS):
                assert (
                    "(default: %(default)s)" in parser.formatter_class(prog)._get_help_string(action)
                    or "default" in action.help
                ), f"{prog} {action.dest} does not show its default"
    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    assert "(default: data/leads.parquet)" in " ".join(text.split())
