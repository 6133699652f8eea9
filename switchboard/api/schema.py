"""JSON schemas of the services' dataclasses, for the OpenAPI document."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any


def ref(cls: type) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def schema_for_type(hint: Any, found: dict[str, type]) -> dict[str, Any]:
    """A JSON schema of a type hint; dataclasses become ``$ref`` (and are added to ``found``)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        schema = schema_for_type(inner[0], found) if len(inner) == 1 else {
            "oneOf": [schema_for_type(a, found) for a in inner]}
        if type(None) in args:
            if "$ref" in schema:
                return {"allOf": [schema], "nullable": True}
            return {**schema, "nullable": True}
        return schema
    if hint is Any:
        return {}
    if hint is str:
        return {"type": "string"}
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is datetime:
        return {"type": "string", "format": "date-time"}
    if hint is date:
        return {"type": "string", "format": "date"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return {"type": "string", "enum": [m.value for m in hint]}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if hint.__name__ not in found:
            found[hint.__name__] = hint
        return ref(hint)
    if origin in (list, tuple, Sequence, typing.Sequence) or (origin is not None and _is(origin, Sequence)):
        item = args[0] if args else Any
        return {"type": "array", "items": schema_for_type(item, found)}
    if origin in (dict, Mapping) or (origin is not None and _is(origin, Mapping)):
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": schema_for_type(value, found)}
    if hint is bytes:
        return {"type": "string"}
    return {}


def _is(origin: Any, abc: type) -> bool:
    try:
        return issubclass(origin, abc)
    except TypeError:
        return False


def dataclass_schema(cls: type, found: dict[str, type]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        props[f.name] = schema_for_type(hints[f.name], found)
        required.append(f.name)
    return {"type": "object", "properties": props, "required": required}


def components(roots: Sequence[type]) -> dict[str, Any]:
    """Schemas of ``roots`` and every dataclass they reach."""
    found: dict[str, type] = {}
    for cls in roots:
        schema_for_type(cls, found)
    out: dict[str, Any] = {}
    while len(out) < len(found):
        for name, cls in list(found.items()):
            if name not in out:
                out[name] = dataclass_schema(cls, found)
    return dict(sorted(out.items()))
