"""What a killed `leadscore train` leaves behind, found and repaired by the next one.

A training run writes, in this order: its MLflow run (tagged with this host and process id), the
logged model, the registered version, the local export, the version's tags, the `challenger` and
(when promoted) `champion` aliases, and last the tag `leadscore.complete` on the version. Any kill
leaves one of these states, each repaired by `recover` and reported in one line:

- a run still RUNNING whose process on this host is gone: marked FAILED;
- the newest registered version without `leadscore.complete`: finished as its run decided (export,
  challenger, champion when its run's `leadscore.promoted` tag says so), since everything the
  decision rests on was logged before the version was registered; an older one is only reported;
- temporary folders (`leadscore-train-<pid>-*`, `models/<name>/.<version>.<pid>.*`) of dead processes:
  removed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from serving.model import registry
from training import tracking

HOST_TAG, PID_TAG = "leadscore.host", "leadscore.pid"
STARTED_TAG, COMPLETE_TAG = "leadscore.started", "leadscore.complete"  # set at registration / after the aliases
REPORTED_TAG = "leadscore.incomplete_reported"
_STAGING = re.compile(r"^\.\d+\.(?P<pid>\d+)\.")
_SCRATCH = re.compile(r"^leadscore-[a-z]+-(?P<pid>\d+)-")


def run_tags() -> dict[str, str]:
    """Tags that let a later run tell whether this one is still alive."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def recover(client: Any, experiment_id: str, models_dir: Path) -> list[str]:
    """Repair what interrupted trainings left; one readable line per repair."""
    done = _orphaned_runs(client, experiment_id)
    done += _incomplete_versions(client, models_dir)
    done += _stale_folders(models_dir)
    return done


def _orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    host = socket.gethostname()
    done = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=200):
        tags = run.data.tags
        if tags.get(HOST_TAG) != host or not str(tags.get(PID_TAG, "")).isdigit():
            continue  # another machine's run, or one that predates these tags: cannot tell, leave it
        if pid_alive(int(tags[PID_TAG])):
            continue
        client.set_terminated(run.info.run_id, status="FAILED")
        client.set_tag(run.info.run_id, "leadscore.repaired", "its process was gone; marked FAILED by the next train")
        done.append(f"run {run.info.run_id} was interrupted (process {tags[PID_TAG]} is gone): marked FAILED")
    return done


def _incomplete_versions(client: Any, models_dir: Path) -> list[str]:
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{tracking.MODEL_NAME}'")
    except MlflowException:
        return []
    versions = sorted(versions, key=lambda v: int(v.version))
    done = []
    for v in versions:
        if v.tags.get(COMPLETE_TAG) == "true" or v.tags.get(REPORTED_TAG) or STARTED_TAG not in v.tags:
            continue  # finished, already reported, or registered before these tags existed
        if _run_alive(client, v.run_id):
            continue  # a training still running
        if v is versions[-1]:
            done.append(_finish(client, v, models_dir))
        else:
            client.set_model_version_tag(tracking.MODEL_NAME, v.version, REPORTED_TAG, "true")
            done.append(
                f"version {v.version} was left unfinished by an interrupted training; a newer version "
                "exists, so it stays as it is (no alias moved)"
            )
    return done


def _run_alive(client: Any, run_id: str | None) -> bool:
    if not run_id:
        return False
    tags = client.get_run(run_id).data.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not str(tags.get(PID_TAG, "")).isdigit():
        return True  # another machine's training: not ours to finish
    return pid_alive(int(tags[PID_TAG]))


def _finish(client: Any, version: Any, models_dir: Path) -> str:
    """Finish the newest version as its run decided: export it, move the aliases, mark it complete."""
    from serving.model.bundle import Bundle

    promote = client.get_run(version.run_id).data.tags.get("leadscore.promoted") == "True" if version.run_id else False
    folder = models_dir / tracking.MODEL_NAME / str(version.version)
    if not (folder / "bundle.json").is_file():
        with tempfile.TemporaryDirectory(prefix=f"leadscore-repair-{os.getpid()}-") as scratch:
            uri = f"models:/{tracking.MODEL_NAME}/{version.version}"
            Bundle.load(registry.download_bundle(uri, scratch, tracking_uri=client.tracking_uri)).save(folder)
    tracking.set_alias(client, tracking.CHALLENGER, str(version.version))
    if promote:
        tracking.set_alias(client, tracking.CHAMPION, str(version.version))
    client.set_model_version_tag(tracking.MODEL_NAME, version.version, COMPLETE_TAG, "true")
    moved = "challenger and champion" if promote else "challenger"
    return (
        f"version {version.version} was registered by an interrupted training: finished as its run decided "
        f"(exported to {folder}, {moved} now on version {version.version})"
    )


def _stale_folders(models_dir: Path) -> list[str]:
    done = []
    candidates = (
        [(p, _STAGING) for p in (models_dir / tracking.MODEL_NAME).glob(".*")]
        if (models_dir / tracking.MODEL_NAME).is_dir()
        else []
    )
    candidates += [(p, _SCRATCH) for p in Path(tempfile.gettempdir()).glob("leadscore-*")]
    for path, pattern in candidates:
        match = pattern.match(path.name)
        if match and path.is_dir() and not pid_alive(int(match["pid"])):
            shutil.rmtree(path, ignore_errors=True)
            done.append(f"removed {path}, left by an interrupted process")
    return done
