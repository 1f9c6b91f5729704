"""How fast an analyst can explain a big table: leads/s for `analyst.explain` on one million leads.

    python bench/explain_1m.py [--leads 1000000] [--model PATH|URI] [--chunk-rows 100000]

Without --model it trains a bundle the way `leadscore train` does, on the default-size synthetic
history (12 quarters x 20,000 leads; not timed), so the model's size, which is what exact TreeSHAP
costs, is the one users get. Prints one line per measurement and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from features.synthetic import bundled_schema, generate  # noqa: E402
from serving.reports import analyst  # noqa: E402


def train_bundle(folder: Path) -> Path:
    """A bundle trained like `leadscore train` on the README's default data size."""
    from training.model import fit_lightgbm, make_bundle
    from training.splits import label_at, time_split

    schema = bundled_schema()
    leads = generate(quarters=12, leads_per_quarter=20_000, seed=7).leads
    split = time_split(label_at(leads, schema), schema)
    fitted = fit_lightgbm(split.train, split.y_train, split.valid, split.y_valid, schema)
    bundle = make_bundle(
        fitted,
        split.valid,
        split.y_valid,
        schema,
        {"name": "lead-conversion", "version": "bench", "test_quarter": split.report.test_quarter},
    )
    print(f"trained a bench model: {fitted.booster.num_trees()} trees", flush=True)
    return bundle.save(folder / "bench-model")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--model", help="bundle folder or models:/ URI (default: train one, untimed)")
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(train_bundle(Path(tmp)))
        scorer = analyst.load_scorer(model)
        per_quarter = -(-args.leads // 12)
        leads = generate(quarters=12, leads_per_quarter=per_quarter, seed=8).leads.iloc[: args.leads]

        start = time.perf_counter()
        probabilities = scorer.predict_proba(leads)
        predict_s = time.perf_counter() - start

        start = time.perf_counter()
        explained = analyst.explain(leads, scorer, chunk_rows=args.chunk_rows, progress=sys.stderr.isatty())
        explain_s = time.perf_counter() - start

    assert len(explained) == len(leads) == len(probabilities)
    result = {
        "leads": len(leads),
        "explain_seconds": round(explain_s, 2),
        "explain_leads_per_s": round(len(leads) / explain_s),
        "predict_seconds": round(predict_s, 2),
        "predict_leads_per_s": round(len(leads) / predict_s),
        "family": scorer.bundle.family,
        "trees": scorer.bundle.booster.num_trees() if scorer.bundle.booster is not None else 0,
        "chunk_rows": args.chunk_rows,
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
    }
    print(f"explain: {result['leads']:,} leads in {explain_s:.1f} s = {result['explain_leads_per_s']:,} leads/s")
    print(f"predict: {result['leads']:,} leads in {predict_s:.1f} s = {result['predict_leads_per_s']:,} leads/s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
