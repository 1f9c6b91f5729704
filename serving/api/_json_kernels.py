"""numba kernel for serving.api.json_keys: the most keys in one object, in one pass over the bytes.

Loaded through `serving.api.json_keys.most_keys`, after `serving.model.forest.use_compiled_cache()`, so
its machine code is cached where the forest's is.
"""

import numpy as np
from numba import njit

MAX_DEPTH = 4096  # deeper bodies are counted by the numpy version (no parser reads them anyway)
_QUOTE, _BACKSLASH, _COLON = ord('"'), ord("\\"), ord(":")
_OPENS, _CLOSES = (ord("{"), ord("[")), (ord("}"), ord("]"))


@njit(cache=True, nogil=True)
def most_keys(data):
    """The largest count of colons outside strings that share an innermost open bracket (a colon
    separates a key from its value in the innermost open object), or -1 past MAX_DEPTH levels of nesting.
    What `json_keys._most_keys_numpy` counts, unclosed brackets and stray closing ones included."""
    counts = np.zeros(MAX_DEPTH + 1, np.int64)  # counts[d]: colons so far in the bracket open at depth d
    depth = 0
    most = 0
    in_string = False
    escaped = False
    for i in range(data.shape[0]):
        c = data[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == _BACKSLASH:
                escaped = True
            elif c == _QUOTE:
                in_string = False
        elif c == _QUOTE:
            in_string = True
        elif c == _COLON:
            counts[depth] += 1
        elif c == _OPENS[0] or c == _OPENS[1]:
            if depth == MAX_DEPTH:
                return -1
            depth += 1
            counts[depth] = 0
        elif (c == _CLOSES[0] or c == _CLOSES[1]) and depth > 0:
            most = max(most, counts[depth])
            depth -= 1
    for d in range(1, depth + 1):  # brackets never closed (malformed): their keys count too
        most = max(most, counts[d])
    return most
