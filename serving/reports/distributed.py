"""Explained batch scoring on Dask: `leadscore score --engine dask`, and Dask frames in notebooks.

The same `Scorer.explain` as the in-process path, run partition by partition on a Dask cluster (a
`LocalCluster` by default, a scheduler address for a real one). Three things make it a product rather
than a `map_partitions` call:

- The bundle travels once per worker, not with every task: a worker plugin carries its files (a few
  MB, no pickle of the model), writes them to the worker's temp folder and loads one `Scorer` there.
  Workers need the project installed and nothing else.
- Every partition is checked with the in-process rules (`serving.reports.batch`), and a bad cell fails the run
  with the same text, naming the file, the partition and the data row within the file.
- The output is a folder of Parquet parts (or one CSV) written beside the target under a temporary
  name and renamed only when every partition succeeded: a failed run leaves no output.

    >>> from serving.reports import distributed
    >>> with distributed.connect(workers=2) as client:                         # doctest: +SKIP
    ...     summary = distributed.score_files(scorer, "exports/*.parquet", "scored/")
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataError, LeadscoreError
from features.files import readable_mode
from features.lead_checks import check_frame
from features.loading import SUFFIXES, read_header, table_format
from serving.model.bundle import Bundle
from serving.model.scorer import Scorer
from serving.reports.batch import _check_columns

_logger = logging.getLogger(__name__)

CSV_BLOCKSIZE = "64MB"  # one CSV partition: ~200,000 leads, a few hundred MB once explained
PLUGIN_PREFIX = "leadscore-scorer-"


class ClusterError(LeadscoreError):
    """The Dask scheduler cannot be reached or the cluster cannot start."""


# -- the cluster ---------------------------------------------------------------------------------


@contextlib.contextmanager
def connect(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A `distributed.Client`: to `scheduler` when given, else to a LocalCluster of `workers` processes
    (default: one per core, one thread each; the scorer's kernels are single-threaded). The dashboard
    takes a free port, so a second job or a busy 8787 never stops a run."""
    from distributed import Client, LocalCluster

    if workers is not None and workers < 1:
        raise ClusterError(f"--workers must be at least 1, got {workers}", field="workers")
    if scheduler and workers is not None:
        raise ClusterError(
            "--workers starts local workers; a scheduler's workers are started with `dask worker` "
            "(leave out --workers or --scheduler)",
            field="workers",
        )
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ClusterError(
                f"cannot reach the Dask scheduler at {scheduler} ({_first_line(exc)}); "
                "start one with `dask scheduler` or leave out --scheduler for a local cluster",
                field="scheduler",
            ) from None
        with client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


# -- the scorer on the workers ---------------------------------------------------------------------


def _plugin_class() -> type:
    from distributed.diagnostics.plugin import WorkerPlugin

    class ScorerPlugin(WorkerPlugin):
        """Carries a bundle's files to each worker once and keeps one loaded Scorer there."""

        def __init__(self, name: str, files: dict[str, bytes]) -> None:
            self.name = name
            self.files = files
            self.scorer: Scorer | None = None
            self._folder: str | None = None

        def setup(self, worker: Any) -> None:
            self._folder = tempfile.mkdtemp(prefix="leadscore-bundle-")
            for filename, content in self.files.items():
                Path(self._folder, filename).write_bytes(content)
            self.scorer = Scorer(Bundle.load(self._folder))

        def teardown(self, worker: Any) -> None:
            if self._folder:
                shutil.rmtree(self._folder, ignore_errors=True)

    return ScorerPlugin


def install_scorer(client: Any, bundle: Bundle) -> str:
    """Register the bundle with every worker (present and future); returns the plugin's name."""
    with tempfile.TemporaryDirectory(prefix="leadscore-bundle-") as folder:
        saved = bundle.save(Path(folder) / "bundle")
        files = {p.name: p.read_bytes() for p in sorted(saved.iterdir()) if p.is_file()}
    import hashlib

    digest = hashlib.sha256(b"".join(files[k] for k in sorted(files))).hexdigest()[:16]
    name = PLUGIN_PREFIX + digest
    client.register_plugin(_plugin_class()(name, files), name=name)
    return name


def worker_scorer(plugin: str) -> Scorer:
    """The Scorer the plugin loaded on the worker running this task."""
    from distributed import get_worker

    loaded: Any = get_worker().plugins[plugin]  # our plugin class, made in _plugin_class
    scorer = loaded.scorer
    if scorer is None:  # pragma: no cover - setup runs before any task
        raise RuntimeError(f"worker plugin {plugin} has no scorer loaded")
    return scorer


# -- inputs ----------------------------------------------------------------------------------------


def expand_inputs(data: str | Path) -> list[Path]:
    """A file, a glob (`exports/*.csv`) or a folder of parts, as a sorted list of CSV/Parquet files."""
    text = str(data)
    if any(ch in text for ch in "*?["):
        files = [Path(p) for p in sorted(glob.glob(text))]
        where = f"no file matches {text}"
    elif Path(text).is_dir():
        files = sorted(p for p in Path(text).iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith("."))
        where = f"{text}: the folder holds no .csv or .parquet files"
    else:
        return [Path(text)]
    files = [p for p in files if p.is_file()]
    if not files:
        raise DataError(where)
    formats = {table_format(p) for p in files}
    if len(formats) > 1:
        raise DataError(f"{text}: mixes CSV and Parquet files; score each kind separately")
    return files


@dataclass(frozen=True)
class Part:
    """One partition: which file it comes from and, for Parquet, its first row in that file."""

    index: int
    source: str
    rows_before: int | None  # known for Parquet row groups; CSV blocks learn it from earlier parts


def read_frame(files: Sequence[Path], *, csv_blocksize: str | int = CSV_BLOCKSIZE) -> tuple[Any, list[Part]]:
    """The files as one Dask dataframe (Parquet: one partition per row group; CSV: 64 MB blocks, every
    cell read as text like the in-process path), and where each partition comes from."""
    import dask.dataframe as dd

    parts: list[Part] = []
    if table_format(files[0]) == "parquet":
        import pyarrow.parquet as pq

        pieces = []
        for path in files:
            meta = _parquet_meta(path)
            before = 0
            for group in range(meta.num_row_groups):
                pieces.append((str(path), group))
                parts.append(Part(len(parts), path.name, before))
                before += meta.row_group(group).num_rows
        if not pieces:
            raise DataError(f"{files[0].name}: the file has a header but no rows")
        meta = pq.read_schema(files[0]).empty_table().to_pandas()
        return dd.from_map(_read_row_group, pieces, meta=meta, enforce_metadata=False), parts
    frames = []
    for path in files:
        try:
            part = dd.read_csv(str(path), dtype=str, na_values=[""], skipinitialspace=True, blocksize=csv_blocksize)
        except Exception as exc:  # noqa: BLE001 - parser and OS errors mean the same to a user
            raise DataError(f"{path.name}: not a readable CSV table ({_first_line(exc)})") from None
        frames.append(part)
        parts += [Part(len(parts) + i, path.name, None) for i in range(part.npartitions)]
    return (frames[0] if len(frames) == 1 else dd.concat(frames)), parts


def _parquet_meta(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.read_metadata(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file means the same to a user
        raise DataError(f"{path.name}: not a readable PARQUET table ({_first_line(exc)})") from None


def _read_row_group(piece: tuple[str, int]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    path, group = piece
    return pq.ParquetFile(path).read_row_group(group).to_pandas()


# -- scoring -------------------------------------------------------------------------------------


def score_partition(
    chunk: pd.DataFrame, *, plugin: str, part: Part, folder: str, fmt: str, chunk_rows: int
) -> dict[str, Any]:
    """Check and explain one partition on a worker; write it as one part file in `folder`.

    Returns its row count and grades, or the error: the run fails on the first bad partition (in
    input order), named with its file row once the rows of the partitions before it are known.
    """
    scorer = worker_scorer(plugin)
    status: dict[str, Any] = {"index": part.index, "rows": len(chunk), "grades": {}, "error": None}
    try:
        check_frame(chunk, scorer.schema, source=_where(part), rows_before=part.rows_before or 0)
    except DataError as exc:
        status["error"] = str(exc)
        return status
    explained = scorer.explain(chunk, chunk_rows=chunk_rows)
    explained = explained.rename(columns={"lead_id": scorer.schema.id_column})
    target = Path(folder) / f"part-{part.index:05d}.{fmt}"
    if fmt == "parquet":
        explained.to_parquet(target, index=False)
    else:
        explained.to_csv(target, index=False, header=part.index == 0)
    status["grades"] = dict(Counter(explained["grade"].tolist()))
    return status


def score_files(
    scorer: Scorer,
    data: str | Path,
    out: str | Path,
    *,
    client: Any = None,
    chunk_rows: int = 100_000,
    progress: bool = False,
    csv_blocksize: str | int = CSV_BLOCKSIZE,
) -> dict[str, Any]:
    """Explain every lead of `data` (file, glob or folder) on the cluster into `out` atomically.

    `out` ending in .csv is one CSV file; anything else is a folder of Parquet parts in input order
    (`pd.read_parquet(out)` reads it back). Returns row and grade counts and the missing columns.
    """
    from distributed import get_client

    client = client or get_client()
    out = Path(out)
    fmt = output_format(out)
    files = expand_inputs(data)
    missing: list[str] = []
    for path in files:  # every header before any row is read, like the in-process path
        missing = _check_columns(read_header(path), scorer, path.name)
    frame, parts = read_frame(files, csv_blocksize=csv_blocksize)
    plugin = install_scorer(client, scorer.bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        import dask

        tasks = [
            dask.delayed(score_partition)(
                block, plugin=plugin, part=part, folder=str(staging), fmt=fmt, chunk_rows=chunk_rows
            )
            for block, part in zip(frame.to_delayed(), parts, strict=True)
        ]
        futures = client.compute(tasks)
        if progress:
            from distributed import progress as show_progress

            show_progress(futures)
            print(file=sys.stderr)
        statuses = _gather(client, futures)
        _raise_first_error(statuses, parts, frame, scorer)
        rows = sum(s["rows"] for s in statuses)
        if rows == 0:
            raise DataError(f"{files[0].name}: the file has a header but no rows")
        _publish(staging, out, fmt)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    grades: Counter[str] = Counter()
    for status in statuses:
        grades.update(status["grades"])
    return {"rows": rows, "grades": dict(grades), "missing_columns": missing, "partitions": len(parts)}


def output_format(out: Path) -> str:
    """`csv` for one CSV file, `parquet` for a folder of parts; refused before any work when `out` is
    something else, or a file or folder this command did not write (it would be replaced)."""
    suffix = out.suffix.lower()
    if suffix not in ("", ".csv", ".parquet", ".pq"):
        raise DataError(
            f"{out.name}: --out must end in .csv (one file) or name a folder for Parquet parts", field="out"
        )
    fmt = "csv" if suffix == ".csv" else "parquet"
    if fmt == "parquet" and out.exists() and (not out.is_dir() or any(p.suffix != ".parquet" for p in out.iterdir())):
        raise DataError(f"{out}: exists and is not an earlier scored folder; choose another --out", field="out")
    return fmt


def _gather(client: Any, futures: list[Any]) -> list[dict[str, Any]]:
    """The partitions' statuses; a task that crashed (a worker killed, out of memory) is one line."""
    try:
        return client.gather(futures)
    except Exception as exc:  # noqa: BLE001 - anything from the cluster means the same to a user
        raise ClusterError(
            f"a Dask task failed, nothing was written: {type(exc).__name__}: {_first_line(exc)}"
        ) from None


def _raise_first_error(statuses: list[dict[str, Any]], parts: list[Part], frame: Any, scorer: Scorer) -> None:
    """The first failed partition in input order, with its row counted from the start of its file."""
    failed = [s for s in statuses if s["error"]]
    if not failed:
        return
    first = min(failed, key=lambda s: s["index"])
    part = parts[first["index"]]
    if part.rows_before is not None:
        raise DataError(first["error"])
    before = sum(s["rows"] for s in statuses if s["index"] < part.index and parts[s["index"]].source == part.source)
    chunk = frame.partitions[part.index].compute(scheduler="sync")
    check_frame(chunk, scorer.schema, source=_where(part), rows_before=before)  # the same check, now with file rows
    raise DataError(first["error"])  # pragma: no cover - the check above raises


def _where(part: Part) -> str:
    return f"{part.source} (partition {part.index})"


def _publish(staging: Path, out: Path, fmt: str) -> None:
    """Move the finished parts into place; an earlier output of the same name is replaced."""
    if fmt == "csv":
        joined = staging / "joined.csv"
        with joined.open("wb") as sink:
            for piece in sorted(staging.glob("part-*.csv")):
                with piece.open("rb") as source:
                    shutil.copyfileobj(source, sink)
        os.chmod(joined, readable_mode())
        os.replace(joined, out)
        return
    for piece in staging.iterdir():
        os.chmod(piece, readable_mode())
    os.chmod(staging, readable_mode() | (readable_mode() & 0o444) >> 2)  # a folder: x wherever r
    old = None
    if out.exists():  # an earlier scored folder (output_format refused anything else)
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, old)
    os.replace(staging, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- the command and the analyst ---------------------------------------------------------------------


def score_command(
    *,
    data: str | Path,
    out: str | Path,
    model: str | None = None,
    chunk_rows: int = 100_000,
    scheduler: str | None = None,
    workers: int | None = None,
) -> int:
    """`leadscore score --engine dask`: connect, score, print the summary line."""
    out = Path(out)
    if int(chunk_rows) < 1:
        raise DataError(f"--chunk-rows must be at least 1, got {chunk_rows}")
    scorer = Scorer.load(model, engine="lightgbm")  # the driver only reads the schema; workers explain
    with connect(scheduler, workers) as client:
        print(
            f"dask: {len(client.scheduler_info()['workers'])} workers, dashboard {client.dashboard_link}",
            file=sys.stderr,
        )
        summary = score_files(
            scorer, data, out, client=client, chunk_rows=int(chunk_rows), progress=sys.stderr.isatty()
        )
    grades = ", ".join(f"{g} {summary['grades'].get(g, 0):,}" for g in scorer.schema.grades)
    print(
        f"scored {summary['rows']:,} leads in {summary['partitions']:,} partitions with {scorer.bundle.name} "
        f"version {scorer.bundle.version} to {out} (grades: {grades})"
    )
    if summary["missing_columns"]:
        print(
            f"note: {len(summary['missing_columns'])} schema fields absent from the data were scored as missing: "
            f"{', '.join(summary['missing_columns'][:5])}",
            file=sys.stderr,
        )
    return 0


def explain_frame(
    frame: Any, scorer: Scorer, *, client: Any = None, chunk_rows: int = 100_000, keep: Sequence[str] = ()
) -> Any:
    """`Scorer.explain` over a Dask dataframe, lazily: a Dask dataframe of the same partitions.

    Needs a `distributed.Client` (the current one unless given): the bundle goes to its workers once.
    """
    from distributed import get_client

    try:
        client = client or get_client()
    except ValueError:
        raise ClusterError(
            "explaining a Dask dataframe needs a Dask client: `from distributed import Client; "
            "client = Client()` starts a local cluster"
        ) from None
    plugin = install_scorer(client, scorer.bundle)
    meta = scorer.explain(frame._meta)
    for column in keep:
        meta[column] = frame._meta[column]
    return frame.map_partitions(
        _explain_partition, plugin=plugin, chunk_rows=chunk_rows, keep=tuple(keep), meta=meta, enforce_metadata=False
    )


def _explain_partition(chunk: pd.DataFrame, *, plugin: str, chunk_rows: int, keep: tuple[str, ...]) -> pd.DataFrame:
    from features.lead_checks import check_frame

    scorer = worker_scorer(plugin)
    check_frame(chunk, scorer.schema, source="frame")  # the in-process analyst's check, per partition
    explained = scorer.explain(chunk, chunk_rows=chunk_rows)
    explained.index = chunk.index
    for column in keep:
        explained[column] = chunk[column]
    return explained


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
