"""Training at full size: one million synthetic leads, the way `leadscore train` runs it.

    python bench/train_full.py                      # 12 quarters x 83,334 leads
    python bench/train_full.py --leads-per-quarter 8334 --keep /tmp/bench-train
    python bench/train_full.py --against /tmp/main --pairs 3   # before/after: another checkout, alternated

Prints wall and CPU time per stage (CPU: all threads of the process; it stretches far less than wall
time when other work shares the machine), peak memory of the training process, and the test-quarter
metrics next to the generator's true probabilities on the same leads. Training runs in a child
process so its peak memory is its own (not the generator's). The MLflow store is created before the clock starts:
its one-off schema migration is setup, not training.

`--against CHECKOUT` (another checkout of this repository, e.g. `git worktree add /tmp/main main`) trains
with that code and this one in turn on the same leads, `--pairs` times each (alternating which goes first,
each with a fresh MLflow store), and prints the medians side by side: on a shared machine load drifts, so
only pairs measured in one sitting compare, and CPU seconds more steadily than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before LightGBM loads: idle threads sleep, not spin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quarters", type=int, default=12)
    parser.add_argument("--leads-per-quarter", type=int, default=83_334)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", help="work in this folder and keep it (default: a temp folder, removed)")
    parser.add_argument("--against", metavar="CHECKOUT", help="also train with the code in this checkout, alternated")
    parser.add_argument("--pairs", type=int, default=2, help="with --against: runs of each")
    parser.add_argument("--child", nargs=2, metavar=("DATA", "URI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(Path(args.child[0]), args.child[1])

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="leadscore-bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        data, uri = _setup(work, args)
        if args.against:
            return _pairs(work, data, args)
        result = _run(data, uri, work)
        _print(result, result["process_seconds"], args)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _run(data: Path, uri: str, folder: Path, pythonpath: str | None = None) -> dict:
    """One training in a child process (with `pythonpath`: that checkout's code); its figures."""
    env = {**os.environ, "PYTHONPATH": pythonpath} if pythonpath else None
    started = time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--child", str(data), uri],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"training failed ({child.returncode}):\n{child.stdout}\n{child.stderr}")
    return {**json.loads(child.stdout.strip().splitlines()[-1]), "process_seconds": wall}


def _pairs(work: Path, data: Path, args: argparse.Namespace) -> int:
    """This code and the `--against` checkout's, alternated, each with a fresh store; medians side by side."""
    from mlflow import MlflowClient

    checkouts = {"against": str(Path(args.against).absolute()), "this": None}
    runs: dict[str, list[dict]] = {name: [] for name in checkouts}
    for k in range(args.pairs):
        for name in list(checkouts)[:: 1 if k % 2 == 0 else -1]:
            folder = work / f"{name}-{k + 1}"
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            uri = f"sqlite:///{folder / 'mlflow.db'}"
            MlflowClient(tracking_uri=uri).search_experiments()  # setup, not timed
            result = _run(data, uri, folder, checkouts[name])
            runs[name].append(result)
            model = result["metrics"]["model"]
            print(
                f"{name:8} run {k + 1}: train() {result['train_seconds']:.1f}s wall, {result['cpu_seconds']:.1f}s CPU "
                f"(process {result['process_seconds']:.1f}s), peak {result['peak_rss_gb']:.2f} GB, load "
                f"{result['load_average']:.1f}; ROC AUC {model['roc_auc']:.5f}, log loss {model['log_loss']:.5f}",
                flush=True,
            )
    print(f"\nmedians of {args.pairs} runs each ({args.against} vs this checkout):")
    print(f"{'':22}{'against':>9}{'this':>9}{'ratio':>8}")
    rows = [("train() wall", "train_seconds"), ("train() CPU", "cpu_seconds"), ("process wall", "process_seconds")]
    for label, key in rows:
        _median_row(label, [r[key] for r in runs["against"]], [r[key] for r in runs["this"]])
    for stage in runs["this"][0]["cpu_timings"]:
        before = [r["cpu_timings"].get(stage, 0.0) for r in runs["against"]]
        _median_row(f"  {stage}, CPU", before, [r["cpu_timings"][stage] for r in runs["this"]])
    return 0


def _median_row(label: str, before: list[float], after: list[float]) -> None:
    import statistics

    b, a = statistics.median(before), statistics.median(after)
    print(f"{label:22}{b:>8.1f}s{a:>8.1f}s{a / b if b else float('nan'):>7.2f}x")


def _setup(work: Path, args: argparse.Namespace) -> tuple[Path, str]:
    from mlflow import MlflowClient

    from features.synthetic import generate, write_history

    data = work / "leads.parquet"
    if not data.exists():
        started = time.perf_counter()
        history = generate(quarters=args.quarters, leads_per_quarter=args.leads_per_quarter, seed=args.seed)
        write_history(history, data)
        print(f"generated {len(history.leads):,} leads in {time.perf_counter() - started:.1f}s -> {data}")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    started = time.perf_counter()
    MlflowClient(tracking_uri=uri).search_experiments()
    print(f"MLflow store ready in {time.perf_counter() - started:.1f}s (setup, not timed)")
    return data, uri


def _child(data: Path, uri: str) -> int:
    """Run one training and print its figures as JSON on the last line."""
    import pandas as pd

    from features.loading import read_table
    from features.synthetic import truth_path_for
    from training.metrics import roc_auc
    from training.pipeline import train

    started, cpu_started = time.perf_counter(), _cpu_seconds()
    result = train(data, tracking_uri=uri, models_dir=data.parent / "models")
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux reports KiB
    print(result.summary())

    # The generator's truth on the same test leads: how close is the model to the best possible?
    from features.datasets import schema_for
    from training.pipeline import load_history
    from training.splits import label_at, time_split

    schema = schema_for(data, None)
    split = time_split(label_at(load_history(data, schema), schema), schema)
    truth = read_table(truth_path_for(data)).set_index("lead_id")
    true_p = truth.loc[split.test[schema.id_column].astype(str), "true_probability"].to_numpy()
    figures = {name: ev.scalars() for name, ev in result.evaluations.items() if ev is not None}
    print(
        json.dumps(
            {
                "train_seconds": seconds,
                "cpu_seconds": cpu,
                "load_average": os.getloadavg()[0],
                "peak_rss_gb": peak_gb,
                "timings": result.timings,
                "cpu_timings": result.cpu_timings,
                "rows": result.report.n_rows,
                "n_train": result.report.n_train,
                "n_test": result.report.n_test,
                "best_iteration": result.best_iteration,
                "calibration": result.calibration,
                "true_roc_auc": roc_auc(split.y_test, true_p),
                "metrics": figures,
                "pandas": pd.__version__,
            }
        )
    )
    return 0


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _print(result: dict, wall: float, args: argparse.Namespace) -> None:
    import lightgbm
    import mlflow

    model, base = result["metrics"]["model"], result["metrics"]["baseline"]
    print()
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, LightGBM {lightgbm.__version__}, "
        f"MLflow {mlflow.__version__}, pandas {result['pandas']}"
    )
    print(
        f"data: {result['rows']:,} leads ({args.quarters} quarters x {args.leads_per_quarter:,}); "
        f"train {result['n_train']:,}, test {result['n_test']:,}"
    )
    print(
        f"train() wall time: {result['train_seconds']:.1f}s (process {wall:.1f}s incl. imports); "
        f"CPU time {result['cpu_seconds']:.1f}s; peak memory {result['peak_rss_gb']:.2f} GB; "
        f"load average at the end {result['load_average']:.1f} (other work on the machine stretches wall time)"
    )
    print("stages: " + ", ".join(f"{k} {v:.1f}s" for k, v in result["timings"].items()))
    print("stages, CPU: " + ", ".join(f"{k} {v:.1f}s" for k, v in result["cpu_timings"].items()))
    print(f"trees: {result['best_iteration']}, calibration: {result['calibration']}")
    print(f"{'':10}{'ROC AUC':>9}{'PR AUC':>9}{'log loss':>10}{'Brier':>8}{'ECE':>8}{'lift@10%':>10}")
    for name, m in (("model", model), ("baseline", base)):
        print(
            f"{name:10}{m['roc_auc']:>9.4f}{m['pr_auc']:>9.4f}{m['log_loss']:>10.4f}{m['brier']:>8.4f}"
            f"{m['ece']:>8.4f}{m['lift_top10']:>10.2f}"
        )
    print(f"{'truth':10}{result['true_roc_auc']:>9.4f}   (generator's true probabilities, same test leads)")


if __name__ == "__main__":
    sys.exit(main())
