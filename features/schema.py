"""The lead schema: the one definition of a lead that training, serving and reports all read.

A schema is a YAML file. Example (the bundled synthetic CRM uses this format)::

    name: synthetic-crm
    roles:
      id: lead_id
      target: converted
      positive_values: [1]
      negative_values: [0]
      created_at: created_at        # optional
      converted_at: converted_at    # optional
      source: lead_source           # optional: where leads come from (reports and metrics group by it)
      campaign: campaign            # optional: the campaign that brought the lead
      owner: sales_owner            # optional: the seller or team a lead is handed to (KPI reports)
    outcome_window_days: 90
    grades: {A: 0.30, B: 0.15, C: 0.06, D: 0.0}
    context: [lead_source, campaign]   # kept for reports, never model features
    excluded:                          # columns left out, and why
      lead_status: filled in by sales after contact (leakage)
    features:
      - name: phone_present
        type: boolean
        factor: contactability
        label: Phone number present
        reason: No phone number on record
        actionable: [true]
        monotone: 1
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from features.errors import SchemaError
from features.factors import FACTORS, Factor
from features.grades import assign_grades

FeatureType = Literal["numeric", "integer", "boolean", "categorical", "datetime"]
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)
GRADE_NAMES: tuple[str, ...] = ("A", "B", "C", "D")
DEFAULT_GRADES: dict[str, float] = {"A": 0.30, "B": 0.15, "C": 0.06, "D": 0.0}

TRUE_WORDS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"0", "0.0", "false", "f", "no", "n"})


def outcome_label(window_days: int) -> str:
    """What a probability means: the same words in the training summary, model card and `GET /v1/model`."""
    if window_days == 0:
        return "converted, as the export records it (no outcome window)"
    return f"converted within {window_days} days of creation"


def normalise_label(value: Any) -> str:
    """One spelling per target value, so 1, 1.0, "1" and True compare equal."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip().lower()
    if text in {"true", "yes"}:
        return "1"
    if text in {"false", "no"}:
        return "0"
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


# -- field types: what the YAML allows, with the JSON Schema editors see -----------------------


def _problem(message: str, field: str | None = None, *, whole: bool = False) -> PydanticCustomError:
    """A problem in our own words, said after the field's path ("grades.D must be 0 ..."), or the `whole`
    sentence; `field` (relative to the model that fails) when the problem is in one of its keys."""
    return PydanticCustomError("leadscore", message, {"field": field or "", "whole": whole})


def _labels_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise _problem("must be a non-empty list")
    return tuple(normalise_label(v) for v in value)


_Scalar = {"type": ["string", "number", "integer", "boolean"]}
TargetValues = Annotated[
    tuple[str, ...],
    BeforeValidator(_labels_list),
    WithJsonSchema({"type": "array", "items": _Scalar, "minItems": 1}),
]
Number = StrictInt | StrictFloat
_Text = Annotated[str, BeforeValidator(lambda v: "" if v is None else v)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FeatureSpec(_Model):
    """One model input: its type, its quality factor and how to explain it."""

    name: str = Field(min_length=1, description="the column name")
    type: FeatureType
    factor: Factor = "other"
    label: _Text = Field("", description="shown to people (default: the name, capitalised)")
    description: _Text = ""
    min: Number | None = None
    max: Number | None = None
    values: tuple[str, ...] | None = Field(None, description="the allowed levels of a categorical feature")
    reason: _Text = Field("", description="shown when this feature lowers a lead")
    reason_missing: _Text = Field("", description="shown instead when the value is missing")
    actionable: tuple[Any, ...] = Field((), description="values a person could change it to (for what-if)")
    monotone: Literal[-1, 0, 1] = Field(0, description="1: more never lowers the score, -1: never raises it")

    @model_validator(mode="before")
    @classmethod
    def _default_label(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("name"), str) and not data.get("label"):
            data = {**data, "label": data["name"].replace("_", " ").capitalize()}
        return data

    @field_validator("values", mode="before")
    @classmethod
    def _text_values(cls, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, list | tuple) or not value:
            raise _problem("must be a non-empty list")
        text = tuple(str(v) for v in value)
        if len(set(text)) != len(text):
            raise _problem("lists a value twice")
        return text

    @field_validator("monotone", mode="before")
    @classmethod
    def _not_a_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise _problem("must be 1, -1 or 0")
        return value

    @field_validator("actionable", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise _problem("must be a list of candidate values")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeatureSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _problem(f"features.{self.name}: min {self.min} is above max {self.max}", "min", whole=True)
        if self.values is not None and self.type != "categorical":
            raise _problem(f"features.{self.name}.values is only for categorical features", "values", whole=True)
        if self.monotone and self.type == "categorical":
            raise _problem(
                f"features.{self.name}.monotone needs an ordered type, not categorical", "monotone", whole=True
            )
        if self.values is not None:
            for candidate in self.actionable:
                if str(candidate) not in self.values:
                    raise _problem(
                        f"features.{self.name}.actionable value {candidate!r} is not one of its values",
                        "actionable",
                        whole=True,
                    )
        return self

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    def reason_for(self, value: Any) -> str:
        """The text shown when this feature lowers a lead; missing values have their own."""
        return self.reason_text(missing=is_missing(value))

    def reason_text(self, *, missing: bool) -> str:
        """The schema's reason, else one default for every feature (the API shows the value beside it)."""
        if missing and self.reason_missing:
            return self.reason_missing
        return self.reason or f"{self.label} lowers the score"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "factor": self.factor, "label": self.label}
        if self.description:
            out["description"] = self.description
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.values is not None:
            out["values"] = list(self.values)
        if self.reason:
            out["reason"] = self.reason
        if self.reason_missing:
            out["reason_missing"] = self.reason_missing
        if self.actionable:
            out["actionable"] = list(self.actionable)
        if self.monotone:
            out["monotone"] = self.monotone
        return out


def is_missing(value: Any) -> bool:
    """A lead's field value that says nothing: absent (None) or NaN."""
    return value is None or (isinstance(value, float) and math.isnan(value))


class Roles(_Model):
    """Which columns are the id, the outcome and the dates, and how groups of leads are named."""

    id: str = Field(min_length=1, description="unique per lead")
    target: str = Field(min_length=1, description="the outcome column")
    positive_values: TargetValues = Field(("1",), description="target values that mean converted")
    negative_values: TargetValues = Field(("0",), description="target values that mean not converted")
    created_at: str | None = Field(None, description="when the lead arrived (needed for quarterly retraining)")
    converted_at: str | None = Field(None, description="when it converted")
    source: str | None = Field(None, description="where leads come from, e.g. utm_source (reports group by it)")
    campaign: str | None = Field(None, description="the campaign that brought the lead (reports group by it)")
    owner: str | None = Field(None, description="the seller or team a lead is handed to (KPI reports)")

    @model_validator(mode="after")
    def _disjoint(self) -> Roles:
        if set(self.positive_values) & set(self.negative_values):
            raise _problem("a value is both positive and negative in roles", "positive_values", whole=True)
        return self


def _grades(value: Any) -> dict[str, float]:
    if not isinstance(value, dict) or list(value) != list(GRADE_NAMES):
        raise _problem("must give floors for A, B, C and D, in that order")
    for name, floor in value.items():
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0.0 <= floor <= 1.0:
            raise _problem("must be a probability between 0 and 1", name)
    floors = [float(f) for f in value.values()]
    if any(a <= b for a, b in zip(floors, floors[1:], strict=False)):
        raise _problem("grade floors must fall from A to D", whole=True)
    if floors[-1] != 0.0:
        raise _problem("must be 0 so that every lead gets a grade", "D")
    return dict(zip(GRADE_NAMES, floors, strict=True))


Grades = Annotated[
    dict[str, float],
    BeforeValidator(_grades),
    WithJsonSchema(
        {
            "type": "object",
            "description": "floors on the calibrated probability, falling, D = 0",
            "properties": {g: {"type": "number", "minimum": 0, "maximum": 1} for g in GRADE_NAMES},
            "required": list(GRADE_NAMES),
            "additionalProperties": False,
        }
    ),
]


class LeadSchema(_Model):
    """A company's leads: roles, features with their factors, and the grade thresholds."""

    name: Annotated[str, BeforeValidator(lambda v: str(v or "leads"))] = "leads"
    description: _Text = ""
    roles: Roles
    outcome_window_days: StrictInt = Field(
        90, ge=0, description="how long after creation an outcome is final; 0: the export records final outcomes"
    )
    grades: Grades = Field(default_factory=lambda: dict(DEFAULT_GRADES))
    context: Annotated[tuple[str, ...], BeforeValidator(lambda v: () if v is None else v)] = Field(
        (), description="columns kept for reports by source and campaign, never model features"
    )
    excluded: Annotated[dict[str, str], BeforeValidator(lambda v: {} if v is None else v)] = Field(
        default_factory=dict, description="columns deliberately left out, and why"
    )
    features: tuple[FeatureSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> LeadSchema:
        roles = self.roles
        role_cols = {roles.id, roles.target, roles.created_at, roles.converted_at, roles.owner}
        seen: set[str] = set()
        for spec in self.features:
            if spec.name in seen:
                raise _problem(f"feature '{spec.name}' is listed twice", f"features.{spec.name}", whole=True)
            if spec.name in role_cols:
                raise _problem(
                    f"feature '{spec.name}' is also a role column (id, target or date)",
                    f"features.{spec.name}",
                    whole=True,
                )
            seen.add(spec.name)
        for name in self.context:
            if name in seen:
                raise _problem(f"'{name}' is both a feature and a context column", f"features.{name}", whole=True)
        grouping = [c for c in (roles.source, roles.campaign) if c and c not in self.context]
        if grouping:  # the source and campaign columns are report context by definition
            object.__setattr__(self, "context", (*self.context, *grouping))
        for name in grouping:
            if name in seen:
                raise _problem(f"'{name}' is both a feature and a context column", f"features.{name}", whole=True)
        return self

    # -- the names the rest of the code reads ----------------------------------------------
    @property
    def id_column(self) -> str:
        return self.roles.id

    @property
    def target_column(self) -> str:
        return self.roles.target

    @property
    def positive_values(self) -> tuple[str, ...]:
        return self.roles.positive_values

    @property
    def negative_values(self) -> tuple[str, ...]:
        return self.roles.negative_values

    @property
    def created_at(self) -> str | None:
        return self.roles.created_at

    @property
    def converted_at(self) -> str | None:
        return self.roles.converted_at

    @property
    def source(self) -> str | None:
        return self.roles.source

    @property
    def campaign(self) -> str | None:
        return self.roles.campaign

    @property
    def owner(self) -> str | None:
        return self.roles.owner

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def factor_map(self) -> dict[str, str]:
        return {f.name: f.factor for f in self.features}

    def feature(self, name: str) -> FeatureSpec:
        for spec in self.features:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def group_columns(self) -> list[str]:
        """What reports group by unless told otherwise: roles.source and roles.campaign, else the context."""
        named = [c for c in (self.source, self.campaign) if c]
        return named or list(self.context)

    @property
    def role_columns(self) -> list[str]:
        cols = [self.id_column, self.target_column, self.created_at, self.converted_at, self.owner]
        return [c for c in cols if c]

    def is_positive(self, value: Any) -> bool:
        return normalise_label(value) in self.positive_values

    def grade(self, probability: float) -> str:
        """The shared qualification definition: the first grade whose floor the probability reaches."""
        return assign_grades(float(probability), self.grades)

    def to_dict(self) -> dict[str, Any]:
        roles: dict[str, Any] = {
            "id": self.id_column,
            "target": self.target_column,
            "positive_values": list(self.positive_values),
            "negative_values": list(self.negative_values),
        }
        for role in ("created_at", "converted_at", "source", "campaign", "owner"):
            if getattr(self.roles, role):
                roles[role] = getattr(self.roles, role)
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(
            {
                "roles": roles,
                "outcome_window_days": self.outcome_window_days,
                "grades": dict(self.grades),
                "context": list(self.context),
                "excluded": dict(self.excluded),
                "features": [f.to_dict() for f in self.features],
            }
        )
        return out

    def fingerprint(self) -> str:
        """A short hash that changes whenever the definition of a lead changes."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(to_yaml(self))


def to_yaml(schema: LeadSchema) -> str:
    import yaml  # here and in load_schema: a server reads its schema from bundle.json, never YAML

    return yaml.safe_dump(schema.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a schema YAML file, for editors (shipped as features/data/lead-schema.json)."""
    out = LeadSchema.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    out["title"] = "leadscore lead schema"
    return out


def load_schema(path: str | Path) -> LeadSchema:
    """Read a schema YAML file; any problem raises SchemaError naming the field."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"schema file not found: {path}")
    import yaml

    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SchemaError(f"schema {path.name}: not valid YAML{where}") from exc
    return schema_from_dict(raw, source=path.name)


def schema_from_dict(raw: Any, *, source: str = "schema") -> LeadSchema:
    """Build and check a schema from plain data (YAML or a bundle's JSON)."""
    if not isinstance(raw, dict):
        raise SchemaError(f"{source}: expected a mapping at the top level")
    try:
        return LeadSchema.model_validate(raw)
    except ValidationError as exc:
        message, field = _first_problem(exc, raw)
        raise SchemaError(f"{source}: {message}", field=field) from exc


# -- one readable line per problem -------------------------------------------------------------

_TOP_KEYS = ", ".join(LeadSchema.model_fields)
_UNION_TAG = re.compile(r"^(int|float|str|bool|none|function-.*|(list|tuple|dict)\[.*)$")  # pydantic's, not ours
_TYPE_PROBLEMS = {
    "outcome_window_days": "must be a whole number of days (0 or more)",
    "features": "must be a non-empty list",
    "context": "must be a list of column names",
    "excluded": "must map column names to the reason they are left out",
    "min": "must be a number",
    "max": "must be a number",
    "monotone": "must be 1, -1 or 0",
    "name": "must be text",
}


def _first_problem(exc: ValidationError, raw: dict[str, Any]) -> tuple[str, str]:
    """The first error as one line and the dotted field it names (features by name, not position)."""
    error = exc.errors(include_url=False)[0]
    loc = [str(part) for part in error["loc"] if not _UNION_TAG.match(str(part))]
    kind, ctx = error["type"], error.get("ctx") or {}
    if ctx.get("field"):
        loc += str(ctx["field"]).split(".")
    if len(loc) >= 2 and loc[0] == "features" and loc[1].isdigit():
        item = _item(raw.get("features"), loc[1])
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            return f"features[{loc[1]}] needs a 'name'", f"features[{loc[1]}]"
        loc[1] = item["name"]
    field = ".".join(loc)
    key = loc[-1] if loc else ""
    if kind == "leadscore":
        return (error["msg"] if ctx.get("whole") else f"{_quoted(field)} {error['msg']}"), field
    if kind == "missing":
        if loc[:1] == ["roles"] and len(loc) == 2:
            return f"{field} is missing: name the {key} column", field
        if field == "roles":
            return "'roles' is missing (it names the id and target columns)", field
        return f"'{field}' is missing", field
    if kind == "extra_forbidden":
        where = ".".join(loc[:-1])
        allowed = f" (allowed: {_TOP_KEYS})" if len(loc) == 1 else ""
        return (f"{where}: " if where else "") + f"unknown key '{key}'{allowed}", field
    if kind == "literal_error" and key in ("type", "factor"):
        allowed = ", ".join(FEATURE_TYPES if key == "type" else FACTORS)
        return f"{field}: unknown {key} {error['input']!r} (allowed: {allowed})", field
    if field == "roles":
        return "'roles' is missing (it names the id and target columns)", field
    if loc[:1] == ["roles"] and len(loc) == 2:
        return (
            f"{field} is missing: name the {key} column"
            if key in ("id", "target")
            else f"{field} must be a column name"
        ), field
    if key in _TYPE_PROBLEMS and (key != "name" or len(loc) == 1):
        shown = f", got {error['input']!r}" if key == "outcome_window_days" else ""
        return f"{_quoted(field)} {_TYPE_PROBLEMS[key]}{shown}", field
    return f"{field}: {error['msg']}", field


def _item(items: Any, index: str) -> Any:
    try:
        return items[int(index)]
    except (TypeError, ValueError, IndexError, KeyError):
        return None


def _quoted(field: str) -> str:
    """Top-level keys are quoted in messages ('features' must ...), nested ones are paths."""
    return f"'{field}'" if "." not in field and field in LeadSchema.model_fields else field
