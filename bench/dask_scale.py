"""When Dask pays off: explained batch scoring and training, LocalCluster vs one process, side by side.

    python bench/dask_scale.py                          # 10M leads scored, 5M trained (hours on 2 cores)
    python bench/dask_scale.py --score-leads 1000000 --train-leads 500000 --inprocess-leads 200000

Scoring: the leads are written as Parquet parts of PART_ROWS leads each (one synthetic history,
repeated with fresh ids), scored by `leadscore score --engine dask`'s code on a LocalCluster, and the
first `--inprocess-leads` of them by the in-process path (`serving.reports.batch.score_file`) in the same run.
Printed: leads/s for both, the peak resident memory of each Dask worker and of this process, and the
time 10 million leads would take at each measured rate (an extrapolation, labelled as such).

Training: `training.pipeline.train` on the same synthetic history in process and with every LightGBM
fit on the cluster (`training.distributed.lightgbm_on`), each in a temporary MLflow store: wall time,
the test ROC AUC / log loss, and the peak memory of this process (the driver). Without --model a
bundle is trained first (not timed).
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402

from features.synthetic import generate, write_history  # noqa: E402

PART_ROWS = 1_000_000
ROW_GROUP = 100_000  # one Dask partition: what a worker holds at once
TEN_MILLION = 10_000_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def driver_peak() -> Iterator[dict[str, float]]:
    """The highest resident memory of this process while the block runs (sampled every 50 ms), in MiB:
    `ru_maxrss` only grows, so it cannot tell one engine's peak from the other's in the same run."""
    import psutil

    me, seen, done = psutil.Process(), {"start": 0.0, "peak": 0.0}, threading.Event()
    seen["start"] = seen["peak"] = me.memory_info().rss / 2**20

    def sample() -> None:
        while not done.wait(0.05):
            seen["peak"] = max(seen["peak"], me.memory_info().rss / 2**20)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()


def history(leads: int, seed: int) -> pd.DataFrame:
    per_quarter = -(-leads // 12)
    return generate(quarters=12, leads_per_quarter=per_quarter, seed=seed).leads.iloc[:leads]


def write_parts(total: int, folder: Path, row_group: int = ROW_GROUP) -> Path:
    """`total` leads as Parquet parts: one generated history of up to PART_ROWS, repeated with new ids."""
    folder.mkdir(parents=True, exist_ok=True)
    base = history(min(total, PART_ROWS), seed=8)
    written, k = 0, 0
    while written < total:
        part = base.iloc[: total - written].copy()
        part["lead_id"] = [f"P{k:03d}-{i:07d}" for i in range(len(part))]
        part.to_parquet(folder / f"leads-{k:03d}.parquet", row_group_size=row_group, index=False)
        written += len(part)
        k += 1
    return folder


def train_model(folder: Path, leads: int) -> Path:
    from training.pipeline import train

    data = write_history(generate(quarters=12, leads_per_quarter=-(-leads // 12), seed=7), folder / "train.parquet")
    result = train(data["leads"], models_dir=folder / "models", tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    print(f"bench model: {result.family}, {result.best_iteration} trees (not timed)", flush=True)
    return result.bundle_dir


def bench_scoring(args: argparse.Namespace, folder: Path, client) -> dict:
    from serving.model.scorer import Scorer
    from serving.reports import batch, distributed

    model = args.model or str(train_model(folder / "model", 240_000))
    parts = write_parts(args.score_leads, folder / "parts", args.partition_rows)
    scorer = Scorer.load(model)
    first = sorted(parts.iterdir())[0]
    sample = folder / "inprocess.parquet"
    pd.read_parquet(first).iloc[: args.inprocess_leads].to_parquet(sample, row_group_size=ROW_GROUP, index=False)

    start = time.perf_counter()
    batch.score_file(scorer=scorer, data=sample, out=folder / "inprocess-scored.parquet", chunk_rows=args.chunk_rows)
    local_s = time.perf_counter() - start
    local_rate = args.inprocess_leads / local_s
    print(
        f"in process: {args.inprocess_leads:,} leads in {local_s:.1f}s = {local_rate:,.0f} leads/s; "
        f"process peak {peak_rss_mib():,.0f} MiB",
        flush=True,
    )

    driver = Scorer.load(model, engine="lightgbm")
    start = time.perf_counter()
    summary = distributed.score_files(
        driver, parts, folder / "dask-scored", client=client, chunk_rows=args.chunk_rows, progress=sys.stderr.isatty()
    )
    dask_s = time.perf_counter() - start
    dask_rate = summary["rows"] / dask_s
    workers = client.run(peak_rss_mib)
    print(
        f"dask ({len(workers)} workers): {summary['rows']:,} leads in {summary['partitions']} partitions, "
        f"{dask_s:.1f}s = {dask_rate:,.0f} leads/s ({dask_rate / local_rate:.2f}x in process)",
        flush=True,
    )
    print("peak memory per worker: " + ", ".join(f"{v:,.0f} MiB" for v in workers.values()), flush=True)
    print(
        f"10,000,000 leads would take {TEN_MILLION / local_rate / 3600:.1f} h in process and "
        f"{TEN_MILLION / dask_rate / 3600:.1f} h on this cluster (extrapolated from the rates above)"
        if summary["rows"] < TEN_MILLION
        else f"10,000,000 leads took {dask_s / 3600:.2f} h on this cluster",
        flush=True,
    )
    return {
        "inprocess_leads": args.inprocess_leads,
        "inprocess_seconds": local_s,
        "inprocess_leads_per_s": local_rate,
        "dask_leads": summary["rows"],
        "dask_partitions": summary["partitions"],
        "dask_seconds": dask_s,
        "dask_leads_per_s": dask_rate,
        "worker_peak_mib": sorted(workers.values()),
        "driver_peak_mib": peak_rss_mib(),
    }


def bench_training(args: argparse.Namespace, folder: Path, client) -> dict:
    from training.distributed import lightgbm_on
    from training.pipeline import train

    data = write_history(history_for_training(args.train_leads), folder / "train" / "leads.parquet")["leads"]
    out = {}
    for engine in ("local", "dask"):
        store = folder / f"store-{engine}"
        store.mkdir()
        start = time.perf_counter()
        with driver_peak() as memory, lightgbm_on(client) if engine == "dask" else contextlib.nullcontext():
            result = train(data, models_dir=store / "models", tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
        seconds = time.perf_counter() - start
        model = result.evaluations["model"]
        out[engine] = {
            "seconds": seconds,
            "roc_auc": model.roc_auc,
            "log_loss": model.log_loss,
            "family": result.family,
            "trees": result.best_iteration,
            "lightgbm_seconds": result.timings.get("evaluation fits", 0.0) + result.timings.get("refit", 0.0),
            "driver_start_mib": memory["start"],
            "driver_peak_mib": memory["peak"],
        }
        print(
            f"train {engine:>5}: {result.report.n_rows:,} leads in {seconds:.0f}s, test ROC AUC {model.roc_auc:.4f}, "
            f"log loss {model.log_loss:.4f} ({result.family}, {result.best_iteration} trees); driver memory "
            f"{memory['start']:,.0f} MiB before, peak {memory['peak']:,.0f} MiB",
            flush=True,
        )
    return out


def history_for_training(leads: int):
    return generate(quarters=12, leads_per_quarter=-(-leads // 12), seed=7)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-leads", type=int, default=TEN_MILLION)
    parser.add_argument("--inprocess-leads", type=int, default=200_000)
    parser.add_argument("--train-leads", type=int, default=5_000_000, help="0 skips the training comparison")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument(
        "--partition-rows", type=int, default=ROW_GROUP, help="leads per Parquet row group = Dask partition"
    )
    parser.add_argument("--model", help="bundle folder or models:/ URI (default: train one on 240,000 leads, untimed)")
    args = parser.parse_args()
    from serving.reports.distributed import connect

    print(f"{platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}", flush=True)
    results: dict = {"cores": os.cpu_count(), "load_start": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="leadscore-dask-bench-") as tmp, connect(workers=args.workers) as client:
        if args.score_leads:
            results["scoring"] = bench_scoring(args, Path(tmp), client)
        if args.train_leads:
            results["training"] = bench_training(args, Path(tmp), client)
    results["load_end"] = os.getloadavg()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
