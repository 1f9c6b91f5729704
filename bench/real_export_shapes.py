"""Hold a new user's path against two plain references on the shapes of real exports (issue 13).

    .venv/bin/python bench/real_export_shapes.py [--only slow,drift,small,leak] [--keep DIR]

For each synthetic scenario (short export with slow conversions, a base rate that triples in the last
two quarters, a small export, a leaky column with an innocent name) it writes the export (every quarter
but the last, outcomes as known at the export date) and the next quarter, whose outcomes are drawn
once from the generator's true probabilities (seeded), then runs the shared comparison script
(`../shared/eval/compare_references.py`: schema infer -> train -> score, against a one-hot logistic
regression and a default LightGBM trained on the same file). Prints each table and a summary line.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SHARED_SCRIPT = Path("shared") / "eval" / "compare_references.py"


def compare_script() -> Path:
    """`../shared/eval/compare_references.py` beside the checkout, or beside the main checkout when this
    is a git worktree (its common git folder is the main checkout's .git)."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    roots = [ROOT] + ([Path(found).parent] if found else [])
    for root in roots:
        if (root.parent / SHARED_SCRIPT).is_file():
            return root.parent / SHARED_SCRIPT
    raise SystemExit(f"no {SHARED_SCRIPT} beside {' or '.join(str(r) for r in roots)}")


SCENARIOS = {
    # the launch and the regional turn where a 12-month export can learn them (as in tests/training)
    "slow": {
        "quarters": 4,
        "leads_per_quarter": 3000,
        "seed": 21,
        "conversion_delay": "slow",
        "launch_quarter": 1,
        "expansion_quarter": 0,
    },
    "drift": {"quarters": 8, "leads_per_quarter": 2500, "seed": 22, "base_rate_shift": 3.0},
    "small": {"quarters": 9, "leads_per_quarter": 650, "seed": 23},
    "leak": {"quarters": 6, "leads_per_quarter": 2000, "seed": 24, "leak_column": "last_touch"},
}


def write_scenario(folder: Path, options: dict) -> tuple[Path, Path]:
    from features.synthetic import generate

    history = generate(**options)
    leads = history.leads.drop(columns=["lead_status"])
    quarter = pd.to_datetime(leads["created_at"]).dt.to_period("Q")
    nxt = quarter == quarter.max()
    train, test = leads[~nxt].copy(), leads[nxt].copy()
    truth = history.truth.set_index("lead_id").loc[test["lead_id"], "true_probability"].to_numpy()
    test["converted"] = (np.random.default_rng(options["seed"]).random(len(test)) < truth).astype(int)
    test = test.drop(columns=["converted_at"])
    # true/false with blanks: the references' one-hot encoder refuses a column of booleans and strings
    for frame in (train, test):
        for column in frame.columns:
            values = frame[column].dropna()
            if len(values) and values.map(lambda v: isinstance(v, (bool, np.bool_))).all():
                frame[column] = frame[column].map({True: 1.0, False: 0.0})
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    return folder / "train.csv", folder / "test.csv"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--keep", help="write the scenario files here and keep them")
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="export-shapes-"))
    leadscore = str(Path(sys.executable).parent / "leadscore")
    compare = compare_script()
    verdicts = []
    for name in args.only.split(","):
        train, test = write_scenario(base / name, SCENARIOS[name])
        done = subprocess.run(
            [
                sys.executable,
                str(compare),
                str(train),
                str(test),
                "--target",
                "converted",
                "--id",
                "lead_id",
                "--created-at",
                "created_at",
                "--leadscore",
                leadscore,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"== {name}: {SCENARIOS[name]}\n{done.stdout.strip()}", flush=True)
        if not done.stdout.strip():
            print(f"compare_references exited {done.returncode}: {done.stderr.strip()[-2000:]}", flush=True)
        verdicts.append(f"{name}: {(done.stdout.strip().splitlines() or ['no output'])[-1]}")
    print("\n".join(verdicts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
