"""The README's console examples come from real runs: each output block follows a comment naming the
commands that produce it, `make readme` re-runs them and rewrites the blocks, and tests/test_readme.py
compares every block with a real run, so the examples cannot drift from what the commands print.

A marked block in README.md:

    <!-- example train-summary: `make readme` writes the block below from this run
    setup: leadscore generate --quarters 12 --leads-per-quarter 4000 --seed 11
    run: leadscore train
    -->
    ```
    trained lead-conversion version 1 as of 2026-09-30 in 34s (...)
    ```

Each example runs in a fresh empty folder with the project's defaults (no LEADSCORE_* or MLFLOW_*
variable, so the MLflow store is `mlflow.db` there), with bash and this checkout's `leadscore` first on
PATH. `setup:` lines must succeed and print nothing into the block; the block is the output (stdout and
stderr, as a terminal shows them) of the `run:` lines, in order. Values that legitimately differ from
run to run (durations, run ids, fingerprints) are compared through `normalise`.
"""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_MARKED = re.compile(
    r"<!-- example (?P<name>[\w-]+)[^\n]*\n(?P<steps>.*?)-->\n```(?P<lang>[^\n]*)\n(?P<output>.*?)```",
    re.S,
)

# What may differ between two honest runs, each replaced by a named placeholder before comparing.
PLACEHOLDERS: tuple[tuple[str, str], ...] = (
    (r"\b[0-9a-f]{32}\b", "<run id>"),
    (r"\(inputs [0-9a-f]{12}\)", "(inputs <inputs fingerprint>)"),
    (r"\bin \d+s\b", "in <seconds>s"),
    (r"\bport \d+ on\b", "port <port> on"),
)


@dataclass(frozen=True)
class Example:
    name: str
    setup: tuple[str, ...]
    run: tuple[str, ...]
    output: str  # the block's text as the README has it
    span: tuple[int, int]  # where that text sits in the README


def examples(text: str) -> dict[str, Example]:
    """Every marked block of the README text, by name."""
    found: dict[str, Example] = {}
    for match in _MARKED.finditer(text):
        steps = [line.strip() for line in match["steps"].splitlines() if line.strip()]
        kinds = {step.split(":", 1)[0] for step in steps}
        if not kinds <= {"setup", "run"} or "run" not in kinds:
            raise ValueError(f"README example {match['name']}: lines must start with setup: or run:, got {steps}")
        if match["name"] in found:
            raise ValueError(f"README example {match['name']} appears twice")
        found[match["name"]] = Example(
            name=match["name"],
            setup=tuple(step.split(":", 1)[1].strip() for step in steps if step.startswith("setup:")),
            run=tuple(step.split(":", 1)[1].strip() for step in steps if step.startswith("run:")),
            output=match["output"],
            span=match.span("output"),
        )
    return found


def normalise(text: str) -> str:
    """The text with run-to-run values replaced by their placeholders and trailing spaces removed."""
    for pattern, placeholder in PLACEHOLDERS:
        text = re.sub(pattern, placeholder, text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()) + "\n"


def environment() -> dict[str, str]:
    """The caller's environment without leadscore's and MLflow's settings, this checkout's tools first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADSCORE_", "MLFLOW_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "120"
    return env


def run(example: Example, folder: Path, *, timeout: float = 900) -> str:
    """Run the example's commands in `folder` (empty); the output of its `run:` lines."""
    env, shown = environment(), []
    for kind, command in [("setup", c) for c in example.setup] + [("run", c) for c in example.run]:
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        if kind == "setup" and done.returncode != 0:
            raise RuntimeError(f"README example {example.name}: setup `{command}` failed:\n{done.stdout}")
        if kind == "run":
            shown.append(done.stdout)
    return "".join(shown)


def rewrite(text: str, outputs: dict[str, str]) -> str:
    """The README text with the named examples' blocks replaced by the given outputs."""
    for example in sorted(examples(text).values(), key=lambda e: e.span, reverse=True):
        if example.name in outputs:
            start, end = example.span
            text = text[:start] + outputs[example.name].rstrip("\n") + "\n" + text[end:]
    return text


def difference(example: Example, actual: str) -> str | None:
    """None when the README's block equals `actual` up to run-to-run values; else a diff saying how to fix it."""
    expected, got = normalise(example.output), normalise(actual)
    if expected == got:
        return None
    diff = difflib.unified_diff(expected.splitlines(), got.splitlines(), "README.md", "real run", lineterm="")
    return f"README example {example.name} differs from a real run (`make readme` rewrites it):\n" + "\n".join(diff)


def main(names: list[str]) -> int:
    """`make readme [EXAMPLES="a b"]`: re-run every example (or the named ones) and rewrite the README."""
    text = README.read_text(encoding="utf-8")
    chosen = examples(text)
    unknown = set(names) - set(chosen)
    if unknown:
        print(f"no README example named {', '.join(sorted(unknown))} (known: {', '.join(chosen)})", file=sys.stderr)
        return 2
    outputs = {}
    for name, example in chosen.items():
        if names and name not in names:
            continue
        print(f"README example {name}: {' && '.join(example.setup + example.run)}", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix=f"readme-{name}-") as folder:
            outputs[name] = run(example, Path(folder))
    README.write_text(rewrite(text, outputs), encoding="utf-8")
    changed = [n for n, out in outputs.items() if normalise(out) != normalise(chosen[n].output)]
    print(f"rewrote {len(outputs)} README example(s); changed beyond run-to-run values: {changed or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
