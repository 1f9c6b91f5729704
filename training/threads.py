"""One BLAS thread for the small solvers (lbfgs on a design of ~100 columns, the two-parameter Platt map).

OpenBLAS threads make these fits slower, not faster: 2x at 300,000 rows to 25x at 6,000 rows for the
logistic model, 1.7x for the baseline's pipeline on 200,000 rows, measured on 2 cores; and on a shared
machine the extra threads only wait for each other. The results are the same to the last digit or two.

BLAS limits are process-wide, and training fits the baseline on a side thread while the main thread
fits the logistic model (training.pipeline.side_thread): the first holder sets the limit and the
last one restores it, so one leaving never lifts the limit under the other, nor leaves it set.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_holders = 0
_limits: threadpool_limits | None = None


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _holders, _limits
    with _lock:
        if _holders == 0:
            _limits = threadpool_limits(limits=1, user_api="blas")
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _limits is not None:
                _limits.restore_original_limits()
                _limits = None
