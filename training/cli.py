"""`leadscore`: the command line. Each subcommand parses its flags and calls one plain function.

Errors a user can act on (LeadscoreError) print one line to stderr and exit 2; nothing else here
decides anything.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence

from features.errors import LeadscoreError

Handler = Callable[[argparse.Namespace], int]


def _generate(args: argparse.Namespace) -> int:
    from features.synthetic import generate, write_history

    history = generate(quarters=args.quarters, leads_per_quarter=args.leads_per_quarter, seed=args.seed,
                       end=args.end, conversion_delay=args.conversion_delay, base_rate_shift=args.base_rate_shift,
                       leak_column=args.leak_column)
    paths = write_history(history, args.out)
    leads = history.leads
    print(f"wrote {len(leads):,} leads ({leads['converted'].mean():.1%} converted so far, "
          f"{leads['created_at'].min():%Y-%m-%d} to {leads['created_at'].max():%Y-%m-%d}) to {paths['leads']}")
    print(f"      truth (never a feature) to {paths['truth']}")
    leaks = f" ({', '.join(history.leaks)} excluded as leakage)" if history.leaks else ""
    print(f"      schema to {paths['schema']}{leaks}")
    return 0


def _schema_infer(args: argparse.Namespace) -> int:
    from features.inference import infer_schema_command

    return infer_schema_command(args)


def _schema_json(args: argparse.Namespace) -> int:
    import json

    from features.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from features.validation import validate_command

    return validate_command(args)


def _sleeping_openmp_threads() -> None:
    """Before LightGBM loads: idle OpenMP threads sleep instead of spinning. On a busy machine spinning
    threads fight other work for the cores (240k leads trained in 188 s spinning, 71 s sleeping)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _train(args: argparse.Namespace) -> int:
    _sleeping_openmp_threads()
    from training.pipeline import train_command

    return train_command(args)


def _backtest(args: argparse.Namespace) -> int:
    _sleeping_openmp_threads()
    from training.backtest import backtest_command

    return backtest_command(args)


def _score(args: argparse.Namespace) -> int:
    from serving.batch import score_command

    return score_command(args)


def _serve(args: argparse.Namespace) -> int:
    from serving.server import serve_command

    return serve_command(args)


def _report(args: argparse.Namespace) -> int:
    from serving.report import report_command

    return report_command(args)


def _drift(args: argparse.Namespace) -> int:
    from features.drift import drift_command

    return drift_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leadscore", description="Lead conversion predictor.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("generate", help="write a synthetic CRM history, its truth and its schema")
    p.add_argument("--quarters", type=int, default=12)
    p.add_argument("--leads-per-quarter", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--end", default="2026-10-01", help="export date: the history ends here (exclusive)")
    p.add_argument("--out", default="data/leads.parquet", help=".parquet or .csv")
    p.add_argument("--conversion-delay", choices=["fast", "slow"], default="fast",
                   help="fast: conversions within ~3 months; slow: up to ~9 months, like a marketing funnel")
    p.add_argument("--base-rate-shift", type=float, default=1.0, metavar="X",
                   help="the last two quarters convert at X times the earlier base rate")
    p.add_argument("--leak-column", metavar="NAME",
                   help="add a column of post-contact events that reveals the outcome (excluded in the schema)")
    p.set_defaults(handler=_generate)

    schema = sub.add_parser("schema", help="work with lead schemas")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, metavar="SUBCOMMAND")
    p = schema_sub.add_parser("infer", help="draft a schema YAML for a CSV/Parquet export")
    p.add_argument("data")
    p.add_argument("--target", required=True, help="the column that says whether the lead converted")
    p.add_argument("--id", dest="id_column", help="the lead id column (guessed when omitted)")
    p.add_argument("--created-at", dest="created_at", help="the column with the lead's creation time")
    p.add_argument("--converted-at", dest="converted_at", help="the column with the conversion time")
    p.add_argument("--positive", help="comma-separated target values that mean converted (guessed when omitted)")
    p.add_argument("--out", help="write the YAML here (default: print it)")
    p.set_defaults(handler=_schema_infer)
    p = schema_sub.add_parser("json-schema", help="print the JSON Schema of a schema YAML file, for editors")
    p.set_defaults(handler=_schema_json)

    p = sub.add_parser("validate", help="check a data file against its schema")
    p.add_argument("data")
    p.add_argument("--schema", help="schema YAML (default: the one beside the data, else the bundled one)")
    p.add_argument("--max-examples", type=int, default=5)
    p.set_defaults(handler=_validate)

    p = sub.add_parser("train", help="train, calibrate, evaluate, register and maybe promote a model")
    p.add_argument("--data", default="data/leads.parquet")
    p.add_argument("--schema")
    p.add_argument("--as-of", dest="as_of",
                   help="train on outcomes known by this date (default: the export date)")
    p.add_argument("--export-date", dest="export_date",
                   help="when the export was taken (default: its newest creation or conversion date)")
    p.add_argument("--half-life-days", dest="half_life_days", type=float,
                   help="weight leads by recency: one this many days older than the newest counts half (default: off)")
    p.add_argument("--promote", choices=["auto", "never", "force"], default="auto")
    p.add_argument("--models-dir", default="models", help="where bundles are exported")
    p.set_defaults(handler=_train)

    p = sub.add_parser("backtest", help="replay quarterly retraining over the history")
    p.add_argument("--data", default="data/leads.parquet")
    p.add_argument("--schema")
    p.add_argument("--from", dest="start", help="first quarter to score, e.g. 2024Q3")
    p.add_argument("--to", dest="end", help="last quarter to score, e.g. 2026Q3")
    p.add_argument("--out", default="reports/backtest", help="folder for the table and chart")
    p.set_defaults(handler=_backtest)

    p = sub.add_parser("score", help="score a file of leads in batch")
    p.add_argument("--data", required=True)
    p.add_argument("--model", help="models:/lead-conversion@champion (default), a version URI, or a bundle folder")
    p.add_argument("--out", required=True, help=".csv or .parquet")
    p.add_argument("--chunk-rows", type=int, default=100_000)
    p.set_defaults(handler=_score)

    p = sub.add_parser("serve", help="run the scoring API")
    p.add_argument("--host", default=None, help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="default 8000")
    p.add_argument("--workers", type=int, default=None,
                   help="server processes (default 1); one per core serves the most leads per second")
    p.add_argument("--model", help="models:/lead-conversion@champion (default), a version URI, or a bundle folder")
    p.set_defaults(handler=_serve)

    p = sub.add_parser("report", help="lead-quality report for marketing: HTML page plus CSV")
    p.add_argument("--data", default="data/leads.parquet")
    p.add_argument("--schema")
    p.add_argument("--model", help="models:/lead-conversion@champion (default), a version URI, or a bundle folder")
    p.add_argument("--by", default=None,
                   help="comma-separated grouping columns (default: the schema's roles.source and roles.campaign)")
    p.add_argument("--quarter", help="quarter to report, e.g. 2026Q3 (default: the latest)")
    p.add_argument("--out", default="reports/")
    p.set_defaults(handler=_report)

    p = sub.add_parser("drift", help="per-feature drift (PSI) between the training window and the latest quarter")
    p.add_argument("--data", default="data/leads.parquet")
    p.add_argument("--schema")
    p.add_argument("--threshold", type=float, default=0.2, help="flag features whose PSI is above this")
    p.add_argument("--quarter", help="check this quarter instead of the latest, e.g. 2025Q4")
    p.set_defaults(handler=_drift)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    try:
        return handler(args)
    except LeadscoreError as exc:
        print(f"leadscore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leadscore {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
