"""Cold start: from `leadscore serve` being started to its first explained answer, median of several starts.

Starts the server exactly as a user does (`python -m training.cli serve`, the champion from the MLflow
store in `--cwd` unless `--model` says otherwise), waits for /readyz, sends one lead to POST /v1/score
and times both from the moment the process was spawned. The first start of a new checkout compiles the
numba kernels into the cache; it is run once first and not counted (`--no-warm` counts it).

Then, in fresh interpreters, it splits the time the server spends before listening, wall and CPU
seconds: importing the web stack, resolving the model reference, loading the bundle (with the trees
flattened at training time, `forest.npz`), building the scorer (importing numba and loading the compiled
kernels; bundles without forest.npz also flatten model.txt here).

    python bench/cold_start.py --cwd .                  # the demo's store: mlflow.db and models/ in .
    python bench/cold_start.py --cwd . --starts 7 --model models/lead-conversion/1

Target (issue 9): <= 1.5 s to the first explained answer on an idle machine. The machine is shared:
the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peer import OURS_PATH, checkout_pythonpath, first_score_s, leadscore_server, ours_body

TARGET_S = 1.5
_HEAVY = "mlflow, lightgbm, sklearn, scipy.linalg, sqlalchemy, pandas"

_STAGES = """
import time, json, sys
t = [(time.perf_counter(), time.process_time())]
import training.cli, uvicorn
from serving.api.main import create_app
t.append((time.perf_counter(), time.process_time()))
from serving.model.registry import resolve, is_registry_uri, load_bundle
model = sys.argv[1]
if is_registry_uri(model):
    resolve(model)
t.append((time.perf_counter(), time.process_time()))
bundle = load_bundle(model, probe=True)
t.append((time.perf_counter(), time.process_time()))
from serving.model.scorer import Scorer
scorer = Scorer(bundle)
t.append((time.perf_counter(), time.process_time()))
heavy = [m for m in ("mlflow", "lightgbm", "sklearn", "scipy.linalg", "sqlalchemy", "numba", "pandas")
         if m in sys.modules]
names = ("imports", "resolve", "bundle", "scorer")
print(json.dumps({**{f"{n}_s": t[i + 1][0] - t[i][0] for i, n in enumerate(names)},
                  **{f"{n}_cpu_s": t[i + 1][1] - t[i][1] for i, n in enumerate(names)}, "modules": heavy}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cwd", type=Path, default=Path("."), help="folder with mlflow.db and models/ (the demo's)")
    parser.add_argument("--model", default="models:/lead-conversion@champion")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--no-warm", action="store_true", help="count the first start too (kernel cache cold)")
    args = parser.parse_args()
    cwd = args.cwd.resolve()
    tracking = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{cwd / 'mlflow.db'}"
    lead = _a_lead(cwd, args.model)
    load_before = os.getloadavg()[0]

    runs = []
    for i in range(args.starts + (0 if args.no_warm else 1)):
        with leadscore_server(tracking, cwd=cwd, model=args.model) as server:
            first = first_score_s(server, OURS_PATH, ours_body(lead))
            cpu = _cpu_s(server.process.pid)
        if i > 0 or args.no_warm:
            runs.append({"ready_s": server.ready_s, "first_answer_s": first, "cpu_s": cpu})
    stages = [_stages(cwd, args.model, tracking) for _ in range(max(3, args.starts // 2))]

    first = statistics.median(r["first_answer_s"] for r in runs)
    ready = statistics.median(r["ready_s"] for r in runs)
    cpu = statistics.median(r["cpu_s"] for r in runs)
    print(
        f"cold start, median of {len(runs)} starts: first explained answer {first:.2f} s (target {TARGET_S} s), "
        f"ready {ready:.2f} s, server CPU {cpu:.2f} s (steadier than wall time on a busy machine); each: "
        + ", ".join(f"{r['first_answer_s']:.2f}" for r in runs)
    )
    names = ("imports", "resolve", "bundle", "scorer")
    parts = {k: statistics.median(s[k] for s in stages) for n in names for k in (f"{n}_s", f"{n}_cpu_s")}
    print(
        f"before listening (median of {len(stages)} fresh interpreters): "
        + ", ".join(f"{n} {parts[n + '_s']:.2f} s ({parts[n + '_cpu_s']:.2f} CPU-s)" for n in names)
        + f"; heavy modules loaded: {', '.join(stages[0]['modules']) or 'none of ' + _HEAVY}"
    )
    print(
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"({os.cpu_count()} cores; above that, other work shared the machine)"
    )
    print(
        json.dumps(
            {
                "first_answer_s": first,
                "ready_s": ready,
                "cpu_s": cpu,
                "runs": runs,
                "stages": parts,
                "load_avg": [load_before, os.getloadavg()[0]],
            }
        )
    )
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stages(cwd: Path, model: str, tracking: str) -> dict:
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath(), "MLFLOW_TRACKING_URI": tracking}
    done = subprocess.run(
        [sys.executable, "-c", _STAGES, model], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _a_lead(cwd: Path, model: str) -> dict:
    """One lead with every schema field, from the served model's own schema."""
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}
    code = (
        "import json, sys\n"
        "from serving.model.registry import load_bundle\n"
        "from features.synthetic import generate\n"
        "schema = load_bundle(sys.argv[1]).schema\n"
        "frame = generate(quarters=1, leads_per_quarter=50, seed=3).leads\n"
        "cols = [schema.id_column, *[f for f in schema.feature_names if f in frame.columns]]\n"
        "print(frame[cols].iloc[:1].to_json(orient='records', date_format='iso'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, model], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])[0]


if __name__ == "__main__":
    raise SystemExit(main())
