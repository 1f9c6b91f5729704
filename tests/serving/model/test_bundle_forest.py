"""The bundle stores the trees flattened (forest.npz) so a server does not flatten model.txt at start;
the text stays the source of truth: arrays from other code are ignored, damage is refused as before."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from features.errors import ModelNotFoundError
from serving.model.bundle import FOREST_FILE, META_FILE, MODEL_FILE, Bundle, file_digest
from serving.model.forest import LAYOUT_KEY, Forest


@pytest.fixture()
def folder(bundle_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle_dir, tmp_path / "bundle"))


def _same(a: Forest, b: Forest) -> None:
    for field in dataclasses.fields(Forest):
        ours, theirs = np.asarray(getattr(a, field.name)), np.asarray(getattr(b, field.name))
        assert ours.dtype == theirs.dtype, field.name
        np.testing.assert_array_equal(ours, theirs, err_msg=field.name)


def _rewrite(folder: Path, change: Callable[[dict[str, np.ndarray]], object]) -> None:
    """Change forest.npz's arrays and record the new file's checksum, as a bundle written that way would."""
    with np.load(folder / FOREST_FILE) as stored:
        arrays = {name: stored[name] for name in stored.files}
    change(arrays)
    with (folder / FOREST_FILE).open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    state = json.loads((folder / META_FILE).read_text())
    state["files"][FOREST_FILE] = file_digest(folder / FOREST_FILE)
    (folder / META_FILE).write_text(json.dumps(state))


def test_a_saved_bundle_stores_the_flattened_trees_checksummed(folder: Path) -> None:
    recorded = json.loads((folder / META_FILE).read_text())["files"]
    assert set(recorded) == {MODEL_FILE, FOREST_FILE}
    assert recorded[FOREST_FILE] == file_digest(folder / FOREST_FILE)
    loaded = Bundle.load(folder)
    _same(loaded.forest(), Forest.from_model_text((folder / MODEL_FILE).read_text()))


def test_the_same_model_saved_twice_gives_the_same_bytes(folder: Path, tmp_path: Path) -> None:
    """A bundle's checksums (and the Dask plugin named after them) depend on the model, not the time."""
    written = (folder / FOREST_FILE).stat().st_mtime  # copytree keeps the fixture's time
    time.sleep(max(0.0, written + 2.1 - time.time()))  # zip entries record times to 2 s
    again = Bundle.load(folder).save(tmp_path / "again")
    assert (again / FOREST_FILE).read_bytes() == (folder / FOREST_FILE).read_bytes()


def test_arrays_written_by_other_code_are_ignored_and_the_text_flattened(folder: Path, fresh) -> None:
    """A forest.npz from another version of the builder (here: other leaf values under another layout)
    never reaches the kernels: the scores are the text model's."""

    def other_version(arrays: dict[str, np.ndarray]) -> None:
        arrays[LAYOUT_KEY] = np.array("written-by-another-version")
        arrays["leaf_value"] = arrays["leaf_value"] + 1.0

    _rewrite(folder, other_version)
    loaded = Bundle.load(folder)
    X = loaded.encoder.transform(fresh.leads.iloc[:50])
    np.testing.assert_allclose(loaded.forest().raw(X), loaded.booster.predict(X, raw_score=True), rtol=0, atol=1e-9)


def test_a_bundle_without_stored_trees_still_loads(folder: Path) -> None:
    """Bundles written before forest.npz existed: the trees are flattened from model.txt."""
    (folder / FOREST_FILE).unlink()
    state = json.loads((folder / META_FILE).read_text())
    del state["files"][FOREST_FILE]
    (folder / META_FILE).write_text(json.dumps(state))
    _same(Bundle.load(folder).forest(), Forest.from_model_text((folder / MODEL_FILE).read_text()))


def test_a_truncated_forest_file_is_refused_like_a_damaged_model(folder: Path) -> None:
    size = (folder / FOREST_FILE).stat().st_size
    with (folder / FOREST_FILE).open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(ModelNotFoundError, match=f"is damaged: {FOREST_FILE} has {size // 2:,} bytes"):
        Bundle.load(folder)


def test_a_stored_forest_missing_an_array_is_refused_in_one_line(folder: Path) -> None:
    _rewrite(folder, lambda arrays: arrays.pop("slot_zero"))
    with pytest.raises(ModelNotFoundError, match="is damaged: KeyError: 'slot_zero'"):
        Bundle.load(folder)
