"""What serving.api.json_keys counts on a body's bytes: the per-object key count that refuses a
junk-sized lead before parsing (the numba kernel counts what the numpy version counts, exactly on valid
JSON), and the shape that decides whether a batch may take the one-call path."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.api import json_keys
from serving.api._json_kernels import MAX_DEPTH

_TEXT = st.text(alphabet='ab:{}[]"\\ é', max_size=6)  # the characters the count must see past in strings
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_TEXT, inner, max_size=6),
    max_leaves=30,
)


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:
    json_keys.warm_up()  # compiled on a fresh machine's first run: not inside a timed example


def _keys_per_object(value: object) -> list[int]:
    if isinstance(value, dict):
        return [len(value), *(n for child in value.values() for n in _keys_per_object(child))]
    if isinstance(value, list):
        return [n for child in value for n in _keys_per_object(child)]
    return []


@given(_JSON, st.booleans())
def test_the_count_is_the_most_keys_of_any_object(value: object, spaced: bool) -> None:
    body = json.dumps(value, indent=1 if spaced else None, ensure_ascii=not spaced).encode()
    expected = max(_keys_per_object(value), default=0)
    assert json_keys.most_keys(body) == expected == json_keys._most_keys_numpy(body)


@given(st.binary(max_size=60) | st.text(alphabet='{}[]":,\\a ', max_size=60).map(str.encode))
def test_malformed_bytes_get_a_count_without_failing(body: bytes) -> None:
    """Any count will do for malformed JSON (the parser refuses it next), as long as one comes back."""
    assert 0 <= json_keys.most_keys(body) <= body.count(b":")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"leads": [{"a": 1, "b": 2}, {"c": 3}]}', 2),
        (b'{"a": "x\\": y", "b": {"c": 1, "d": 2, "e": 3}, "f": 4}', 3),  # an escaped quote in a string
        (b'{"a\\\\": 1, "b": 2}', 2),  # a key ending in an escaped backslash
        (b'{"a": 1, "b": {"c": 2', 2),  # never closed
        (b'}}{"a": 1}', 1),  # stray closing brackets first
        (b"[" * (MAX_DEPTH + 5) + b'{"a": 1, "b": 2}' + b"]" * (MAX_DEPTH + 5), 2),  # past the kernel's depth
    ],
)
def test_edge_cases(body: bytes, expected: int) -> None:
    assert json_keys.most_keys(body) == expected == json_keys._most_keys_numpy(body)


def _objects(value: object) -> int:
    if isinstance(value, dict):
        return 1 + sum(_objects(child) for child in value.values())
    if isinstance(value, list):
        return sum(_objects(child) for child in value)
    return 0


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(s for child in value.values() for s in _strings(child))]
    if isinstance(value, list):
        return [s for child in value for s in _strings(child)]
    return [value] if isinstance(value, str) else []


@given(_JSON | st.dictionaries(st.text(max_size=3), st.text(alphabet="a😀\ud800é", max_size=4) | st.integers()))
def test_the_shape_counts_keys_objects_numbers_and_escaped_surrogates(value: object) -> None:
    body = json.dumps(value).encode()  # ASCII: an astral character is two escaped surrogates, a lone one one
    shape = json_keys.shape(body)
    assert shape is not None
    assert shape.keys == sum(_keys_per_object(value)) and shape.objects == _objects(value)
    outside_strings = re.sub(rb'"(\\.|[^"\\])*"', b'""', body)
    assert shape.longest_number == max((len(run) for run in re.findall(rb"[0-9]+", outside_strings)), default=0)
    surrogates = sum(
        2 if ord(c) > 0xFFFF else 1 for s in _strings(value) for c in s if ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF
    )
    assert shape.surrogates == surrogates
