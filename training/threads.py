"""One BLAS thread for the small solvers (lbfgs on a design of ~100 columns, the two-parameter Platt map).

OpenBLAS threads make these fits slower, not faster: 2x at 300,000 rows to 25x at 6,000 rows for the
logistic model, 1.7x for the baseline's pipeline on 200,000 rows, measured on 2 cores; and on a shared
machine the extra threads only wait for each other. The results are the same to the last digit or two.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def one_blas_thread() -> threadpool_limits:
    return threadpool_limits(limits=1, user_api="blas")
