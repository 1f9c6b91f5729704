"""The garbage collector around `leadscore serve`'s start: paused while start-up builds what lives as long
as the process, running again once the heap is settled, and never left off by a start that failed."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.api.heap import collector_off, pause_collector, settle_heap
from training.cli import main


@pytest.fixture(autouse=True)
def _restore_collector() -> Iterator[None]:
    yield
    gc.enable()
    gc.unfreeze()


def test_a_batch_runs_without_the_collector_and_leaves_it_as_it_found_it() -> None:
    with collector_off():
        assert not gc.isenabled()
        with collector_off():  # a batch that starts while another runs
            assert not gc.isenabled()
        assert not gc.isenabled()  # the one that turned it off turns it on
    assert gc.isenabled()
    with pytest.raises(ValueError), collector_off():
        raise ValueError("a batch that fails")
    assert gc.isenabled()
    gc.disable()  # off for start-up: a batch does not turn it on
    with collector_off():
        pass
    assert not gc.isenabled()


def test_the_collector_pauses_for_start_up_and_runs_again_once_the_heap_is_settled() -> None:
    pause_collector()
    assert not gc.isenabled()
    built_at_start = [{"model": i} for i in range(1000)]
    settle_heap()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(built_at_start), "what start-up built is out of the full passes"


def test_a_collector_switched_off_by_the_embedding_program_stays_off() -> None:
    gc.disable()
    pause_collector()
    settle_heap()
    assert not gc.isenabled()


class _Node:
    link: object = None


def test_a_reload_collects_before_freezing() -> None:
    """Asked of the cycle itself (a weak reference), not of the frozen count, which other threads of
    the test process (a server's prediction-log sender) change while the heap settles."""
    settle_heap()
    cycle = _Node()
    cycle.link = cycle
    alive = weakref.ref(cycle)
    del cycle
    settle_heap()
    assert alive() is None, "the unreachable cycle was frozen, not collected"


def test_a_start_that_fails_leaves_the_collector_running(bundle_dir: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = main(["serve", "--model", str(bundle_dir), "--port", str(taken.getsockname()[1])])
    assert code == 2
    assert "already in use" in capsys.readouterr().err
    assert gc.isenabled()
