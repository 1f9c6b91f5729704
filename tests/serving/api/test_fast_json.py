"""orjson is used only where it gives what the standard parser and pydantic give (serving.api.fast_json)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from serving.api import fast_json
from serving.api.errors import InputError
from serving.api.lead_input import MAX_KEYS, decode, parse_lead
from serving.api.schemas import request_models
from serving.model.response import batch_to_json, to_json

AGREES = [
    b'{"lead_id": "L1", "web_visits": 4, "industry": "software", "phone_present": true, "x": null}',
    b'{"a":1.5,"b":-0,"c":1e-7,"d":[1,{"e":"f"}],"g":{}}',
    b'{"a\\\\":1, "b\\"":2, "":3}',  # keys ending in an escaped backslash, an escaped quote; an empty key
    b'{"a" :1,"b"\n:\t2}',  # whitespace before the colon
    b"[]",
    b'"text"',
    b"12",
    b"9223372036854775",  # 16 digits: exact in orjson
]
CAREFUL = [  # orjson would differ (or cannot tell): the standard parser decides
    b'{"a":1,"a":2}',  # duplicate key: orjson keeps the last one
    b'{"a" :1,"a":2}',
    b'{"x":[{"a":1,"a":2}]}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":12345678901234567890123}',  # past 64 bits: orjson reads a float
    b'{"a":1e400}',
    b'\xef\xbb\xbf{"a":1}',  # UTF-8 BOM
    b'"\\ud800"',  # lone surrogate
    b'{"note":": starts with a colon"}',  # orjson agrees, but the key count cannot tell
    b'{"note":"a \\":\\" inside"}',
    b'{"phone":"0049 1234 5678 9012 3456"}',  # 20 digits once the spaces are gone
    b"[" * 1100 + b"]" * 1100,
    json.dumps({f"k{i}": i for i in range(MAX_KEYS + 1)}).encode(),
]


@pytest.mark.parametrize("body", AGREES)
def test_orjson_reads_what_the_standard_parser_reads(body: bytes) -> None:
    fast = fast_json.loads(body, max_keys=MAX_KEYS)
    assert fast is not None and fast == json.loads(body)
    assert decode(body) == json.loads(body)


@pytest.mark.parametrize("body", CAREFUL)
def test_bodies_orjson_cannot_vouch_for_go_to_the_standard_parser(body: bytes) -> None:
    assert fast_json.loads(body, max_keys=MAX_KEYS) is None


def test_duplicates_non_finite_numbers_and_big_integers_keep_their_answers() -> None:
    with pytest.raises(InputError) as dup:
        decode(b'{"web_visits":1, "web_visits" :2}')
    assert dup.value.detail == [
        {"field": "web_visits", "problem": "duplicate key in one JSON object: send each field once"}
    ]
    assert math.isnan(decode(b'{"a":NaN}')["a"])
    assert decode(b'{"a":12345678901234567890123}') == {"a": 12345678901234567890123}


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
        max_leaves=20,
    )
)
def test_any_json_document_reads_the_same(value: object) -> None:
    body = json.dumps(value).encode()
    fast = fast_json.loads(body, max_keys=MAX_KEYS)
    assert fast is None or fast == json.loads(body)
    assert decode(body) == json.loads(body)


def test_answers_are_the_bytes_pydantic_writes(scorer) -> None:
    models = request_models(scorer, scorer.schema, 100)
    rows = [{"lead_id": f"L{i}", "web_visits": i, "industry": ["software", "retail", "nope"][i % 3]} for i in range(60)]
    leads = [parse_lead(models, json.dumps(row).encode()).leads[0] for row in rows]
    results = scorer.score(leads, what_if=3)
    results[0]["warnings"] = [{"field": "junk", "problem": "ignored: é \u2028"}]
    results[1]["explore"] = True
    assert any(r["lowering_factors"] and r["what_if"] for r in results)
    for result in results:
        assert fast_json.dump_result(result) == to_json(result)
    assert fast_json.dump_batch(results) == batch_to_json(results)


def test_values_orjson_cannot_write_are_written_by_pydantic(scorer) -> None:
    models = request_models(scorer, scorer.schema, 100)
    [result] = scorer.score([parse_lead(models, b'{"web_visits": 3}').leads[0]], what_if=3)
    result["probability"] = np.float64(result["probability"])
    assert fast_json.dump_result(result) == to_json(result)
    assert fast_json.dump_batch([result]) == batch_to_json([result])


@given(
    st.dictionaries(
        st.sampled_from(["lead_id", "web_visits", "industry", "company_size", "phone_present", "created_at", "junk"]),
        st.none()
        | st.booleans()
        | st.integers(-(2**70), 2**70)
        | st.floats()
        | st.text(max_size=12)
        | st.sampled_from(["2026-09-01T00:00:00", " software ", "x" * 201, "2026-13-01"]),
        max_size=6,
    )
)
def test_one_pass_validation_equals_the_models(scorer_schema_models, fields: dict) -> None:
    models = scorer_schema_models
    fields = {k: v for k, v in fields.items() if k in models.fields.accepted}
    try:
        expected = models.lead.model_validate(fields).model_dump(by_alias=True)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as raised:
            models.validate(fields)
        assert raised.value.errors() == exc.errors()
        return
    assert models.validate(fields) == expected
    assert list(models.validate(fields)) == list(expected)


@pytest.fixture(scope="module")
def scorer_schema_models(scorer):
    return request_models(scorer, scorer.schema, 100)
