"""Request bodies, built from the lead schema so a lead is defined once (responses: serving/model/response.py).

Every field is optional and nullable: a missing phone number is itself a signal the model scores.
Types are strict (`true` is not a number) and ranges come from the schema's min/max. Parsing a body
(`serving.api.lead_input`) reads these models; it decides what happens to fields the schema does not
list. Category values outside the schema's list are accepted on purpose: the model scores them as
missing and the response reports them in `warnings`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, NotRequired
from weakref import WeakKeyDictionary

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter, ValidationError, create_model
from typing_extensions import TypedDict

from features.factors import FACTOR_LABELS
from features.schema import FeatureSpec, LeadSchema
from serving.model.response import Problem

MAX_TEXT = 200
INT64: dict[str, Any] = {"ge": -(2**63), "le": 2**63 - 1}


class ErrorBody(BaseModel):
    """Every 4xx/5xx body: what is wrong, field by field."""

    detail: list[Problem] | str


class RequestModels:
    """The pydantic models for one lead schema and batch limit, with field names as aliases."""

    def __init__(self, schema: LeadSchema, max_batch: int) -> None:
        self.schema = schema
        self.max_batch = max_batch
        self.lead = _lead_model(schema)
        self._lead_dict = _dict_adapter(self.lead)
        self._batch_dict = _batch_adapter(self.lead)
        self._nulls: dict[str, None] = {str(field.alias): None for field in self.lead.model_fields.values()}
        leads: Any = list.__class_getitem__(self.lead)  # list[LeadIn], built at run time from the schema
        self.batch: Any = create_model(
            "LeadBatch", __config__=ConfigDict(extra="forbid"), leads=(leads, Field(min_length=1, max_length=max_batch))
        )
        self.example = example_lead(schema)
        from serving.api.lead_input import LeadFields

        self.fields = LeadFields.of(schema)

    def validate(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`self.lead.model_validate(fields).model_dump(by_alias=True)` (every field, keyed by schema
        names), in one pass through the same validators into a dict (~60% of the time for a demo lead).
        Invalid input raises the model's own ValidationError, so error texts do not change."""
        try:
            return self.filled(self._lead_dict.validate_python(fields))
        except ValidationError:
            return self.lead.model_validate(fields).model_dump(by_alias=True)

    def validate_batch_json(self, body: bytes) -> list[dict[str, Any]]:
        """`{"leads": [...]}` read and validated by pydantic's own JSON parser in one call, each lead
        keyed by the fields it sent (not filled with None); raises ValidationError for anything else
        (an unknown field too). serving.api.lead_input decides when this equals the general path."""
        leads: list[dict[str, Any]] = self._batch_dict.validate_json(body)["leads"]
        return leads

    def filled(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Every field, None where not sent (what `validate` returns)."""
        return {**self._nulls, **fields}

    def parse_lead(self, body: bytes) -> dict[str, Any]:
        """One lead as a dict keyed by schema names; raises serving.api.errors.InputError."""
        from serving.api.lead_input import parse_lead

        return parse_lead(self, body).leads[0]

    def parse_batch(self, body: bytes) -> list[dict[str, Any]]:
        from serving.api.lead_input import parse_batch

        return parse_batch(self, body).leads

    def openapi_components(self) -> dict[str, Any]:
        lead = self.lead.model_json_schema(by_alias=True)
        lead["examples"] = [self.example]
        lead["additionalProperties"] = True  # a CRM's whole record is read (serving.api.lead_input)
        lead["description"] = (
            "A lead: every field optional. Other fields (a CRM's whole record) are ignored and "
            "named in `warnings`, or refused when the server sets LEADSCORE_STRICT_FIELDS."
        )
        batch = {
            "title": "LeadBatch",
            "type": "object",
            "additionalProperties": False,
            "required": ["leads"],
            "properties": {
                "leads": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Lead"},
                    "minItems": 1,
                    "maxItems": self.max_batch,
                }
            },
        }
        return {"Lead": lead, "LeadBatch": batch}


_CACHE: WeakKeyDictionary[Any, dict[int, RequestModels]] = WeakKeyDictionary()


def request_models(owner: Any, schema: LeadSchema, max_batch: int) -> RequestModels:
    """Built once per (owner, limit), e.g. per loaded Scorer: create_model is slow, validating is fast."""
    per_owner = _CACHE.setdefault(owner, {})
    if max_batch not in per_owner:
        per_owner[max_batch] = RequestModels(schema, max_batch)
    return per_owner[max_batch]


def _lead_model(schema: LeadSchema) -> type[BaseModel]:
    fields: dict[str, Any] = {
        "f_id": (
            Annotated[str, Field(max_length=MAX_TEXT)] | Annotated[int, Strict(), Field(**INT64)] | None,
            Field(None, alias=schema.id_column, description="the lead's id, echoed back", examples=["L00012345"]),
        ),
    }
    if schema.created_at:
        fields["f_created"] = (
            datetime | None,
            Field(None, alias=schema.created_at, description="when the lead was created (ISO 8601)"),
        )
    for i, name in enumerate(schema.context):
        fields[f"c{i}"] = (
            Annotated[str, Field(max_length=MAX_TEXT)] | None,
            Field(None, alias=name, description="context for reports; not a model input"),
        )
    if schema.owner:
        fields["f_owner"] = (
            Annotated[str, Field(max_length=MAX_TEXT)] | None,
            Field(
                None,
                alias=schema.owner,
                description="the seller or team the lead goes to; for KPI reports, not a model input",
            ),
        )
    for j, spec in enumerate(schema.features):
        fields[f"f{j}"] = (
            _annotation(spec),
            Field(None, alias=spec.name, description=_describe(spec), examples=[_example(spec)]),
        )
    config = ConfigDict(extra="forbid", populate_by_name=False, str_strip_whitespace=True)
    return create_model("Lead", __config__=config, **fields)


def _dict_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    """The model's fields as a TypedDict keyed by their aliases: the same annotations, constraints
    and config, validated into a plain dict instead of a model instance."""
    return TypeAdapter(_lead_dict_type(model, defaults=True))


def _batch_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    """`{"leads": [...]}` of `_lead_dict_type` leads without defaults: a lead keeps the keys it was
    sent, no more (serving.api.lead_input counts them against the keys on the bytes)."""
    # fail_fast: a junk list (a million `1`s) costs one error, not a million error objects
    leads: Any = Annotated[list.__class_getitem__(_lead_dict_type(model, defaults=False)), Field(fail_fast=True)]
    make: Any = TypedDict  # built at run time from the schema: not a static TypedDict
    return TypeAdapter(_configured(make("LeadBatchFields", {"leads": leads}), model))


def _lead_dict_type(model: type[BaseModel], *, defaults: bool) -> Any:
    """The model's fields as a TypedDict keyed by their aliases, with the model's annotations (their
    constraints included) and config; with `defaults`, its field infos too (defaults, descriptions)."""
    fields = {
        f.alias: NotRequired[Annotated[f.annotation, f] if defaults else f.annotation]
        for f in model.model_fields.values()
    }
    make: Any = TypedDict  # built at run time from the schema: not a static TypedDict
    return _configured(make(f"{model.__name__}{'Fields' if defaults else 'Sent'}", fields, total=False), model)


def _configured(typed_dict: Any, model: type[BaseModel]) -> Any:
    setattr(typed_dict, "__pydantic_config__", model.model_config)  # noqa: B010 - pydantic reads it from the class
    return typed_dict


def _annotation(spec: FeatureSpec) -> Any:
    bounds: dict[str, Any] = {"ge": spec.min, "le": spec.max}
    if spec.type == "numeric":
        return Annotated[float, Strict(), Field(allow_inf_nan=False, **bounds)] | None
    if spec.type == "integer":
        return Annotated[int, Strict(), Field(**bounds)] | None
    if spec.type == "boolean":
        return Annotated[bool, Strict()] | None
    if spec.type == "datetime":
        return datetime | None
    return Annotated[str, Field(max_length=MAX_TEXT)] | None


def _describe(spec: FeatureSpec) -> str:
    text = f"{spec.label} ({FACTOR_LABELS.get(spec.factor, spec.factor)})."
    if spec.description:
        text += f" {spec.description}"
    if spec.values:
        text += (
            f" Known values: {', '.join(spec.values)}. Other values are accepted, scored as missing and "
            "listed in `warnings`."
        )
    return text + " Leave out or null when unknown."


def _example(spec: FeatureSpec) -> Any:
    if spec.actionable:
        return spec.actionable[0]
    if spec.values:
        return spec.values[0]
    if spec.type == "boolean":
        return spec.monotone >= 0  # the good value: a bounced e-mail is not an example to copy
    if spec.type == "datetime":
        return "2026-09-01T00:00:00"
    lo = spec.min if spec.min is not None else 0
    hi = spec.max if spec.max is not None else lo + 1000
    value = lo + (hi - lo) * 0.001
    return round(value) if spec.type == "integer" else round(float(value), 3)


def example_lead(schema: LeadSchema) -> dict[str, Any]:
    """A complete, valid lead for the docs and `leadscore serve`'s curl line. Its actionable fields hold
    a value a person could improve (no demo, long timeline), so a new user sees what the product is for:
    lowering factors with their reasons and what-if changes, not a perfect lead with nothing to say."""
    lead: dict[str, Any] = {schema.id_column: "L-example-1"}
    lead.update({spec.name: _improvable(spec) if spec.actionable else _example(spec) for spec in schema.features})
    return lead


def _improvable(spec: FeatureSpec) -> Any:
    """A valid value outside the feature's actionable ones (the value a what-if would change)."""
    if spec.type == "boolean":
        return not spec.actionable[0]
    others = [v for v in spec.values or [] if v not in spec.actionable]
    if others:
        return others[-1]
    return _example(spec) if spec.values else None  # numbers: missing, which the what-if fills in


def problems(exc: ValidationError) -> list[Problem]:
    """pydantic's errors as [{"field": "leads[2].web_visits", "problem": "..."}], no input echoed."""
    return [
        Problem(field=field_path(err["loc"]), problem=problem_text(err))
        for err in exc.errors(include_url=False, include_input=False)
    ]


def field_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def problem_text(err: Any) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown field: not in the lead schema (GET /v1/model lists the fields)"
    if kind == "json_invalid":
        return f"malformed JSON: {err['msg'].removeprefix('Invalid JSON: ')}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a JSON object"
    return str(err["msg"])
