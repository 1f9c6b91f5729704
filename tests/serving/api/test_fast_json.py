"""orjson is used only where it gives what the standard parser and pydantic give (serving.api.fast_json)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from serving.api import fast_json, lead_input
from serving.api.errors import InputError
from serving.api.lead_input import MAX_KEYS, _usual_batch, decode, parse_lead
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


_FIELD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["2026-09-01T00:00:00", " software ", "x" * 201, "2026-13-01", "😀", "\ud800"])
)
_LEAD = st.dictionaries(
    st.sampled_from(["lead_id", "web_visits", "industry", "company_size", "phone_present", "created_at", "junk"]),
    _FIELD_VALUES,
    max_size=6,
)


@given(st.lists(_LEAD, max_size=4), st.booleans(), st.sampled_from(["", ', "web_visits": 2', ', "x": 1']))
def test_a_batch_validated_in_one_call_is_the_batch_the_general_path_gives(
    scorer_schema_models, leads: list, ascii_only: bool, extra: str
) -> None:
    """`_usual_batch` gives what parsing and validating lead by lead gives, or declines (None): for
    duplicate keys, unknown fields, invalid values, long numbers, escaped surrogates and empty batches."""
    models = scorer_schema_models
    text = json.dumps({"leads": leads}, ensure_ascii=ascii_only)
    if leads and extra:  # a key after the first lead's last one: a duplicate or an unknown field
        text = text.replace("}", extra + "}", 1) if leads[0] else text.replace("{}", "{" + extra[2:] + "}", 1)
    body = text.encode("utf-8", "surrogatepass")
    usual = _usual_batch(models, body)
    try:
        expected = _general_batch(models, body)
    except InputError:
        assert usual is None
        return
    if usual is not None:
        assert usual.leads == expected.leads and usual.warnings == expected.warnings
        assert [list(lead) for lead in usual.leads] == [list(lead) for lead in expected.leads]


def _general_batch(models, body: bytes):
    """parse_batch without its one-call path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lead_input, "_usual_batch", lambda models, body: None)
        return lead_input.parse_batch(models, body)


def test_the_usual_batch_takes_the_one_call_path(scorer_schema_models) -> None:
    leads = [{"lead_id": f"L{i}", "web_visits": i, "industry": "software", "phone_present": True} for i in range(5)]
    body = json.dumps({"leads": leads}).encode()
    usual = _usual_batch(scorer_schema_models, body)
    assert usual is not None and usual.leads == _general_batch(scorer_schema_models, body).leads
