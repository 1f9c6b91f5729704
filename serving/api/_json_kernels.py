"""numba kernel for serving.api.json_keys: what a JSON body holds, counted in one pass over its bytes.

Loaded through `serving.api.json_keys`, after `serving.model.forest.use_compiled_cache()`, so its
machine code is cached where the forest's is.
"""

import numpy as np
from numba import njit

MAX_DEPTH = 4096  # deeper bodies are counted by the numpy version (no parser reads them anyway)
_QUOTE, _BACKSLASH, _COLON, _U = ord('"'), ord("\\"), ord(":"), ord("u")
_OPENS, _CLOSES = (ord("{"), ord("[")), (ord("}"), ord("]"))
_ZERO, _NINE = ord("0"), ord("9")


@njit(cache=True, nogil=True, inline="always")
def _surrogate_at(data, i):
    """Whether data[i:] starts `dX` with X in 8-F (either case): a `\\u` escape of a UTF-16 surrogate."""
    if i + 1 >= data.shape[0] or (data[i] | 32) != ord("d"):
        return False
    c = data[i + 1] | 32
    return c == ord("8") | 32 or c == ord("9") | 32 or ord("a") <= c <= ord("f")


@njit(cache=True, nogil=True)
def shape(data):
    """(most, keys, objects, longest, surrogates): the largest count of colons outside strings that share
    an innermost open bracket (a colon separates a key from its value in the innermost open object),
    all such colons, the `{` outside strings, the longest run of digits outside strings, and the `\\u`
    escapes of UTF-16 surrogates inside them. `most` is -1 past MAX_DEPTH levels of nesting; it is what
    `json_keys._most_keys_numpy` counts, unclosed brackets and stray closing ones included."""
    counts = np.zeros(MAX_DEPTH + 1, np.int64)  # counts[d]: colons so far in the bracket open at depth d
    depth = 0
    most = 0
    keys = 0
    objects = 0
    run = 0
    longest = 0
    surrogates = 0
    in_string = False
    escaped = False
    for i in range(data.shape[0]):
        c = data[i]
        if in_string:
            if escaped:
                escaped = False
                if c == _U and _surrogate_at(data, i + 1):
                    surrogates += 1
            elif c == _BACKSLASH:
                escaped = True
            elif c == _QUOTE:
                in_string = False
            continue
        if _ZERO <= c <= _NINE:
            run += 1
            longest = max(longest, run)
            continue
        run = 0
        if c == _QUOTE:
            in_string = True
        elif c == _COLON:
            counts[depth] += 1
            keys += 1
        elif c == _OPENS[0] or c == _OPENS[1]:
            if depth == MAX_DEPTH:
                return -1, keys, objects, longest, surrogates
            depth += 1
            objects += c == _OPENS[0]
            counts[depth] = 0
        elif (c == _CLOSES[0] or c == _CLOSES[1]) and depth > 0:
            most = max(most, counts[depth])
            depth -= 1
    for d in range(1, depth + 1):  # brackets never closed (malformed): their keys count too
        most = max(most, counts[d])
    return most, keys, objects, longest, surrogates
