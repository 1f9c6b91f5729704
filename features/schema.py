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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from features.errors import SchemaError
from features.factors import FACTORS
from features.grades import assign_grades

FEATURE_TYPES: tuple[str, ...] = ("numeric", "integer", "boolean", "categorical", "datetime")
GRADE_NAMES: tuple[str, ...] = ("A", "B", "C", "D")
DEFAULT_GRADES: dict[str, float] = {"A": 0.30, "B": 0.15, "C": 0.06, "D": 0.0}
_FEATURE_KEYS = {
    "name", "type", "factor", "label", "description", "min", "max", "values",
    "reason", "reason_missing", "actionable", "monotone",
}
_TOP_KEYS = {
    "name", "roles", "outcome_window_days", "grades", "context", "excluded", "features", "description",
}

TRUE_WORDS = frozenset({"1", "1.0", "true", "t", "yes", "y"})
FALSE_WORDS = frozenset({"0", "0.0", "false", "f", "no", "n"})


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


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its type, its quality factor and how to explain it."""

    name: str
    type: str
    factor: str
    label: str
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    reason: str = ""
    reason_missing: str = ""
    actionable: tuple[Any, ...] = ()
    monotone: int = 0

    @property
    def is_categorical(self) -> bool:
        return self.type == "categorical"

    def reason_for(self, value: Any) -> str:
        """The text shown when this feature lowers a lead; missing values have their own."""
        missing = value is None or (isinstance(value, float) and math.isnan(value))
        if missing and self.reason_missing:
            return self.reason_missing
        return self.reason or f"{self.label}: {value!r} lowers the score"

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


@dataclass(frozen=True)
class LeadSchema:
    """A company's leads: roles, features with their factors, and the grade thresholds."""

    name: str
    id_column: str
    target_column: str
    positive_values: tuple[str, ...]
    negative_values: tuple[str, ...]
    features: tuple[FeatureSpec, ...]
    created_at: str | None = None
    converted_at: str | None = None
    outcome_window_days: int = 90
    grades: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GRADES))
    context: tuple[str, ...] = ()
    excluded: dict[str, str] = field(default_factory=dict)
    description: str = ""
    source: str | None = None
    campaign: str | None = None

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
        cols = [self.id_column, self.target_column, self.created_at, self.converted_at]
        return [c for c in cols if c]

    def is_positive(self, value: Any) -> bool:
        return normalise_label(value) in self.positive_values

    def grade(self, probability: float) -> str:
        """The shared qualification definition: the first grade whose floor the probability reaches."""
        return str(assign_grades(probability, self.grades))

    def to_dict(self) -> dict[str, Any]:
        roles: dict[str, Any] = {
            "id": self.id_column,
            "target": self.target_column,
            "positive_values": list(self.positive_values),
            "negative_values": list(self.negative_values),
        }
        if self.created_at:
            roles["created_at"] = self.created_at
        if self.converted_at:
            roles["converted_at"] = self.converted_at
        if self.source:
            roles["source"] = self.source
        if self.campaign:
            roles["campaign"] = self.campaign
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update({
            "roles": roles,
            "outcome_window_days": self.outcome_window_days,
            "grades": dict(self.grades),
            "context": list(self.context),
            "excluded": dict(self.excluded),
            "features": [f.to_dict() for f in self.features],
        })
        return out

    def fingerprint(self) -> str:
        """A short hash that changes whenever the definition of a lead changes."""
        text = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(to_yaml(self))


def to_yaml(schema: LeadSchema) -> str:
    return yaml.safe_dump(schema.to_dict(), sort_keys=False, allow_unicode=True, width=100)


def load_schema(path: str | Path) -> LeadSchema:
    """Read a schema YAML file; any problem raises SchemaError naming the field."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"schema file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SchemaError(f"schema {path.name}: not valid YAML{where}") from None
    return schema_from_dict(raw, source=path.name)


def schema_from_dict(raw: Any, *, source: str = "schema") -> LeadSchema:
    """Build and check a schema from plain data (YAML or a bundle's JSON)."""
    if not isinstance(raw, dict):
        raise SchemaError(f"{source}: expected a mapping at the top level")
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise SchemaError(f"{source}: unknown key '{sorted(unknown)[0]}' (allowed: {', '.join(sorted(_TOP_KEYS))})",
                          field=sorted(unknown)[0])
    roles = raw.get("roles")
    if not isinstance(roles, dict):
        raise SchemaError(f"{source}: 'roles' is missing (it names the id and target columns)", field="roles")
    for role in ("id", "target"):
        if not roles.get(role) or not isinstance(roles.get(role), str):
            raise SchemaError(f"{source}: roles.{role} is missing: name the {role} column", field=f"roles.{role}")
    positive = roles.get("positive_values", [1])
    negative = roles.get("negative_values", [0])
    if not isinstance(positive, list) or not positive:
        raise SchemaError(f"{source}: roles.positive_values must be a non-empty list", field="roles.positive_values")
    if not isinstance(negative, list) or not negative:
        raise SchemaError(f"{source}: roles.negative_values must be a non-empty list", field="roles.negative_values")
    pos = tuple(normalise_label(v) for v in positive)
    neg = tuple(normalise_label(v) for v in negative)
    if set(pos) & set(neg):
        raise SchemaError(f"{source}: a value is both positive and negative in roles", field="roles.positive_values")
    for role in ("created_at", "converted_at", "source", "campaign"):
        if roles.get(role) is not None and not isinstance(roles.get(role), str):
            raise SchemaError(f"{source}: roles.{role} must be a column name", field=f"roles.{role}")

    window = raw.get("outcome_window_days", 90)
    # 0 means the export records final outcomes (no conversion dates: every recorded outcome is taken as final).
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise SchemaError(f"{source}: outcome_window_days must be a whole number of days (0 or more), got {window!r}",
                          field="outcome_window_days")

    features_raw = raw.get("features")
    if not isinstance(features_raw, list) or not features_raw:
        raise SchemaError(f"{source}: 'features' must be a non-empty list", field="features")
    features: list[FeatureSpec] = []
    seen: set[str] = set()
    role_cols = {roles["id"], roles["target"], roles.get("created_at"), roles.get("converted_at")}
    for i, item in enumerate(features_raw):
        spec = _feature_from_dict(item, index=i, source=source)
        if spec.name in seen:
            raise SchemaError(f"{source}: feature '{spec.name}' is listed twice", field=f"features.{spec.name}")
        if spec.name in role_cols:
            raise SchemaError(f"{source}: feature '{spec.name}' is also a role column (id, target or date)",
                              field=f"features.{spec.name}")
        seen.add(spec.name)
        features.append(spec)

    grades = _grades_from(raw.get("grades", DEFAULT_GRADES), source)
    context = raw.get("context") or []
    if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
        raise SchemaError(f"{source}: 'context' must be a list of column names", field="context")
    # the source and campaign columns are report context by definition
    context = context + [roles[r] for r in ("source", "campaign") if roles.get(r) and roles[r] not in context]
    clash = seen & set(context)
    if clash:
        name = sorted(clash)[0]
        raise SchemaError(f"{source}: '{name}' is both a feature and a context column", field=f"features.{name}")
    excluded = raw.get("excluded") or {}
    if not isinstance(excluded, dict):
        raise SchemaError(f"{source}: 'excluded' must map column names to the reason they are left out",
                          field="excluded")
    return LeadSchema(
        name=str(raw.get("name") or "leads"),
        description=str(raw.get("description") or ""),
        id_column=roles["id"],
        target_column=roles["target"],
        positive_values=pos,
        negative_values=neg,
        created_at=roles.get("created_at"),
        converted_at=roles.get("converted_at"),
        source=roles.get("source"),
        campaign=roles.get("campaign"),
        outcome_window_days=window,
        features=tuple(features),
        grades=grades,
        context=tuple(context),
        excluded={str(k): str(v) for k, v in excluded.items()},
    )


def _feature_from_dict(item: Any, *, index: int, source: str) -> FeatureSpec:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise SchemaError(f"{source}: features[{index}] needs a 'name'", field=f"features[{index}]")
    name = item["name"]
    where = f"features.{name}"
    unknown = set(item) - _FEATURE_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise SchemaError(f"{source}: {where}: unknown key '{key}'", field=f"{where}.{key}")
    ftype = item.get("type")
    if ftype not in FEATURE_TYPES:
        raise SchemaError(f"{source}: {where}.type: unknown type {ftype!r} (allowed: {', '.join(FEATURE_TYPES)})",
                          field=f"{where}.type")
    factor = item.get("factor", "other")
    if factor not in FACTORS:
        raise SchemaError(f"{source}: {where}.factor: unknown factor {factor!r} (allowed: {', '.join(FACTORS)})",
                          field=f"{where}.factor")
    lo, hi = item.get("min"), item.get("max")
    for key, bound in (("min", lo), ("max", hi)):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
            raise SchemaError(f"{source}: {where}.{key} must be a number", field=f"{where}.{key}")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaError(f"{source}: {where}: min {lo} is above max {hi}", field=f"{where}.min")
    values = item.get("values")
    if values is not None:
        if ftype != "categorical":
            raise SchemaError(f"{source}: {where}.values is only for categorical features", field=f"{where}.values")
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{source}: {where}.values must be a non-empty list", field=f"{where}.values")
        values = tuple(str(v) for v in values)
        if len(set(values)) != len(values):
            raise SchemaError(f"{source}: {where}.values lists a value twice", field=f"{where}.values")
    monotone = item.get("monotone", 0)
    if monotone not in (-1, 0, 1) or isinstance(monotone, bool):
        raise SchemaError(f"{source}: {where}.monotone must be 1, -1 or 0", field=f"{where}.monotone")
    if monotone and ftype == "categorical":
        raise SchemaError(f"{source}: {where}.monotone needs an ordered type, not categorical", field=f"{where}.monotone")
    actionable = item.get("actionable") or []
    if not isinstance(actionable, list):
        raise SchemaError(f"{source}: {where}.actionable must be a list of candidate values",
                          field=f"{where}.actionable")
    if values is not None:
        for candidate in actionable:
            if str(candidate) not in values:
                raise SchemaError(f"{source}: {where}.actionable value {candidate!r} is not one of its values",
                                  field=f"{where}.actionable")
    return FeatureSpec(
        name=name,
        type=ftype,
        factor=factor,
        label=str(item.get("label") or name.replace("_", " ").capitalize()),
        description=str(item.get("description") or ""),
        min=lo,
        max=hi,
        values=values,
        reason=str(item.get("reason") or ""),
        reason_missing=str(item.get("reason_missing") or ""),
        actionable=tuple(actionable),
        monotone=int(monotone),
    )


def _grades_from(raw: Any, source: str) -> dict[str, float]:
    if not isinstance(raw, dict) or list(raw) != list(GRADE_NAMES):
        raise SchemaError(f"{source}: 'grades' must give floors for A, B, C and D, in that order", field="grades")
    floors: dict[str, float] = {}
    for name, floor in raw.items():
        if isinstance(floor, bool) or not isinstance(floor, int | float) or not 0.0 <= floor <= 1.0:
            raise SchemaError(f"{source}: grades.{name} must be a probability between 0 and 1", field=f"grades.{name}")
        floors[name] = float(floor)
    values = list(floors.values())
    if any(a <= b for a, b in zip(values, values[1:])):
        raise SchemaError(f"{source}: grade floors must fall from A to D", field="grades")
    if values[-1] != 0.0:
        raise SchemaError(f"{source}: grades.D must be 0 so that every lead gets a grade", field="grades.D")
    return floors
