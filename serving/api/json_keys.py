"""The most keys in any one object of a JSON body, counted on its bytes without building a Python object.

Python's parser builds every key of an object before anything can look at it: an object of 300,000
junk keys costs ~0.2 s of CPU per 4 MB before it can be refused. This count runs over the bytes (a
numba kernel, ~1.5 ms per MB; numpy's passes, ~7 ms per MB, without numba) and is exact for valid
JSON: a colon outside strings separates a key from its value in the innermost open object. Malformed
JSON may count anything; the parser refuses it next.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import numpy as np

_OPEN, _CLOSE, _COLON = 1, 2, 3
_KIND = np.zeros(256, np.int8)
for _char, _kind in ((b"{", _OPEN), (b"[", _OPEN), (b"}", _CLOSE), (b"]", _CLOSE), (b":", _COLON)):
    _KIND[_char[0]] = _kind


def key_floor(body: bytes) -> int:
    """At least this many keys in the whole body (a key ends `":`), counted by two byte searches."""
    return body.count(b'":') - body.count(b'\\":')


class Shape(NamedTuple):
    """What `shape` counts on a body's bytes."""

    most_keys: int  # the most keys in one object
    keys: int  # keys in all objects (colons outside strings)
    objects: int  # objects (`{` outside strings)
    longest_number: int  # the longest run of digits outside strings
    surrogates: int  # `\\u` escapes of UTF-16 surrogates (`\\ud800`) in strings


def shape(body: bytes) -> Shape | None:
    """`Shape` of a body in one pass of a numba kernel (~1.5 ns a byte); None without numba, or past
    4,096 levels of nesting. Exact for valid JSON; for malformed bytes, some count."""
    kernel = _kernel()
    if kernel is None:
        return None
    found = Shape(*kernel(np.frombuffer(body, np.uint8)))
    return found if found.most_keys >= 0 else None


def most_keys(body: bytes) -> int:
    """The largest number of keys in one object of `body` (0 when it has none): `shape`'s, or numpy's
    passes (~7 ns a byte) without numba or past its nesting depth."""
    found = shape(body)
    return found.most_keys if found is not None else _most_keys_numpy(body)


def warm_up() -> None:
    """Load the kernel's machine code now (~15 ms from numba's cache), not on the first batch."""
    most_keys(b"{}")


@functools.cache
def _kernel() -> Any:
    try:
        from serving.model.forest import use_compiled_cache

        use_compiled_cache()
        from serving.api._json_kernels import shape as kernel
    except ImportError:  # numba is not installed
        return None
    return kernel


def _most_keys_numpy(body: bytes) -> int:
    data = np.frombuffer(body, np.uint8)
    quotes = _unescaped_quotes(data)
    marks = np.flatnonzero(_KIND[data])
    marks = marks[np.searchsorted(quotes, marks) % 2 == 0]  # an even number of quotes before: outside strings
    kind = _KIND[data[marks]]
    depth = np.cumsum(np.where(kind == _OPEN, 1, np.where(kind == _CLOSE, -1, 0)))
    opened_or_colon = kind != _CLOSE
    depth, kind = depth[opened_or_colon], kind[opened_or_colon]
    # Stable by depth: each colon follows the last object opened at its own depth, its owner.
    by_depth = kind[np.argsort(depth, kind="stable")]
    owner = np.cumsum(by_depth == _OPEN)[by_depth == _COLON]
    counts = np.bincount(owner)[1:]  # owner 0: a colon before any object (malformed; not a lead's key)
    return int(counts.max()) if counts.size else 0


def _unescaped_quotes(data: np.ndarray) -> np.ndarray:
    """Positions of the quotes that open or close a string (not preceded by an odd run of backslashes)."""
    quotes = np.flatnonzero(data == ord('"'))
    slashes = np.flatnonzero(data == ord("\\"))
    if not slashes.size or not quotes.size:
        return quotes
    first = np.r_[True, np.diff(slashes) != 1]  # where each run of backslashes starts
    starts = slashes[first]
    ends = np.r_[slashes[np.flatnonzero(first)[1:] - 1], slashes[-1]]
    odd_run_ends = ends[(ends - starts) % 2 == 0]
    return quotes[~np.isin(quotes - 1, odd_run_ends)]
