"""What `Scorer.score` (the API's full answer: probability, factors, reasons, what-ifs) costs per lead.

    python bench/score_speed.py [--model PATH|URI] [--leads 2000] [--rounds 5]

In process, no HTTP: one lead per call (what `POST /v1/score` asks of the scorer), and chunks of 128
(the batch endpoint's chunk) and 1,000 leads per call. CPU time of this process gives µs per lead
(steadier than wall time on a shared machine); leads/s is one core's rate from it. Issue 9's targets
for the scorer's side: one lead <= 250 µs CPU (HTTP p50 <= 1 ms with a ~0.5 ms floor), >= 20,000
leads/s in chunks (the batch endpoint's 10,000/s with parsing and JSON on top). It also checks that a
batch answers exactly what one-by-one calls answer. Without --model it scores the champion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

TARGETS = {"one_lead_cpu_us": 250.0, "leads_per_s": 20_000.0}
CHUNKS = (128, 1000)


def one_lead_us(scorer: Any, records: list[dict[str, Any]], rounds: int) -> float:
    """Median CPU µs of `score([lead])` over every lead, `rounds` times."""
    scorer.score(records[:1])
    times = []
    for _ in range(rounds):
        for record in records:
            start = time.process_time()
            scorer.score([record])
            times.append(time.process_time() - start)
    return statistics.median(times) * 1e6


def chunk_us(scorer: Any, records: list[dict[str, Any]], chunk: int, rounds: int) -> float:
    """Best (over rounds) CPU µs per lead of scoring all leads `chunk` at a time."""
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for first in range(0, len(records), chunk):
            scorer.score(records[first : first + chunk])
        best = min(best, time.process_time() - start)
    return best / len(records) * 1e6


def measure(scorer: Any, records: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leads": len(records), "family": scorer.bundle.family, "load_before": os.getloadavg()}
    out["one_lead_cpu_us"] = round(one_lead_us(scorer, records[:500], rounds), 1)
    _say(f"score([lead]): {out['one_lead_cpu_us']:>8.1f} µs CPU (target <= {TARGETS['one_lead_cpu_us']:.0f})")
    for chunk in CHUNKS:
        us = chunk_us(scorer, records, chunk, rounds)
        out[f"chunk_{chunk}"] = {"cpu_us_per_lead": round(us, 1), "leads_per_s_one_core": round(1e6 / us)}
        _say(
            f"score(chunks of {chunk:>4}): {us:>8.1f} µs CPU per lead = {1e6 / us:>7,.0f} leads/s on one core "
            f"(target >= {TARGETS['leads_per_s']:,.0f} in process)"
        )
    out["load_after"] = os.getloadavg()
    out["batch_equals_one_by_one"] = same_answers(scorer, records[:300])
    _say(f"a batch answers exactly what one-by-one calls answer: {out['batch_equals_one_by_one']}")
    _say(f"load average (1/5/15 min): {out['load_before']} before, {out['load_after']} after")
    return out


def same_answers(scorer: Any, records: list[dict[str, Any]]) -> bool:
    return bool(scorer.score(records) == [scorer.score([record])[0] for record in records])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="bundle folder or models:/ URI (default: the champion)")
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="best (chunks) or median (one lead) over rounds")
    args = parser.parse_args()

    from serve_latency import sample_leads

    from serving.model.scorer import Scorer

    scorer = Scorer.load(args.model)
    records = [json.loads(body) for body in sample_leads(args.model, args.leads)]  # None: the champion
    result = measure(scorer, records, args.rounds)
    print(json.dumps(result))
    return 0 if result["batch_equals_one_by_one"] else 1


def _say(message: str) -> None:
    print(message, flush=True)


if __name__ == "__main__":
    sys.exit(main())
