"""Request bodies to leads: strict JSON, the lead schema's fields, and a bounded cost for any body.

A CRM posts its whole record, so fields the schema keeps for reports (`context`) are accepted, and
fields it deliberately leaves out (`excluded`, the outcome columns) or does not know are ignored with
a `warnings` entry naming them. `LEADSCORE_STRICT_FIELDS=true` refuses unknown fields instead, for
integrators who want a typo caught. Values follow `features.lead_checks`, the rules `leadscore score`
and the analyst API apply too: strict types (`true` is not a number, `"5"` is not a number), finite
numbers within the schema's range.

What a small body can cost is bounded: an object with more than MAX_KEYS keys is refused before the
body is parsed (serving.api.json_keys counts them on the bytes), a duplicate key before any
validation, and at most MAX_PROBLEMS problems are listed, then a count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from features.lead_checks import cell_problem, type_problem, value_problem
from features.schema import FeatureSpec, LeadSchema
from serving.api import fast_json, json_keys
from serving.api.errors import InputError
from serving.api.json_keys import key_floor, most_keys
from serving.model.response import Problem

if TYPE_CHECKING:
    from serving.api.schemas import RequestModels

MAX_KEYS = 1_000  # fields in one lead object: a whole CRM record fits, 300,000 junk keys do not
MAX_PROBLEMS = 20  # problems (or warnings) listed per response before a count of the rest
MAX_FIELD_NAME = 100  # characters of an unknown field's name echoed in a warning
UNKNOWN = "ignored: not in the lead schema (GET /v1/model lists the fields)"
_TYPE_KINDS = {
    "int_type",
    "int_from_float",
    "int_parsing",
    "float_type",
    "float_parsing",
    "bool_type",
    "bool_parsing",
    "string_type",
    "datetime_type",
    "datetime_parsing",
    "datetime_from_date_parsing",
}
_RANGE_KINDS = {"greater_than_equal", "less_than_equal", "finite_number"}


@dataclass(frozen=True)
class LeadFields:
    """Which top-level keys of a lead are read, which are ignored on purpose (and why)."""

    accepted: frozenset[str]
    ignored: dict[str, str]
    specs: dict[str, FeatureSpec]
    id_column: str

    @classmethod
    def of(cls, schema: LeadSchema) -> LeadFields:
        accepted = {schema.id_column, *schema.context, *schema.feature_names}
        for role in (schema.created_at, schema.owner):  # kept for reports (the owner: sales KPIs)
            if role:
                accepted.add(role)
        ignored = {name: f"ignored: excluded from the model ({why})" for name, why in schema.excluded.items()}
        for role in (schema.target_column, schema.converted_at):
            if role and role not in accepted:
                ignored[role] = "ignored: the outcome is what the model predicts, not an input"
        return cls(frozenset(accepted), ignored, {spec.name: spec for spec in schema.features}, schema.id_column)


@dataclass
class ParsedLeads:
    """Leads keyed by schema names (every field present, None when not sent) and each lead's warnings."""

    leads: list[dict[str, Any]]
    warnings: list[list[Problem]] = field(default_factory=list)


def parse_lead(models: RequestModels, body: bytes, *, strict_fields: bool = False) -> ParsedLeads:
    """One lead object; raises InputError (400 malformed, 422 invalid) naming each field."""
    floor = key_floor(body)  # one lead object: the body's keys are (at least) its keys
    if floor > MAX_KEYS:
        raise InputError(422, [_too_many_keys(floor, exact=False)])
    raw = decode(body)
    found = _Found()
    lead, warnings = _lead(models, raw, "", strict_fields, found)
    found.raise_if_any()
    return ParsedLeads([lead], [warnings])


def parse_batch(models: RequestModels, body: bytes, *, strict_fields: bool = False) -> ParsedLeads:
    """`{"leads": [...]}`; 413 over max_batch, 422 for an empty batch or invalid leads."""
    usual = _usual_batch(models, body)
    if usual is not None:
        return usual
    raw = decode(body)
    if not isinstance(raw, dict):
        raise InputError(422, [{"field": "body", "problem": 'expected a JSON object: {"leads": [...]}'}])
    extra = [key for key in raw if key != "leads"]
    if extra:
        raise InputError(
            422,
            [
                {"field": _name(key), "problem": "unknown field: a batch has only `leads`"}
                for key in extra[:MAX_PROBLEMS]
            ],
        )
    leads = raw.get("leads")
    if not isinstance(leads, list):
        problem = "Field required" if "leads" not in raw else "expected a list of lead objects"
        raise InputError(422, [{"field": "leads", "problem": problem}])
    if not leads:
        raise InputError(422, [{"field": "leads", "problem": "empty batch: send at least one lead"}])
    if len(leads) > models.max_batch:
        raise InputError(
            413,
            [{"field": "leads", "problem": f"at most {models.max_batch:,} leads per batch request; split the batch"}],
        )
    found = _Found()
    parsed = ParsedLeads([])
    for i, item in enumerate(leads):
        lead, warnings = _lead(models, item, f"leads[{i}]", strict_fields, found)
        parsed.leads.append(lead)
        parsed.warnings.append(warnings)
    found.raise_if_any()
    return parsed


def _usual_batch(models: RequestModels, body: bytes) -> ParsedLeads | None:
    """The usual batch (valid leads of schema fields only) read and validated in one call of pydantic's
    JSON validator: ~6 µs a lead less than parsing, then validating lead by lead. Only where that gives
    what the general path gives, else None and the general path decides (and words any error):
    no object of more than MAX_KEYS keys, no duplicate key (the keys read equal the keys on the bytes),
    no number of 19 digits or more (past 64 bits), no escaped UTF-16 surrogate, and a batch size the
    general path accepts (counted on the bytes first: too many leads are refused before validating)."""
    found = json_keys.shape(body)
    if found is None or found.longest_number >= 19 or found.surrogates:
        return None
    if found.most_keys > len(models.fields.accepted) or found.objects - 1 > models.max_batch:
        return None  # a lead of more keys than the schema reads, or more leads than a batch may hold
    try:
        leads = models.validate_batch_json(body)
    except ValidationError:
        return None
    if not leads or len(leads) > models.max_batch or 1 + sum(map(len, leads)) != found.keys:
        return None
    return ParsedLeads([models.filled(lead) for lead in leads], [[] for _ in leads])


def decode(body: bytes) -> Any:
    """Strict JSON: no duplicate keys (last-wins would hide a conflict), no object with more than
    MAX_KEYS keys, refused before parsing. NaN and Infinity are read, then refused by their field's type
    ("not a finite number"). orjson reads the body when it can vouch for the same result
    (serving.api.fast_json), the standard parser otherwise."""
    if key_floor(body) > MAX_KEYS:  # enough keys in all for one object to have too many: count per object
        most = most_keys(body)  # before parsing: orjson too spends ~0.1 s on an object of 300,000 keys
        if most > MAX_KEYS:
            raise InputError(422, [_too_many_keys(most, exact=True)])
    value = fast_json.loads(body, max_keys=MAX_KEYS)
    if value is not None:
        return value
    try:
        return json.loads(body, object_pairs_hook=_object)  # NaN/Infinity: refused by the field they are in
    except _Refused as exc:
        raise InputError(exc.status, [exc.problem]) from None
    except json.JSONDecodeError as exc:
        raise InputError(
            400, [{"field": "body", "problem": f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}]
        ) from None
    except UnicodeDecodeError:
        raise InputError(400, [{"field": "body", "problem": "malformed JSON: the body is not UTF-8 text"}]) from None
    except RecursionError:
        raise InputError(400, [{"field": "body", "problem": "malformed JSON: nested too deeply"}]) from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise InputError(400, [{"field": "body", "problem": f"malformed JSON: {str(exc)[:200]}"}]) from None


class _Refused(Exception):
    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(problem["problem"])
        self.status = status
        self.problem = problem


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_KEYS:
        raise _Refused(422, _too_many_keys(len(pairs), exact=True))
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(
                422, {"field": _name(key), "problem": "duplicate key in one JSON object: send each field once"}
            )
        out[key] = value
    return out


def _too_many_keys(count: int, *, exact: bool) -> Problem:
    many = f"{count:,}" if exact else f"over {MAX_KEYS:,}"
    return {"field": "body", "problem": f"a lead object with {many} fields; at most {MAX_KEYS:,} are read"}


class _Found:
    """Problems across a request: the first MAX_PROBLEMS listed, the rest counted."""

    def __init__(self) -> None:
        self.listed: list[Problem] = []
        self.total = 0
        self.unchecked = 0  # leads not validated: the request had failed already

    def add(self, problems: list[Problem], total: int | None = None) -> None:
        room = MAX_PROBLEMS - len(self.listed)
        if room > 0:
            self.listed.extend(problems[:room])
        self.total += len(problems) if total is None else total

    def raise_if_any(self) -> None:
        if not self.total:
            return
        detail = list(self.listed)
        rest = self.total - len(detail)
        if rest or self.unchecked:
            text = f"{rest:,} more problems not listed"
            if self.unchecked:
                text += f"; the {self.unchecked:,} leads after them were not checked"
            detail.append({"field": "body", "problem": text})
        raise InputError(422, detail)


def _lead(
    models: RequestModels, raw: Any, where: str, strict_fields: bool, found: _Found
) -> tuple[dict[str, Any], list[Problem]]:
    if not isinstance(raw, dict):
        found.add([{"field": where or "body", "problem": "expected a JSON object"}])
        return {}, []
    fields = models.fields
    known: dict[str, Any] = {}
    warnings: list[Problem] = []
    unknown: list[str] = []
    if fields.accepted.issuperset(raw):  # the usual lead: every key read (one C-level check, ~2 µs less)
        known = raw
    else:
        for key, value in raw.items():
            if key in fields.accepted:
                known[key] = value
            elif key in fields.ignored:
                warnings.append({"field": key, "problem": fields.ignored[key]})
            else:
                unknown.append(key)
    if unknown and strict_fields:
        found.add(
            [
                {
                    "field": _at(where, _name(key)),
                    "problem": "unknown field: not in the lead schema "
                    "(GET /v1/model lists the fields; this server refuses unknown fields)",
                }
                for key in unknown
            ]
        )
    elif unknown:
        warnings += [{"field": _name(key), "problem": UNKNOWN} for key in unknown]
    if len(warnings) > MAX_PROBLEMS:
        rest = len(warnings) - MAX_PROBLEMS
        warnings = [*warnings[:MAX_PROBLEMS], {"field": "body", "problem": f"{rest:,} more fields ignored"}]
    if found.total > MAX_PROBLEMS and where:
        found.unchecked += 1  # the request fails anyway: later leads are not worth validating
        return known, warnings
    try:
        lead = models.validate(known)
    except ValidationError as exc:
        listed: dict[str, Problem] = {}  # one problem per field (a union reports one per branch)
        for err in exc.errors(include_url=False)[: MAX_PROBLEMS * 2]:
            problem = _problem(err, fields, where)
            listed.setdefault(problem["field"], problem)
        found.add(list(listed.values()), len(listed) if exc.error_count() <= MAX_PROBLEMS * 2 else exc.error_count())
        return known, warnings
    return lead, warnings


def _problem(err: Any, fields: LeadFields, where: str) -> Problem:
    from serving.api.schemas import MAX_TEXT, problem_text

    loc = tuple(err["loc"])
    if not loc:
        return {"field": where or "body", "problem": problem_text(err)}
    name = str(loc[0])  # leads are flat: the field, whichever branch of its type complained
    spec = fields.specs.get(name)
    text = None
    if name == fields.id_column:
        text = f"expected text of at most {MAX_TEXT} characters or a whole number (a 64-bit integer)"
    elif spec is not None and err["type"] in _RANGE_KINDS:
        text = value_problem(spec, err.get("input"))
    elif spec is not None and err["type"] in _TYPE_KINDS:
        given = err.get("input")  # 1e308 for a whole number is out of range, not mistyped; "NaN" text is mistyped
        text = type_problem(spec) if isinstance(given, str) else cell_problem(spec, given)
    return {"field": _at(where, name), "problem": text or problem_text(err)}


def _at(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _name(key: str) -> str:
    return key if len(key) <= MAX_FIELD_NAME else key[:MAX_FIELD_NAME] + "..."
