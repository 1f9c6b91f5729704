"""Explaining next to predicting, in one process and one run: the ratio issue 9 is judged by.

    python bench/explain_speed.py [--model PATH|URI] [--leads 20000]

On the same synthetic leads it times `Scorer.explain` (probability, grade, factor impacts, top
reason), `Scorer.predict_proba`, our TreeSHAP kernel (on 1 and 2 threads, and one lead per call as a
request explains it) and LightGBM's `pred_contrib` on 1 and 2 threads, and checks that ours equals
`pred_contrib` to 1e-9 on every lead. Wall time gives leads/s, process CPU time gives µs of CPU per
lead (steadier when other work shares the machine); the ratios come from the same run. Without
--model it explains the champion (`make demo` trains one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

EXACT = 1e-9


def timed(work: Callable[[], Any], repeats: int = 3) -> tuple[float, float]:
    """Best wall seconds and best CPU seconds (all threads of this process) over `repeats` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        work()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    return min(wall), min(cpu)


def measure(scorer: Any, frame: Any, repeats: int = 3) -> dict[str, Any]:
    """Leads/s and CPU µs per lead for each way of explaining or predicting `frame`, with ratios."""
    n = len(frame)
    X = scorer.bundle.encoder.transform(frame)
    scorer.explain(frame.iloc[:100])  # warm-up
    runs: dict[str, Callable[[], Any]] = {
        "explain": lambda: scorer.explain(frame),
        "predict_proba": lambda: scorer.predict_proba(frame),
        "contributions": lambda: scorer.contributions(X),
    }
    forest, booster = scorer._forest, scorer.bundle.booster if scorer.bundle.tree_weight > 0 else None
    if forest is not None:
        runs["treeshap_1_thread"] = lambda: forest.contributions(X, threads=1)
        runs["treeshap_2_threads"] = lambda: forest.contributions(X, threads=2)
        runs["treeshap_one_lead"] = lambda: [forest.contributions(X[i : i + 1]) for i in range(n)]  # a request's lead
    if booster is not None:
        runs["pred_contrib_1_thread"] = lambda: booster.predict(X, pred_contrib=True, num_threads=1)
        runs["pred_contrib_2_threads"] = lambda: booster.predict(X, pred_contrib=True, num_threads=2)
        runs["lightgbm_predict"] = lambda: booster.predict(X, raw_score=True, num_threads=1)
    out: dict[str, Any] = {"leads": n, "family": scorer.bundle.family, "load_before": os.getloadavg()}
    for name, work in runs.items():
        wall, cpu = timed(work, 1 if name.startswith("pred_contrib") else repeats)
        out[name] = {"leads_per_s": round(n / wall), "cpu_us_per_lead": round(cpu / n * 1e6, 1)}
        _say(f"{name:>24}: {n / wall:>10,.0f} leads/s {cpu / n * 1e6:>9.1f} µs CPU per lead")
    out["load_after"] = os.getloadavg()
    out["explain_vs_predict_proba"] = round(out["explain"]["leads_per_s"] / out["predict_proba"]["leads_per_s"], 4)
    out["explain_vs_predict_proba_cpu"] = round(
        out["predict_proba"]["cpu_us_per_lead"] / out["explain"]["cpu_us_per_lead"], 4
    )
    if forest is not None and booster is not None:
        ours, theirs = forest.contributions(X), booster.predict(X, pred_contrib=True)
        out["max_abs_diff_vs_pred_contrib"] = float(np.max(np.abs(ours - theirs)))
        out["exact"] = out["max_abs_diff_vs_pred_contrib"] <= EXACT
        out["treeshap_vs_pred_contrib_cpu"] = round(
            out["pred_contrib_1_thread"]["cpu_us_per_lead"] / out["treeshap_1_thread"]["cpu_us_per_lead"], 2
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="bundle folder or models:/ URI (default: the champion)")
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs per measurement")
    args = parser.parse_args()

    from features.synthetic import generate
    from serving.model.scorer import Scorer

    scorer = Scorer.load(args.model)
    frame = generate(quarters=4, leads_per_quarter=-(-args.leads // 4), seed=12).leads.iloc[: args.leads]
    result = measure(scorer, frame, repeats=args.repeats)
    _say(
        f"explain / predict_proba: {result['explain_vs_predict_proba']:.3f} in leads/s, "
        f"{result['explain_vs_predict_proba_cpu']:.3f} in CPU per lead (issue 9 target: 0.4)"
    )
    if "exact" in result:
        _say(
            f"TreeSHAP vs LightGBM pred_contrib: {result['treeshap_vs_pred_contrib_cpu']:.2f}x less CPU per lead, "
            f"max |difference| {result['max_abs_diff_vs_pred_contrib']:.1e} on all {len(frame):,} leads"
        )
    _say(f"load average (1/5/15 min): {result['load_before']} before, {result['load_after']} after")
    print(json.dumps(result))
    return 0 if result.get("exact", True) else 1


def _say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
