"""A small JSON-schema subset, used both to validate requests and to write the
OpenAPI document (one source of truth for both).

Supported keywords: ``type`` (object, string, integer, number, boolean, array),
``properties``, ``required``, ``additionalProperties: false``, ``enum``,
``minLength``, ``maxLength``, ``pattern``, ``format: date``, ``minimum``,
``maximum``, ``items``, ``maxItems``. Errors are collected, not raised one by
one, so a client sees every problem of a request at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any

from switchboard.api.errors import ValidationFailed
from switchboard.api.guards import MAX_DATE, MIN_DATE

Schema = Mapping[str, Any]

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
}


def problems(value: Any, schema: Schema, where: str = "") -> list[dict[str, str]]:
    """Every way ``value`` breaks ``schema``, as ``[{field, problem}]``."""
    out: list[dict[str, str]] = []
    label = where or "(body)"
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind])
        if kind in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            return [{"field": label, "problem": f"must be of type {kind}"}]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(v) for v in schema["enum"])
        out.append({"field": label, "problem": f"must be one of: {allowed}"})
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append({"field": label, "problem": f"must be at least {schema['minLength']} characters"})
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append({"field": label, "problem": f"must be at most {schema['maxLength']} characters"})
        if "pattern" in schema and re.fullmatch(schema["pattern"], value) is None:
            out.append({"field": label, "problem": f"must match {schema['pattern']}"})
        if schema.get("format") == "date":
            try:
                day = date.fromisoformat(value)
            except ValueError:
                out.append({"field": label, "problem": "must be a date YYYY-MM-DD"})
            else:
                if not MIN_DATE <= day <= MAX_DATE:
                    out.append({"field": label, "problem": f"must be between {MIN_DATE} and {MAX_DATE}"})
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            out.append({"field": label, "problem": f"must be >= {schema['minimum']}"})
        if "maximum" in schema and value > schema["maximum"]:
            out.append({"field": label, "problem": f"must be <= {schema['maximum']}"})
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append({"field": label, "problem": f"must have at most {schema['maxItems']} items"})
        if "items" in schema:
            for i, item in enumerate(value):
                out.extend(problems(item, schema["items"], f"{label}[{i}]"))
    if isinstance(value, dict):
        props: Mapping[str, Schema] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                out.append({"field": _join(where, name), "problem": "is required"})
        for name, item in value.items():
            if name in props:
                out.extend(problems(item, props[name], _join(where, name)))
            elif schema.get("additionalProperties") is False:
                out.append({"field": _join(where, name), "problem": "is not allowed"})
    return out


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_body(value: Any, schema: Schema) -> dict[str, Any]:
    found = problems(value, schema)
    if found:
        raise ValidationFailed("the request body is invalid", details={"problems": found})
    assert isinstance(value, dict)
    return value


def coerce_query(raw: Mapping[str, str], params: Mapping[str, Schema]) -> dict[str, Any]:
    """Query parameters (strings) converted by their schemas, then validated.

    Unknown parameters are refused so that a typo (``?agent=``) is not silently
    ignored.
    """
    found: list[dict[str, str]] = []
    out: dict[str, Any] = {}
    for name in raw:
        if name not in params:
            found.append({"field": name, "problem": "unknown query parameter"})
    for name, schema in params.items():
        if name not in raw:
            continue
        text = raw[name]
        value: Any = text
        kind = schema.get("type")
        if kind == "integer":
            try:
                value = int(text)
            except ValueError:
                found.append({"field": name, "problem": "must be of type integer"})
                continue
        elif kind == "boolean":
            if text not in ("true", "false"):
                found.append({"field": name, "problem": "must be true or false"})
                continue
            value = text == "true"
        found.extend(problems(value, schema, name))
        out[name] = value
    if found:
        raise ValidationFailed("the query parameters are invalid", details={"problems": found})
    return out
