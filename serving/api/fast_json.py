"""orjson on the scoring path, where it gives what the standard parser and pydantic would give.

Reading: orjson parses a lead in a fifth of the time `json.loads` with a duplicate-key hook takes, but
it keeps the last of duplicate keys, reads integers past 64 bits as floats, and refuses NaN, a BOM,
lone surrogates and other encodings that `json.loads` reads. So its result is used only when it is
provably the same: no digit run long enough to overflow, and as many keys in the result as the body
has key ends (`"` then `:`); anything else returns None and serving.api.lead_input parses the body
as before, with the same answers and the same error texts.

Writing: orjson's bytes equal pydantic's for every value a response holds (same float formatting,
`null` for NaN/inf, ISO datetimes with `Z`; tests/serving/api/test_fast_json.py compares them on
real answers); what orjson cannot write (a NumPy scalar, an integer past 64 bits) goes to pydantic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import orjson

from serving.model.response import BatchResponse, ScoreResponse, batch_to_json, to_json

# The body with JSON's whitespace removed and every digit made "0": two byte searches then see the
# digit runs and the key ends (a key's closing quote, whitespace, its colon) without a regex.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_WHITESPACE = b" \t\r\n"
_LONG_NUMBER = b"0" * 19  # 2**63 has 19 digits: shorter integers are exact in orjson


def loads(body: bytes, *, max_keys: int) -> Any | None:
    """The body parsed as `json.loads` would parse it, or None when orjson cannot vouch for that (or
    an object has more than `max_keys` keys, which the careful parser refuses with its own message)."""
    squeezed = body.translate(_DIGITS_AS_ZERO, _WHITESPACE)
    if _LONG_NUMBER in squeezed:  # an integer orjson would read as a float (or digits in a string)
        return None
    try:
        value = orjson.loads(body)
        keys = _keys(value, max_keys)
    except (orjson.JSONDecodeError, RecursionError, _TooManyKeys):
        return None
    # Every key's end becomes `":` once whitespace is gone, and so can text inside a string value
    # (`\":`, `" :`): equal counts mean no key was dropped as a duplicate; otherwise the careful
    # parser decides.
    return value if keys == squeezed.count(b'":') else None


def _keys(value: Any, max_keys: int) -> int:
    """Keys in all objects of `value` (orjson makes plain dicts and lists)."""
    children: Iterable[Any]
    if type(value) is dict:
        if len(value) > max_keys:
            raise _TooManyKeys
        count, children = len(value), value.values()
    elif type(value) is list:
        count, children = 0, value
    else:
        return 0
    kinds = set(map(type, children))  # C loops: a flat lead's 25 values cost ~0.3 µs here, not ~2
    if kinds == {dict}:  # a batch's leads: flat objects are counted by C loops too, ~0.3 µs a lead, not ~1.6
        flat = _flat_keys(children, max_keys)
        if flat is not None:
            return count + flat
    if dict in kinds or list in kinds:
        for child in children:
            if type(child) is dict or type(child) is list:
                count += _keys(child, max_keys)
    return count


def _flat_keys(objects: Iterable[dict[str, Any]], max_keys: int) -> int | None:
    """Keys in all of `objects` when none holds an object or a list (None otherwise)."""
    sizes = list(map(len, objects))
    if max(sizes) > max_keys:
        raise _TooManyKeys
    kinds = set(map(type, itertools.chain.from_iterable(map(dict.values, objects))))
    return None if dict in kinds or list in kinds else sum(sizes)


class _TooManyKeys(Exception):
    pass


def dump_result(result: ScoreResponse) -> bytes:
    """One lead's answer, byte for byte what serving.model.response.to_json writes."""
    try:
        return orjson.dumps(result, option=orjson.OPT_UTC_Z)
    except TypeError:  # orjson.JSONEncodeError: a value only pydantic knows how to write
        return to_json(result)


def dump_batch(results: list[ScoreResponse]) -> bytes:
    batch: BatchResponse = {"results": results}
    try:
        return orjson.dumps(batch, option=orjson.OPT_UTC_Z)
    except TypeError:
        return batch_to_json(results)
