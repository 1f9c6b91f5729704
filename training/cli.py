"""`leadscore`: the command line. Each subcommand parses its flags and calls one plain function.

Errors a user can act on (LeadscoreError, and OSError such as a full disk) print one line to stderr
and exit 2; nothing else here decides anything.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from features import progress
from features.errors import LeadscoreError

Options = dict[str, Any]
_PARSER_KEYS = ("command", "schema_command", "handler", "verbose", "quiet")


def _generate(
    *,
    quarters: int,
    leads_per_quarter: int,
    seed: int,
    end: str,
    out: str,
    conversion_delay: str,
    base_rate_shift: float,
    leak_column: str | None,
    launch_quarter: int | None = None,
    expansion_quarter: int | None = None,
) -> int:
    from features.synthetic import generate, write_history

    history = generate(
        quarters=quarters,
        leads_per_quarter=leads_per_quarter,
        seed=seed,
        end=end,
        conversion_delay=conversion_delay,
        base_rate_shift=base_rate_shift,
        leak_column=leak_column,
        launch_quarter=launch_quarter,
        expansion_quarter=expansion_quarter,
    )
    paths = write_history(history, out)
    leads = history.leads
    print(
        f"wrote {len(leads):,} leads ({leads['converted'].mean():.1%} converted so far, "
        f"{leads['created_at'].min():%Y-%m-%d} to {leads['created_at'].max():%Y-%m-%d}) to {paths['leads']}"
    )
    print(f"      truth (never a feature) to {paths['truth']}")
    leaks = f" ({', '.join(history.leaks)} excluded as leakage)" if history.leaks else ""
    print(f"      schema to {paths['schema']}{leaks}")
    return 0


def _schema_json() -> int:
    import json

    from features.schema import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def _sleeping_openmp_threads() -> None:
    """Before LightGBM loads: idle OpenMP threads sleep instead of spinning. On a busy machine spinning
    threads fight other work for the cores (240k leads trained in 188 s spinning, 71 s sleeping)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _lazy(module: str, name: str, *, lightgbm: bool = False) -> Callable[..., int]:
    """A handler that imports its module only when its command runs, so `leadscore --help` stays fast."""

    def run(**options: Any) -> int:
        if lightgbm:
            _sleeping_openmp_threads()
        command: Callable[..., int] = getattr(importlib.import_module(module), name)
        return command(**options)

    return run


def _train(
    *,
    engine: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    from_log: bool = False,
    database_url: str | None = None,
    **options: Any,
) -> int:
    """`leadscore train`: in this process, on a Dask cluster (`--engine dask`), or on the prediction log."""
    _sleeping_openmp_threads()
    if engine == "dask":
        from training.distributed import train_command as train_on_dask

        return train_on_dask(scheduler=scheduler, workers=workers, **options)
    _local_only(scheduler=scheduler, workers=workers)
    from training.pipeline import train_command

    if from_log:
        from serving.predlog.export import train_from_log

        return train_from_log(train_command, database_url=database_url, **options)
    return train_command(**options)


def _score(*, engine: str = "local", scheduler: str | None = None, workers: int | None = None, **options: Any) -> int:
    """`leadscore score`: in this process (chunked) or on a Dask cluster (`--engine dask`)."""
    if engine == "dask":
        from serving.reports.distributed import score_command as score_on_dask

        return score_on_dask(scheduler=scheduler, workers=workers, **options)
    _local_only(scheduler=scheduler, workers=workers)
    from serving.reports.batch import score_command

    return score_command(**options)


def _local_only(**flags: Any) -> None:
    """--scheduler and --workers mean nothing without --engine dask: say so rather than run in process."""
    for flag, value in flags.items():
        if value is not None:
            raise LeadscoreError(f"--{flag} needs --engine dask", field=flag)


def _dask_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--engine", choices=["local", "dask"], default="local", help=f"local: this process; dask: {what}")
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="with --engine dask: a running Dask scheduler (default: start a LocalCluster on this machine)",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --engine dask and no --scheduler: local worker processes (default: one per core)",
    )


def _database_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--database-url", help=f"{what} (default: LEADSCORE_DATABASE_URL, else predictions.db)")


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says what happens without it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, argparse.SUPPRESS, False) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _add_quiet(parser: argparse.ArgumentParser) -> None:
    """`--quiet` after the subcommand too (`leadscore score ... --quiet`), where people type it."""
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress on stderr (it shows only on a terminal anyway)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore", description="Lead conversion predictor.", formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress on stderr (it shows only on a terminal anyway)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, sub: Any = sub) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    p = command("generate", "write a synthetic CRM history, its truth and its schema")
    p.add_argument("--quarters", type=int, default=12, help="how many calendar quarters of history")
    p.add_argument("--leads-per-quarter", type=int, default=20_000, help="leads created in each quarter")
    p.add_argument("--seed", type=int, default=7, help="the same seed gives the same history")
    p.add_argument("--end", default="2026-10-01", help="export date: the history ends here (exclusive)")
    p.add_argument("--out", default="data/leads.parquet", help="where to write the leads, .parquet or .csv")
    p.add_argument(
        "--conversion-delay",
        choices=["fast", "slow"],
        default="fast",
        help="fast: conversions within ~3 months; slow: up to ~9 months, like a marketing funnel",
    )
    p.add_argument(
        "--base-rate-shift",
        type=float,
        default=1.0,
        metavar="X",
        help="the last two quarters convert at X times the earlier base rate",
    )
    p.add_argument(
        "--leak-column",
        metavar="NAME",
        help="add a column of post-contact events that reveals the outcome (excluded in the schema; default: none)",
    )
    p.add_argument(
        "--launch-quarter",
        type=int,
        metavar="N",
        help="the quarter (0 = the first) the AI-assistant product launches in; --quarters means never "
        "(default: two thirds in)",
    )
    p.add_argument(
        "--expansion-quarter",
        type=int,
        metavar="N",
        help="the quarter India and Brazil turn from weak to good regions in; --quarters means never "
        "(default: half-way)",
    )
    _add_quiet(p)
    p.set_defaults(handler=_generate)

    schema = command("schema", "work with lead schemas")
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, metavar="SUBCOMMAND")
    p = command("infer", "draft a schema YAML for a CSV/Parquet export", schema_sub)
    p.add_argument("data", help="the export to describe (.csv or .parquet)")
    p.add_argument("--target", required=True, help="the column that says whether the lead converted")
    p.add_argument("--id", dest="id_column", help="the lead id column (default: guessed)")
    p.add_argument(
        "--created-at",
        dest="created_at",
        help="the column with the lead's creation time (default: guessed from the column names)",
    )
    p.add_argument(
        "--converted-at",
        dest="converted_at",
        help="the column with the conversion time (default: guessed from the column names)",
    )
    p.add_argument("--positive", help="comma-separated target values that mean converted (default: guessed)")
    p.add_argument("--out", help="write the YAML here (default: print it)")
    p.set_defaults(handler=_lazy("features.inference", "infer_schema_command"))
    p = command("json-schema", "print the JSON Schema of a schema YAML file, for editors", schema_sub)
    p.set_defaults(handler=_schema_json)

    p = command("validate", "check a data file against its schema")
    p.add_argument("data", help="the lead file to check (.csv or .parquet)")
    p.add_argument("--schema", help="schema YAML (default: the one beside the data, else the bundled one)")
    p.add_argument("--max-examples", type=int, default=5, help="example rows shown per problem")
    _add_quiet(p)
    p.set_defaults(handler=_lazy("features.validation", "validate_command"))

    p = command("train", "train, calibrate, evaluate, register and maybe promote a model")
    _data_options(p)
    p.add_argument("--as-of", dest="as_of", help="train on outcomes known by this date (default: the export date)")
    p.add_argument(
        "--export-date",
        dest="export_date",
        help="when the export was taken (default: its newest creation or conversion date)",
    )
    p.add_argument(
        "--half-life-days",
        dest="half_life_days",
        type=float,
        help="weight leads by recency: one this many days older than the newest counts half (default: off)",
    )
    p.add_argument(
        "--promote",
        choices=["auto", "never", "force"],
        default="auto",
        help="auto: make the new version champion when it is not worse on the same test quarter",
    )
    p.add_argument("--models-dir", default="models", help="where bundles are exported")
    p.add_argument(
        "--from-log",
        action="store_true",
        help="train on the prediction log joined with posted outcomes instead of --data",
    )
    _database_option(p, "with --from-log: the log")
    _dask_flags(p, "every LightGBM fit runs on a Dask cluster with lightgbm.dask")
    p.add_argument(
        "--force",
        action="store_true",
        help="train and register even when data, schema and parameters equal the champion's",
    )
    _add_quiet(p)
    p.set_defaults(handler=_train)

    p = command("backtest", "replay quarterly retraining over the history")
    _data_options(p)
    p.add_argument(
        "--from",
        dest="start",
        help="first quarter to score, e.g. 2024Q3 (default: the first with two mature quarters before it)",
    )
    p.add_argument("--to", dest="end", help="last quarter to score, e.g. 2026Q3 (default: the last mature one)")
    p.add_argument("--out", default="reports/backtest", help="folder for the table and chart")
    _add_quiet(p)
    p.set_defaults(handler=_lazy("training.backtest", "backtest_command", lightgbm=True))

    p = command("score", "score a file of leads in batch")
    p.add_argument("--data", required=True, help="the leads to score (.csv or .parquet)")
    _model_option(p)
    p.add_argument("--out", required=True, help="where to write the scores, .csv or .parquet")
    p.add_argument("--chunk-rows", type=int, default=100_000, help="leads read and scored at a time")
    _dask_flags(
        p,
        "score partitions on a Dask cluster (--data may then be a glob or a folder of parts; "
        "--out a folder of Parquet parts, or one .csv)",
    )
    _add_quiet(p)
    p.set_defaults(handler=_score)

    p = command("serve", "run the scoring API")
    p.add_argument("--host", default=None, help="address to listen on (default: LEADSCORE_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: LEADSCORE_PORT, else 8000)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server processes (default: LEADSCORE_WORKERS, else 1); one per core serves the most leads per second",
    )
    _model_option(p)
    p.set_defaults(handler=_lazy("serving.api.server", "serve_command"))

    p = command("report", "lead-quality report for marketing: HTML page plus CSV")
    _data_options(p)
    _model_option(p)
    p.add_argument(
        "--by",
        default=None,
        help="comma-separated grouping columns (default: the schema's roles.source and roles.campaign)",
    )
    p.add_argument("--quarter", help="quarter to report, e.g. 2026Q3 (default: the latest)")
    p.add_argument("--out", default="reports/", help="folder for report.html and the CSV tables")
    _add_quiet(p)
    p.set_defaults(handler=_lazy("serving.reports.report", "report_command"))

    p = command("kpis", "shared KPIs for marketing and sales, from the prediction log or a history file")
    p.add_argument("--data", help="a lead history file to explain instead of reading the prediction log")
    p.add_argument("--schema", help="schema YAML (default: the model's)")
    _model_option(p)
    _database_option(p, "the prediction log")
    p.add_argument(
        "--quarter", help="with --data: the last quarter to include (four quarters are reported; default: the latest)"
    )
    p.add_argument("--out", default="reports/", help="folder for kpis.html and the CSV tables")
    _add_quiet(p)
    p.set_defaults(handler=_lazy("serving.reports.kpis", "kpis_command"))

    p = command("monitor", "live AUC, calibration and score mix by week, from the prediction log")
    _database_option(p, "the prediction log")
    p.add_argument("--weeks", type=int, default=12, help="weeks to print")
    p.add_argument("--fail-on-drop", action="store_true", help="exit 1 when a drop is flagged (for cron or CI)")
    p.set_defaults(handler=_lazy("serving.predlog.monitor", "monitor_command"))

    p = command("drift", "per-feature drift (PSI) between the training window and the latest quarter")
    _data_options(p)
    p.add_argument("--threshold", type=float, default=0.2, help="flag features whose PSI is above this")
    p.add_argument("--quarter", help="check this quarter instead of the latest, e.g. 2025Q4 (default: the latest)")
    _add_quiet(p)
    p.set_defaults(handler=_lazy("features.drift", "drift_command"))
    return parser


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="data/leads.parquet", help="the lead history (.csv or .parquet)")
    p.add_argument("--schema", help="schema YAML (default: the one beside the data, else the bundled one)")


def _model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        help="a bundle folder or a registry URI such as models:/lead-conversion/3 "
        "(default: models:/lead-conversion@champion)",
    )


def _version() -> str:
    try:
        return importlib.metadata.version("leadscore")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def options(args: argparse.Namespace) -> Options:
    """The parsed options as the keyword arguments of the command's function."""
    return {k: v for k, v in vars(args).items() if k not in _PARSER_KEYS}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    progress.set_quiet(args.quiet)
    handler: Callable[..., int] = args.handler
    try:
        return handler(**options(args))
    except LeadscoreError as exc:
        print(f"leadscore {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"leadscore {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a full disk, a read-only folder: the machine's problem, said in one line
        where = f": {exc.filename}" if exc.filename else ""
        print(f"leadscore {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
