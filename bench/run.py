"""`make bench`: every benchmark in one run, ours against the MLflow peer, written to bench/results.json.

    python bench/run.py            # the full run (~15 min on 2 cores): writes bench/results.json,
                                   # bench/RESULTS.md and the table in README.md's Benchmarks section
    python bench/run.py --quick    # a smoke run (~3 min) on small data; prints, writes nothing
                                   # unless --out is given

Stages, all bounded in count and time, all on 127.0.0.1, in one temporary folder with its own MLflow
store (so nothing here touches ./mlflow.db or ./models):
1. training: `leadscore train` in a subprocess at 100k and 1M synthetic leads (wall time, peak RSS
   from the kernel's rusage for that process), and twice on the default-size history (240k leads,
   as of 2026-07-01 and as of the export date) to register the two versions the servers use;
2. cold start: `leadscore serve` from process start to its first scored request (and the peer's);
3. HTTP, one lead per request: our explained `/v1/score` and `mlflow models serve`'s `/invocations`
   on the same champion, same leads, same client, at 1, 8 and 32 concurrent clients;
4. batch: leads/s for `Scorer.explain` and `predict_proba` in process, `POST /v1/score/batch`, and the
   peer's batch `/invocations`;
5. where the time goes: one explained request split into its phases, cProfile of a request and a batch;
6. hardening: 30 s at 8 clients while the champion is reloaded every few seconds, and the long
   schemathesis fuzz run (tests/support/fuzz.py), and cost probes (300,000 keys, 10,000 empty leads, 5,000
   invalid leads, a 1 MB id, a body sent at 1 byte/s) with the server CPU each costs.
Figures are printed as they come; nothing asserts an absolute time (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SUPPORT = ROOT / "tests" / "support"  # the load client and fuzzer, shared with the test suite
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(SUPPORT))
sys.path.insert(0, str(ROOT))

from hardening import process_cpu_s, trickle
from http_load import compare_clients, get, post, run_load
from peer import (
    OURS_PATH,
    PEER_PATH,
    checkout_pythonpath,
    first_score_s,
    leadscore_server,
    mlflow_peer,
    ours_body,
    peer_batch_body,
    peer_body,
)

MODEL_NAME = "lead-conversion"
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
LIBRARIES = (
    "numpy",
    "pandas",
    "lightgbm",
    "numba",
    "mlflow",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "scikit-learn",
    "pyarrow",
    "schemathesis",
)


@dataclass(frozen=True)
class Budget:
    """How big each stage is; --quick shrinks everything to a smoke run."""

    train_sizes: tuple[int, ...]  # synthetic leads for the training benchmark
    serve_leads_per_quarter: int  # history the served model is trained on (12 quarters)
    cold_starts: int
    concurrency: tuple[int, ...]
    ours_requests: int
    peer_requests: int
    level_seconds: float  # time bound per (server, concurrency) measurement
    warmup_requests: int
    explain_leads: int
    batch_requests: int
    batch_size: int
    profile_requests: int
    profile_batch_leads: int
    reload_seconds: float
    reloads: int
    fuzz_cases: int

    @classmethod
    def full(cls) -> Budget:
        return cls(
            train_sizes=(100_000, 1_000_000),
            serve_leads_per_quarter=20_000,
            cold_starts=3,
            concurrency=(1, 8, 32),
            ours_requests=4000,
            peer_requests=1500,
            level_seconds=15.0,
            warmup_requests=150,
            explain_leads=20_000,
            batch_requests=5,
            batch_size=1000,
            profile_requests=500,
            profile_batch_leads=5_000,
            reload_seconds=30.0,
            reloads=6,
            fuzz_cases=3000,
        )

    @classmethod
    def quick(cls) -> Budget:
        return cls(
            train_sizes=(),
            serve_leads_per_quarter=2_000,
            cold_starts=1,
            concurrency=(1, 8, 32),
            ours_requests=600,
            peer_requests=200,
            level_seconds=4.0,
            warmup_requests=30,
            explain_leads=4_000,
            batch_requests=2,
            batch_size=500,
            profile_requests=100,
            profile_batch_leads=2_000,
            reload_seconds=6.0,
            reloads=3,
            fuzz_cases=300,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmarks: ours vs `mlflow models serve`, batch, training, "
        "cold start, profile, reload under load, fuzz."
    )
    parser.add_argument("--quick", action="store_true", help="small and short: a smoke run of every stage")
    parser.add_argument(
        "--out",
        type=Path,
        help="folder for results.json and RESULTS.md (default: bench/ for a full run, nothing for --quick)",
    )
    parser.add_argument("--no-readme", action="store_true", help="do not update README.md's Benchmarks table")
    parser.add_argument("--skip", default="", help="comma-separated stages to skip: training,fuzz")
    args = parser.parse_args(argv)
    budget = Budget.quick() if args.quick else Budget.full()
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    out_dir = args.out or (None if args.quick else BENCH)

    started = time.perf_counter()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "load_average_at_start": _load_average(),
    }
    _say(f"machine: {results['machine']['summary']}")
    with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        work = Path(tmp)
        if "training" not in skip:  # --quick reports only the served model's trainings
            results["training"] = [train_benchmark(work, n) for n in budget.train_sizes]
        store = serving_store(work, budget)
        results["model"] = store.describe()
        leads = fresh_leads(store, 2000)
        with contextlib.ExitStack() as servers:
            # each server's first request is sent right after it is ready, before the next one starts
            peer = servers.enter_context(mlflow_peer(store.uri, cwd=work))
            peer_first = first_score_s(peer, PEER_PATH, peer_body(leads[0]))
            ours = servers.enter_context(
                leadscore_server(store.uri, cwd=work, env={"LEADSCORE_ADMIN_TOKEN": store.token})
            )
            ours_first = first_score_s(ours, OURS_PATH, ours_body(leads[0]))
            results["cold_start"] = cold_start(
                store, work, budget, (ours.ready_s, ours_first), (peer.ready_s, peer_first), leads[0]
            )
            results["clients"] = compare_clients(ours.base_url, OURS_PATH, ours_body(leads[0]), requests=300)
            _say(
                "client overhead (CPU ms per request): "
                + ", ".join(f"{k} {v['client_cpu_ms_per_request']:.3f}" for k, v in results["clients"].items())
            )
            results["http"] = http_benchmark(ours.base_url, peer.base_url, leads, budget)
            results["batch"] = batch_benchmark(store, ours.base_url, peer.base_url, budget)
            results["profile"] = profile(store, leads, budget, results["http"])
            results["reload_under_load"] = reload_under_load(store, ours.base_url, leads, budget)
            results["cost_probes"] = cost_probes(ours, leads)
        if "fuzz" not in skip:
            results["fuzz"] = fuzz(store, budget)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_at_end"] = _load_average()
    table = markdown(results)
    print("\n" + table)
    if out_dir is not None:
        write_results(results, table, out_dir, readme=not args.no_readme and out_dir == BENCH)
    _say(f"done in {results['bench_seconds']:.0f} s")
    return 0


# -- the machine -------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, memory, CPU model, OS, Python and library versions."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", _read("/proc/meminfo") or "MemTotal: 0").group(1))
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cores = os.cpu_count()
    info = {
        "cores": cores,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "libraries": versions,
    }
    info["summary"] = f"{cores} cores ({cpu}), {info['memory_gib']} GiB, Python {info['python']}, {info['os']}"
    return info


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


# -- 1. training ------------------------------------------------------------------------------------


def generate(work: Path, leads_per_quarter: int, name: str) -> Path:
    """A synthetic history of 12 quarters (not timed), written by `leadscore generate`."""
    out = work / name / "leads.parquet"
    _cli(
        [
            "generate",
            "--quarters",
            "12",
            "--leads-per-quarter",
            str(leads_per_quarter),
            "--seed",
            "7",
            "--out",
            str(out),
        ],
        cwd=work,
    )
    return out


def timed_train(data: Path, store: Path, *extra: str) -> dict[str, Any]:
    """`leadscore train` in a subprocess: wall seconds and peak RSS of that process (kernel rusage)."""
    store.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "training.cli",
        "train",
        "--data",
        str(data),
        "--models-dir",
        str(store / "models"),
        *extra,
    ]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": _uri(store),
        "PYTHONWARNINGS": "ignore",
        "PYTHONPATH": checkout_pythonpath(),
    }
    _migrate(_uri(store))  # MLflow's one-off schema migration is setup, not training
    log = store / "train.log"
    with log.open("ab") as sink:
        began = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=store, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"leadscore train failed ({process.returncode}):\n{text[-2000:]}")
    trees = re.findall(r"\((\d+) trees", text)
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 0),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "trees": int(trees[-1]) if trees else None,
    }


def _migrate(uri: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments()


def train_benchmark(work: Path, leads: int) -> dict[str, Any]:
    per_quarter = -(-leads // 12)
    data = generate(work, per_quarter, f"train-{leads}")
    figures = timed_train(data, work / f"store-{leads}")
    rows = 12 * per_quarter
    _say(
        f"training on {rows:,} leads: {figures['wall_s']:.1f} s wall, peak {figures['peak_rss_mib']:,.0f} MiB, "
        f"{figures['trees']} trees"
    )
    return {"leads": rows, **figures}


@dataclass
class Store:
    """The MLflow store both servers read: two registered versions of the default-size model."""

    root: Path
    data: Path
    versions: list[str]
    champion: str
    token: str
    trainings: list[dict[str, Any]]

    @property
    def uri(self) -> str:
        return _uri(self.root)

    def bundle_dir(self, version: str) -> Path:
        return self.root / "models" / MODEL_NAME / version

    def describe(self) -> dict[str, Any]:
        bundle = json.loads((self.bundle_dir(self.champion) / "bundle.json").read_text())
        meta = bundle.get("metadata", {})
        return {
            "champion": self.champion,
            "versions": self.versions,
            "trained_on_leads": self.trainings[0]["leads"],
            "as_of": meta.get("as_of"),
            "trees": self.trainings[-1]["trees"],
            "features": len(bundle.get("schema", {}).get("features", [])),
            "test_metrics": {k: meta.get("metrics", {}).get(k) for k in ("roc_auc", "log_loss")},
            "trainings": self.trainings,
        }


def serving_store(work: Path, budget: Budget) -> Store:
    """Train the served model twice (as of 2026-07-01, then as of the export date), like two quarters."""
    data = generate(work, budget.serve_leads_per_quarter, "serve")
    root = work / "store"
    rows = 12 * budget.serve_leads_per_quarter
    first = timed_train(data, root, "--as-of", "2026-07-01", "--promote", "force")
    second = timed_train(data, root, "--promote", "force")
    _say(
        f"training on {rows:,} leads (served model): {second['wall_s']:.1f} s wall, "
        f"peak {second['peak_rss_mib']:,.0f} MiB, {second['trees']} trees"
    )
    versions = sorted(p.name for p in (root / "models" / MODEL_NAME).iterdir())
    return Store(
        root=root,
        data=data,
        versions=versions,
        champion=versions[-1],
        token=secrets.token_hex(16),
        trainings=[{"leads": rows, "as_of": "2026-07-01", **first}, {"leads": rows, **second}],
    )


def fresh_leads(store: Store, n: int) -> list[dict[str, Any]]:
    """Leads neither model saw, as a CRM would send them: schema fields, JSON types, nulls for missing."""
    from features.schema import load_schema
    from features.synthetic import generate as synthesize

    schema = load_schema(store.data.with_name("leads.schema.yaml"))
    frame = synthesize(quarters=4, leads_per_quarter=-(-n // 4), seed=11).leads.iloc[:n]
    return json.loads(frame[[schema.id_column, *schema.feature_names]].to_json(orient="records"))


# -- 2. cold start ----------------------------------------------------------------------------------


def cold_start(
    store: Store, work: Path, budget: Budget, ours: tuple[float, float], peer: tuple[float, float], lead: dict[str, Any]
) -> dict[str, Any]:
    """Process start to the first scored answer: `leadscore serve` (median of a few) and the peer (once).

    `ours` and `peer` are (ready_s, first_score_s) of the servers already started for the HTTP stage.
    """
    ours_runs = [{"ready_s": ours[0], "first_score_s": ours[1]}]
    for _ in range(budget.cold_starts - 1):
        with leadscore_server(store.uri, cwd=work) as again:
            ours_runs.append(
                {"ready_s": again.ready_s, "first_score_s": first_score_s(again, OURS_PATH, ours_body(lead))}
            )
    result = {
        "ours_first_score_s": round(statistics.median(r["first_score_s"] for r in ours_runs), 2),
        "ours_ready_s": round(statistics.median(r["ready_s"] for r in ours_runs), 2),
        "ours_runs": ours_runs,
        "peer_first_score_s": round(peer[1], 2),
        "peer_ready_s": round(peer[0], 2),
    }
    _say(
        f"cold start to first scored request: ours {result['ours_first_score_s']:.2f} s (median of "
        f"{len(ours_runs)}), peer {result['peer_first_score_s']:.2f} s"
    )
    return result


# -- 3. HTTP, one lead per request --------------------------------------------------------------------


def http_benchmark(ours_url: str, peer_url: str, leads: list[dict[str, Any]], budget: Budget) -> list[dict]:
    """Per concurrency: ours then the peer, same leads in the same order, after a warm-up of each."""
    ours_bodies = [ours_body(lead) for lead in leads]
    peer_bodies = [peer_body(lead) for lead in leads]
    rows = []
    for clients in budget.concurrency:
        figures = {}
        for name, url, path, bodies, count in (
            ("ours", ours_url, OURS_PATH, ours_bodies, budget.ours_requests),
            ("peer", peer_url, PEER_PATH, peer_bodies, budget.peer_requests),
        ):
            run_load(
                url,
                path,
                bodies,
                concurrency=clients,
                max_requests=budget.warmup_requests,
                max_seconds=budget.level_seconds / 3,
            )
            result = run_load(
                url, path, bodies, concurrency=clients, max_requests=count, max_seconds=budget.level_seconds, label=name
            )
            figures[name] = result.summary()
        ours, peer = figures["ours"], figures["peer"]
        row = {
            "concurrency": clients,
            "ours": ours,
            "peer": peer,
            "p50_ratio": _ratio(peer["p50_ms"], ours["p50_ms"]),
            "p99_ratio": _ratio(peer["p99_ms"], ours["p99_ms"]),
            "throughput_ratio": _ratio(ours["throughput_rps"], peer["throughput_rps"]),
        }
        rows.append(row)
        _say(
            f"HTTP x{clients}: ours p50 {ours['p50_ms']:.2f} ms p99 {ours['p99_ms']:.2f} ms "
            f"{ours['throughput_rps']:.0f}/s ({ours['failures']} failed) | peer p50 {peer['p50_ms']:.2f} ms "
            f"p99 {peer['p99_ms']:.2f} ms {peer['throughput_rps']:.0f}/s ({peer['failures']} failed) | "
            f"ours is {row['p50_ratio']}x faster at p50, {row['throughput_ratio']}x the throughput"
        )
    return rows


# -- 4. batch -----------------------------------------------------------------------------------------


def load_scorer(store: Store, version: str | None = None) -> Any:
    """The served bundle, loaded by folder (never from ./models of the checkout)."""
    from serving.model.scorer import Scorer

    return Scorer.load(store.bundle_dir(version or store.champion))


def batch_benchmark(store: Store, ours_url: str, peer_url: str, budget: Budget) -> dict[str, Any]:
    from features.synthetic import generate as synthesize

    scorer = load_scorer(store)
    frame = synthesize(quarters=4, leads_per_quarter=budget.explain_leads // 4, seed=12).leads
    schema = scorer.schema
    columns = [schema.id_column, *schema.feature_names]
    scorer.explain(frame.iloc[:1000])  # warm-up
    cpu0 = time.process_time()
    explain_s = _best_of(1, lambda: scorer.explain(frame))
    explain_cpu_s = time.process_time() - cpu0  # every thread of this process: robust to a shared machine
    predict_s = _best_of(2, lambda: scorer.predict_proba(frame))
    records = json.loads(frame[columns].iloc[: budget.batch_size * budget.batch_requests].to_json(orient="records"))
    chunks = [records[i : i + budget.batch_size] for i in range(0, len(records), budget.batch_size)]
    score_s = _best_of(1, lambda: [scorer.score(chunk) for chunk in chunks])

    api_bodies = [json.dumps({"leads": chunk}).encode() for chunk in chunks]
    api_s = _sequential_posts(ours_url, "/v1/score/batch", api_bodies)
    peer_bodies = [peer_batch_body(chunk) for chunk in chunks]
    peer_s = _sequential_posts(peer_url, PEER_PATH, peer_bodies)
    n = len(frame)
    result = {
        "in_process_explain_leads_per_s": round(n / explain_s),
        "in_process_explain_cpu_ms_per_lead": round(explain_cpu_s / n * 1000.0, 3),
        "in_process_predict_proba_leads_per_s": round(n / predict_s),
        "in_process_score_records_leads_per_s": round(len(records) / score_s),
        "api_batch_leads_per_s": round(len(records) / api_s),
        "peer_batch_leads_per_s": round(len(records) / peer_s),
        "leads_in_process": n,
        "leads_via_http": len(records),
        "batch_size": budget.batch_size,
    }
    from explain_speed import measure  # bench/ is on sys.path: this file runs as a script

    result["explain_vs_lightgbm"] = measure(scorer, frame, repeats=1)
    _say(
        f"batch: explain in process {result['in_process_explain_leads_per_s']:,}/s, predict_proba "
        f"{result['in_process_predict_proba_leads_per_s']:,}/s, score(records) "
        f"{result['in_process_score_records_leads_per_s']:,}/s, POST /v1/score/batch "
        f"{result['api_batch_leads_per_s']:,}/s (explained), peer /invocations "
        f"{result['peer_batch_leads_per_s']:,}/s (not explained)"
    )
    return result


def _sequential_posts(url: str, path: str, bodies: list[bytes]) -> float:
    post(url, path, bodies[0])  # warm-up
    began = time.perf_counter()
    for body in bodies:
        status, payload = post(url, path, body)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {payload[:300]!r}")
    return time.perf_counter() - began


def _best_of(repeats: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


# -- 5. where the time goes ---------------------------------------------------------------------------


def profile(store: Store, leads: list[dict[str, Any]], budget: Budget, http: list[dict]) -> dict[str, Any]:
    """One explained request split into phases (median µs), against the HTTP p50 at one client."""
    from pydantic_core import to_json

    from serving.api.schemas import request_models

    scorer = load_scorer(store)
    models = request_models(scorer, scorer.schema, 10_000)
    booster = scorer.bundle.booster
    n = budget.profile_requests
    bodies = [ours_body(lead) for lead in leads[:n]]
    parsed = [models.parse_lead(body) for body in bodies]
    matrices = [scorer.bundle.encoder.transform_records([lead]) for lead in parsed]
    responses = [scorer.score([lead])[0] for lead in parsed]  # also the warm-up

    def median_us(fn: Callable[[int], Any]) -> float:
        times = []
        for i in range(n):
            began = time.perf_counter()
            fn(i)
            times.append(time.perf_counter() - began)
        return round(statistics.median(times) * 1e6, 1)

    phases = {
        "parse_and_validate_json": median_us(lambda i: models.parse_lead(bodies[i])),
        "encode_record": median_us(lambda i: scorer.bundle.encoder.transform_records([parsed[i]])),
        "treeshap_contributions": median_us(lambda i: scorer.contributions(matrices[i])),
        "raw_score": median_us(lambda i: scorer.raw_scores(matrices[i])),
        # the what-if re-scoring is one batched raw-score call over every candidate change
        "what_if_rescoring": median_us(lambda i: scorer._what_if_probabilities(matrices[i])),
        "score_total": median_us(lambda i: scorer.score([parsed[i]])),
        "serialise_json": median_us(lambda i: to_json(responses[i])),
    }
    if booster is not None:  # a logistic-only bundle has no trees to compare with LightGBM's own predict
        # one thread: for one row, OpenMP start-up on a shared machine would dominate LightGBM's figure
        phases["lightgbm_pred_contrib"] = median_us(
            lambda i: booster.predict(matrices[i], pred_contrib=True, num_threads=1)
        )
        phases["lightgbm_predict_raw"] = median_us(
            lambda i: booster.predict(matrices[i], raw_score=True, num_threads=1)
        )
    model_us = phases["treeshap_contributions"] + phases["raw_score"] + phases["what_if_rescoring"]
    phases["response_building"] = round(phases["score_total"] - phases["encode_record"] - model_us, 1)
    in_process = phases["parse_and_validate_json"] + phases["score_total"] + phases["serialise_json"]
    http_p50_us = http[0]["ours"]["p50_ms"] * 1000.0 if http else float("nan")
    split = {
        "http_p50_us": round(http_p50_us, 1),
        "in_process_us": round(in_process, 1),
        "explanation_share_of_request": round(phases["treeshap_contributions"] / http_p50_us, 3),
        "model_share_of_request": round(model_us / http_p50_us, 3),
        "in_process_share_of_request": round(in_process / http_p50_us, 3),
        "http_framework_and_client_us": round(http_p50_us - in_process, 1),
        "family": scorer.bundle.family,
        "trees": booster.num_trees() if booster is not None else 0,
        "leaves_max": int(_max_leaves(booster)) if booster is not None else 0,
        "features": len(scorer.schema.features),
    }
    top_request = _cprofile(lambda: [scorer.score([lead]) for lead in parsed])
    from features.synthetic import generate as synthesize

    frame = synthesize(quarters=4, leads_per_quarter=budget.profile_batch_leads // 4, seed=13).leads
    top_batch = _cprofile(lambda: scorer.explain(frame))
    batch_phases = _batch_phases(scorer, frame)
    _say(
        f"one explained request in process: {in_process:.0f} µs of a {http_p50_us:.0f} µs HTTP p50 "
        f"({split['in_process_share_of_request']:.0%}); TreeSHAP {phases['treeshap_contributions']:.0f} µs "
        f"({split['explanation_share_of_request']:.0%} of the request; LightGBM pred_contrib would be "
        f"{phases.get('lightgbm_pred_contrib', float('nan')):.0f} µs), model incl. what-ifs {model_us:.0f} µs "
        f"({split['model_share_of_request']:.0%}) on {split['trees']} trees"
    )
    return {
        "phases_us": phases,
        "split": split,
        "cprofile_request_top": top_request,
        "cprofile_batch_top": top_batch,
        "cprofile_batch_leads": len(frame),
        "batch_phases": batch_phases,
    }


def _batch_phases(scorer: Any, frame: Any) -> dict[str, float]:
    """A batch explain split into its steps: wall and CPU seconds of each (CPU counts every thread)."""
    steps: dict[str, float] = {}

    def timed(name: str, work: Callable[[], Any]) -> Any:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        out = work()
        steps[f"{name}_s"] = round(time.perf_counter() - wall0, 3)
        steps[f"{name}_cpu_s"] = round(time.process_time() - cpu0, 3)
        return out

    X = timed("encode", lambda: scorer.bundle.encoder.transform(frame))
    timed("treeshap", lambda: scorer.contributions(X))
    timed("raw_score", lambda: scorer.raw_scores(X))
    timed("explain_total", lambda: scorer.explain(frame))
    steps["leads"] = len(frame)
    return steps


def _max_leaves(booster: Any) -> int:
    dump = booster.dump_model(num_iteration=-1)
    return max(tree["num_leaves"] for tree in dump["tree_info"]) if dump["tree_info"] else 0


def _cprofile(work: Callable[[], Any], top: int = 12) -> list[str]:
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    lines = [line.rstrip() for line in text.getvalue().splitlines()]
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
    return [_short_path(line) for line in lines[start:] if line.strip()]


def _short_path(line: str) -> str:
    return re.sub(r"\S*/(site-packages|work/main|lib/python3\.\d+)/", "", line)


# -- 6. hardening under load ------------------------------------------------------------------------


def reload_under_load(store: Store, url: str, leads: list[dict[str, Any]], budget: Budget) -> dict[str, Any]:
    """8 clients for `reload_seconds` while the champion alias flips between versions and is reloaded.

    Fails nothing: every response must be a 200 naming a registered version.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    allowed = set(store.versions)
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def check(status: int, body: bytes) -> str | None:
        version = str(json.loads(body).get("model", {}).get("version"))
        with lock:
            seen[version] = seen.get(version, 0) + 1
        return None if version in allowed else f"unregistered version {version!r}"

    reloads: list[dict[str, Any]] = []
    stop = threading.Event()

    def reloader() -> None:
        pause = budget.reload_seconds / (budget.reloads + 1)
        for i in range(budget.reloads):
            if stop.wait(pause):
                return
            target = store.versions[i % len(store.versions)]
            client.set_registered_model_alias(MODEL_NAME, "champion", target)
            began = time.perf_counter()
            status, body = post(url, "/v1/admin/reload", b"", headers={"Authorization": f"Bearer {store.token}"})
            served = json.loads(body).get("model", {}).get("version") if status == 200 else None
            reloads.append(
                {"status": status, "to": target, "served": served, "seconds": round(time.perf_counter() - began, 2)}
            )

    thread = threading.Thread(target=reloader)
    thread.start()
    result = run_load(
        url,
        OURS_PATH,
        [ours_body(lead) for lead in leads],
        concurrency=8,
        max_requests=10_000_000,
        max_seconds=budget.reload_seconds,
        check=check,
        label="reload",
    )
    stop.set()
    thread.join()
    client.set_registered_model_alias(MODEL_NAME, "champion", store.champion)
    post(url, "/v1/admin/reload", b"", headers={"Authorization": f"Bearer {store.token}"})
    summary = result.summary()
    out = {
        "seconds": summary["wall_s"],
        "clients": 8,
        "requests": summary["requests"],
        "failures": summary["failures"],
        "problems": summary["problems"],
        "reloads": reloads,
        "versions_seen": seen,
        "p50_ms": summary["p50_ms"],
        "p99_ms": summary["p99_ms"],
    }
    ok = [r for r in reloads if r["status"] == 200 and r["served"] == r["to"]]
    _say(
        f"reload under load: {summary['requests']:,} requests at 8 clients in {summary['wall_s']:.0f} s, "
        f"{summary['failures']} failed, {len(ok)}/{len(reloads)} reloads swapped the version, versions seen "
        f"{dict(sorted(seen.items()))}, p99 {summary['p99_ms']:.1f} ms"
    )
    return out


def cost_probes(server: Any, leads: list[dict[str, Any]]) -> dict[str, Any]:
    """Small requests that used to cost much (issue 15): server CPU, wall time and answer size of each,
    and whether /healthz stayed quick meanwhile; then clients that send slowly. Loopback, bounded (the
    slow ones stop at the server's LEADSCORE_HEADER_TIMEOUT_S / LEADSCORE_BODY_TIMEOUT_S, 10 s by default)."""
    url, pid = server.base_url, server.process.pid
    lead = leads[0]
    probes = {
        "300,000 unknown keys": ("/v1/score", json.dumps({f"k{i}": 1 for i in range(300_000)}).encode()),
        "300,000 keys in one lead of a batch": (
            "/v1/score/batch",
            json.dumps({"leads": [lead, {f"k{i}": 1 for i in range(300_000)}, lead]}).encode(),
        ),
        "10,000 empty leads": ("/v1/score/batch", json.dumps({"leads": [{}] * 10_000}).encode()),
        "1,000 distinct leads (for scale)": (
            "/v1/score/batch",
            json.dumps({"leads": [leads[i % len(leads)] for i in range(1_000)]}).encode(),
        ),
        "10,000 invalid leads": ("/v1/score/batch", json.dumps({"leads": [{"web_visits": -1}] * 10_000}).encode()),
        "1 MB lead id": ("/v1/score", json.dumps({**lead, "lead_id": "x" * 1_000_000}).encode()),
    }
    out: dict[str, Any] = {}
    for name, (path, body) in probes.items():
        healthz: list[float] = []
        done = threading.Event()

        def watch(done: threading.Event, healthz: list[float]) -> None:
            while not done.is_set():
                began = time.perf_counter()
                with contextlib.suppress(OSError):  # a timeout counts as the time waited
                    get(url, "/healthz")
                healthz.append((time.perf_counter() - began) * 1000)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, args=(done, healthz))
        cpu0, began = process_cpu_s(pid), time.perf_counter()
        watcher.start()
        status, answer = post(url, path, body, timeout_s=120)
        wall = time.perf_counter() - began
        done.set()
        watcher.join()
        time.sleep(0.5)  # anything the server still does for this request shows in its CPU now
        cpu = process_cpu_s(pid) - cpu0
        out[name] = {
            "request_bytes": len(body),
            "status": status,
            "answer_bytes": len(answer),
            "wall_ms": round(wall * 1000, 1),
            "server_cpu_ms": round(cpu * 1000),
            "healthz_max_ms": round(max(healthz), 1) if healthz else None,
        }
        _say(
            f"probe {name}: {status}, {len(body) / 1e6:.1f} MB in, {len(answer):,} bytes out, "
            f"{wall * 1000:.0f} ms wall, ~{cpu * 1000:.0f} ms server CPU, /healthz max "
            f"{out[name]['healthz_max_ms']} ms"
        )
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(lead).encode()
    head = b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
    slow = {
        "slow headers, 1 byte/s": (b"", head % len(body) + b"\r\n" + body),
        "slow body, 1 byte/s": (head % len(body) + b"\r\n", body),
    }
    for name, (sent_at_once, trickled) in slow.items():
        with socket.create_connection((host, int(port)), timeout=60) as sock:
            sock.sendall(sent_at_once)
            answer, waited = trickle(sock, trickled, every_s=1.0)
        status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else None
        out[name] = {"status": status, "answered_after_s": round(waited, 1)}
        _say(f"probe {name}: {status} after {waited:.1f} s")
    began = time.perf_counter()
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        closed = sock.recv(100) == b""  # a connection that sends nothing: closed at the header deadline
    out["silent connection"] = {
        "status": "closed" if closed else "answered",
        "answered_after_s": round(time.perf_counter() - began, 1),
    }
    _say(f"probe silent connection: closed after {out['silent connection']['answered_after_s']} s")
    return out


def fuzz(store: Store, budget: Budget) -> dict[str, Any]:
    """The long fuzz run, in its own process (tests/support/fuzz.py prints one JSON line last)."""
    cmd = [
        sys.executable,
        str(SUPPORT / "fuzz.py"),
        "--cases",
        str(budget.fuzz_cases),
        "--model",
        str(store.bundle_dir(store.champion)),
        "--json",
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=1200,
        cwd=ROOT,
        check=False,
        env={**os.environ, "PYTHONPATH": checkout_pythonpath()},
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode not in (0, 1) or not lines:
        return {"error": f"fuzz.py exited {done.returncode}: {(done.stderr or done.stdout)[-1000:]}"}
    result = json.loads(lines[-1])
    _say(
        f"fuzz: {result['cases']:,} generated requests, {result['server_errors']} 5xx, "
        f"{result['bad_4xx']} 4xx without a JSON problem, {result['leaks']} leaking internals "
        f"({result['seconds']:.0f} s)"
    )
    return result


# -- output -----------------------------------------------------------------------------------------


def markdown(results: dict[str, Any]) -> str:
    """The committed table: machine, HTTP ours vs peer, batch, training, cold start, profile, hardening."""
    m = results["machine"]
    libs = ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)
    model = results.get("model", {})
    lines = [
        f"Measured {results['when'][:10]}{' (quick run)' if results['quick'] else ''} on {m['summary']}; {libs}.",
        (
            f"Served model: version {model.get('champion')} trained on {model.get('trained_on_leads', 0):,} synthetic "
            f"leads, {model.get('trees')} trees, {model.get('features')} features. Client: http.client, one keep-alive "
            "connection per client thread, on 127.0.0.1."
        ),
        "",
        (
            "**HTTP, one lead per request** (ours: `POST /v1/score` with the full explanation; peer: "
            "`mlflow models serve` `/invocations`, probability and grade only)"
        ),
        "",
        (
            "| clients | ours p50 | ours p95 | ours p99 | ours leads/s | peer p50 | peer p95 | peer p99 | peer leads/s "
            "| p50 ratio | throughput ratio |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results.get("http", []):
        o, p = row["ours"], row["peer"]
        lines.append(
            f"| {row['concurrency']} | {o['p50_ms']:.2f} ms | {o['p95_ms']:.2f} ms | {o['p99_ms']:.2f} ms | "
            f"{o['throughput_rps']:,.0f} | {p['p50_ms']:.1f} ms | {p['p95_ms']:.1f} ms | "
            f"{p['p99_ms']:.1f} ms | "
            f"{p['throughput_rps']:,.0f} | {row['p50_ratio']}x faster | {row['throughput_ratio']}x |"
        )
    b = results.get("batch")
    if b:
        lines += [
            "",
            "**Batch** (leads/s)",
            "",
            "| path | leads/s |",
            "|---|---:|",
            (
                f"| `Scorer.explain` in process (explained, {b['leads_in_process']:,} leads; "
                f"{b['in_process_explain_cpu_ms_per_lead']:.2f} CPU ms per lead) | "
                f"{b['in_process_explain_leads_per_s']:,} |"
            ),
            (f"| `Scorer.predict_proba` in process (no explanation) | {b['in_process_predict_proba_leads_per_s']:,} |"),
            f"| `Scorer.score` on records (full API response) | {b['in_process_score_records_leads_per_s']:,} |",
            (
                f"| `POST /v1/score/batch`, {b['batch_size']:,} leads per request (explained) | "
                f"{b['api_batch_leads_per_s']:,} |"
            ),
            (
                f"| peer `/invocations`, {b['batch_size']:,} leads per request (not explained) | "
                f"{b['peer_batch_leads_per_s']:,} |"
            ),
        ]
        lines += explanation_table(b.get("explain_vs_lightgbm"))
    trainings = list(results.get("training", [])) + [
        {**t, "note": f"served model, as of {t.get('as_of') or 'the export date'}"} for t in model.get("trainings", [])
    ]
    if trainings:
        lines += [
            "",
            "**Training** (`leadscore train` in a subprocess; peak RSS of that process)",
            "",
            "| leads | wall time | peak memory | trees | note |",
            "|---:|---:|---:|---:|---|",
        ]
        for t in trainings:
            lines.append(
                f"| {t['leads']:,} | {t['wall_s']:.1f} s | {t['peak_rss_mib']:,.0f} MiB | {t['trees']} | "
                f"{t.get('note', '')} |"
            )
    c = results.get("cold_start")
    if c:
        lines += [
            "",
            (
                f"**Cold start** (process start to the first scored request): ours "
                f"{c['ours_first_score_s']:.2f} s (ready {c['ours_ready_s']:.2f} s), peer "
                f"{c['peer_first_score_s']:.2f} s."
            ),
        ]
    prof = results.get("profile")
    if prof:
        ph, sp = prof["phases_us"], prof["split"]
        lines += [
            "",
            ("**Where the time goes** (one explained lead, median µs in process, against the HTTP p50 at one client)"),
            "",
            "| phase | µs | share of the HTTP p50 |",
            "|---|---:|---:|",
        ]
        for key in (
            "parse_and_validate_json",
            "encode_record",
            "treeshap_contributions",
            "raw_score",
            "what_if_rescoring",
            "response_building",
            "serialise_json",
        ):
            lines.append(f"| {key.replace('_', ' ')} | {ph[key]:,.0f} | {ph[key] / sp['http_p50_us']:.0%} |")
        lines.append(
            f"| HTTP, ASGI framework and client | {sp['http_framework_and_client_us']:,.0f} | "
            f"{sp['http_framework_and_client_us'] / sp['http_p50_us']:.0%} |"
        )
        bp = prof.get("batch_phases")
        if bp:
            lines += [
                "",
                (
                    f"A batch (`Scorer.explain` on {bp['leads']:,} leads, wall / CPU seconds): encode "
                    f"{bp['encode_s']:.2f} / {bp['encode_cpu_s']:.2f}, TreeSHAP {bp['treeshap_s']:.2f} / "
                    f"{bp['treeshap_cpu_s']:.2f}, raw scores {bp['raw_score_s']:.2f} / "
                    f"{bp['raw_score_cpu_s']:.2f}, "
                    f"whole explain {bp['explain_total_s']:.2f} / {bp['explain_total_cpu_s']:.2f}: TreeSHAP is "
                    f"{bp['treeshap_s'] / bp['explain_total_s']:.0%} of it."
                ),
            ]
        lines += [
            "",
            (
                f"The explanation (exact TreeSHAP over {sp['trees']} trees, compiled with numba) costs "
                f"{ph['treeshap_contributions']:,.0f} µs per lead, "
                f"{sp['explanation_share_of_request']:.0%} of the "
                f"request; LightGBM's own `pred_contrib` on the same lead takes "
                f"{ph.get('lightgbm_pred_contrib', float('nan')):,.0f} µs."
            ),
        ]
    r = results.get("reload_under_load")
    f = results.get("fuzz")
    c = results.get("cost_probes")
    if r or f or c:
        lines += ["", "**Hardening**", ""]
    if r:
        ok = sum(1 for x in r["reloads"] if x["status"] == 200 and x["served"] == x["to"])
        lines.append(
            f"- Reload under load: {r['requests']:,} requests from {r['clients']} clients in "
            f"{r['seconds']:.0f} s with {len(r['reloads'])} champion reloads ({ok} swapped): "
            f"{r['failures']} failed; versions named {dict(sorted(r['versions_seen'].items()))}."
        )
    for name, probe in (c or {}).items():
        if "answer_bytes" in probe:
            lines.append(
                f"- Probe, {name} ({probe['request_bytes'] / 1e6:.1f} MB): {probe['status']} in "
                f"{probe['wall_ms']:,.0f} ms, ~{probe['server_cpu_ms']:,} ms server CPU, "
                f"{probe['answer_bytes']:,} bytes back; "
                f"/healthz at most {probe['healthz_max_ms']} ms meanwhile."
            )
        else:
            lines.append(f"- Probe, {name}: {probe['status']} after {probe['answered_after_s']} s (loopback).")
    if f and "error" not in f:
        lines.append(
            f"- Fuzz (schemathesis, from the OpenAPI document): {f['cases']:,} requests, "
            f"{f['server_errors']} 5xx, {f['bad_4xx']} 4xx without a JSON problem, {f['leaks']} leaking "
            f"a trace or path."
        )
    lines.append("")
    busy = max(results["load_average_at_start"] + results["load_average_at_end"]) > m["cores"]
    verdict = (
        f"above {m['cores']}: other work shared the machine, so absolute figures are slower than on an idle "
        "one; the ratios were measured side by side"
        if busy
        else "the machine was otherwise idle"
    )
    lines.append(
        f"Load average (1/5/15 min) {results['load_average_at_start']} at the start and "
        f"{results['load_average_at_end']} at the end: {verdict}."
    )
    lines.append("")
    lines.append(
        f"Whole run: {results['bench_seconds']:.0f} s. Reproduce with `make bench` (or "
        "`python bench/run.py --quick` for a smoke run)."
    )
    return "\n".join(lines)


_EXPLAIN_ROWS = (
    ("explain", "`Scorer.explain` (calibrated probability and exact contributions)"),
    ("predict_proba", "`Scorer.predict_proba` (no explanation)"),
    ("treeshap_1_thread", "our TreeSHAP, 1 thread"),
    ("treeshap_2_threads", "our TreeSHAP, 2 threads"),
    ("treeshap_one_lead", "our TreeSHAP, one lead per call (as a request)"),
    ("pred_contrib_1_thread", "LightGBM `pred_contrib`, 1 thread"),
    ("pred_contrib_2_threads", "LightGBM `pred_contrib`, 2 threads"),
    ("lightgbm_predict", "LightGBM `predict` (raw score, no explanation), 1 thread"),
)


def explanation_table(m: dict[str, Any] | None) -> list[str]:
    """bench/explain_speed.py's figures on the served model: ours next to LightGBM's, with the ratios."""
    if not m:
        return []
    lines = [
        "",
        f"**Explaining in process** ({m['leads']:,} leads, the served model; bench/explain_speed.py)",
        "",
        "| path | leads/s | CPU µs per lead |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {label} | {m[key]['leads_per_s']:,} | {m[key]['cpu_us_per_lead']:,.1f} |"
        for key, label in _EXPLAIN_ROWS
        if key in m
    ]
    lines += ["", f"`explain` / `predict_proba`: {m['explain_vs_predict_proba']:.2f} in leads/s (issue 9: >= 0.4)."]
    if "exact" in m:
        lines[-1] += (
            f" Our TreeSHAP takes {m['treeshap_vs_pred_contrib_cpu']:.1f}x less CPU per lead than `pred_contrib` "
            f"and equals it to {m['max_abs_diff_vs_pred_contrib']:.1e} on every lead."
        )
    return lines


def write_results(results: dict[str, Any], table: str, out_dir: Path, *, readme: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (out_dir / "RESULTS.md").write_text(
        "# Benchmark results\n\nWritten by `bench/run.py` (`make bench`).\n\n" + table + "\n"
    )
    _say(f"wrote {out_dir / 'results.json'} and {out_dir / 'RESULTS.md'}")
    if readme:
        update_readme(ROOT / "README.md", readme_summary(results, table))


def readme_summary(results: dict[str, Any], table: str) -> str:
    """What the README quotes: the machine, the HTTP table and one line per other benchmark."""
    lines = table.splitlines()
    http_end = (
        next(i for i, line in enumerate(lines) if line.startswith("**Batch**"))
        if any(line.startswith("**Batch**") for line in lines)
        else len(lines)
    )
    out = list(lines[:http_end])
    b, c, prof = results.get("batch"), results.get("cold_start"), results.get("profile")
    trainings = {t["leads"]: t for t in results.get("training", [])}
    facts = []
    if b:
        facts.append(
            f"Batch, explained: {b['in_process_explain_leads_per_s']:,} leads/s in process, "
            f"{b['api_batch_leads_per_s']:,} through `POST /v1/score/batch`; without explanations "
            f"(`predict_proba`) {b['in_process_predict_proba_leads_per_s']:,} leads/s."
        )
        m = b.get("explain_vs_lightgbm") or {}
        if "exact" in m:
            facts.append(
                f"Exact TreeSHAP: {m['treeshap_vs_pred_contrib_cpu']:.1f}x less CPU per lead than LightGBM's "
                f"`pred_contrib` (max difference {m['max_abs_diff_vs_pred_contrib']:.1e}); `explain` runs at "
                f"{m['explain_vs_predict_proba']:.2f}x the leads/s of `predict_proba`."
            )
    if trainings:
        facts.append(
            "Training (`leadscore train`): "
            + "; ".join(
                f"{n:,} leads in {t['wall_s']:.0f} s, peak {t['peak_rss_mib']:,.0f} MiB"
                for n, t in sorted(trainings.items())
            )
            + "."
        )
    if c:
        facts.append(
            f"Cold start to the first scored request: {c['ours_first_score_s']:.1f} s "
            f"(peer {c['peer_first_score_s']:.1f} s)."
        )
    if prof:
        sp, ph = prof["split"], prof["phases_us"]
        facts.append(
            f"The explanation (exact TreeSHAP, {sp['trees']} trees) costs "
            f"{ph['treeshap_contributions'] / 1000:.1f} ms of the {sp['http_p50_us'] / 1000:.1f} ms request "
            f"({sp['explanation_share_of_request']:.0%})."
        )
    facts += [line for line in lines if line.startswith("Load average")]
    return (
        "\n".join(out).rstrip()
        + "\n\n"
        + "\n".join(f"- {fact}" for fact in facts)
        + "\n\nEverything else (batch paths, profile, hardening, load average): `bench/RESULTS.md`."
    )


def update_readme(path: Path, table: str) -> None:
    """Replace the table between the README's bench markers (left alone when the markers are absent)."""
    text = path.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        _say("README.md has no bench markers; table not quoted there")
        return
    path.write_text(text[: start + len(README_START)] + "\n" + table + "\n" + text[end:])
    _say(f"updated the table in {path.name}")


# -- helpers ----------------------------------------------------------------------------------------


def _cli(args: list[str], *, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "training.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": checkout_pythonpath()},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"leadscore {' '.join(args)} failed: {done.stderr[-2000:]}")


def _uri(store: Path) -> str:
    return f"sqlite:///{store / 'mlflow.db'}"


def _load_average() -> list[float]:
    """1, 5 and 15-minute load averages: above the core count, other work shared the machine."""
    return [round(x, 2) for x in os.getloadavg()]


def _ratio(a: float, b: float) -> float:
    return round(a / b, 1) if b else float("nan")


def _say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
