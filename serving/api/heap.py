"""The garbage collector around start-up, reloads and batches: long-lived objects out of its full
passes, and no passes while a batch builds its answers.

Kept apart from serving.api.state (which imports the scorer) so `leadscore serve` can pause the
collector before it imports anything heavy.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

_paused: list[bool] = []  # non-empty while `pause_collector` holds the collector off


def pause_collector() -> None:
    """Stop the cyclic garbage collector until the next `settle_heap` (or `resume_collector`).

    Start-up (importing the web stack and numba, building the scorer) makes ~150,000 objects that live
    as long as the process, and every automatic full collection on the way walks all of those made so
    far: ~0.25 of ~1.3 CPU-s before the first answer (README, issue 9). Reference counting still frees
    everything else as usual; only unreachable cycles wait."""
    if gc.isenabled():
        gc.disable()
        _paused.append(True)


def resume_collector() -> None:
    if _paused:
        _paused.clear()
        gc.enable()


def settle_heap() -> None:
    """Take what is alive now (the model, the web stack: ~150,000 objects) out of the garbage
    collector's full passes. CPython's full collection walks every tracked object, which at serving time
    are almost all ones that live as long as the process: a pause of 100-250 ms every few thousand
    requests, measured at load ~6 (note of branch s5-9h). Frozen objects are still freed when their
    last reference goes; a reload unfreezes, collects the old model's cycles once, and freezes again.

    Right after a paused start-up the full pass is skipped (~0.1 CPU-s before the first answer): the
    few thousand unreachable objects start-up left (a few hundred KB) stay frozen until the next
    reload's collection."""
    gc.unfreeze()
    if not _paused:
        gc.collect()
    gc.freeze()
    resume_collector()


@contextlib.contextmanager
def collector_off() -> Iterator[None]:
    """No automatic collection while a batch is parsed, scored and written. A 1,000-lead batch makes
    ~40,000 short-lived objects, which set off ~58 collections that find nothing (the answers hold no
    cycles: reference counting frees them): ~3.5 µs a lead, 4% of the request (serving.api.hot).
    The collector is on again afterwards, unless something else had it off already (start-up, or a
    batch that started first and turns it back on when it ends)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
