"""A small JSON Schema checker for the keywords our schemas use (no jsonschema dependency)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parent.parent / "batch_rotate" / "schemas"
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return loaded


def problems(value: Any, spec: dict[str, Any], where: str = "$") -> list[str]:
    """Every way `value` breaks `spec` (type, enum, required, properties, items)."""
    found: list[str] = []
    kinds = spec.get("type")
    if kinds is not None:
        names = [kinds] if isinstance(kinds, str) else kinds
        ok = any(
            isinstance(value, _TYPES[name])
            and not (name in ("integer", "number") and isinstance(value, bool))
            for name in names
        )
        if not ok:
            return [f"{where}: {value!r} is not {names}"]
    if "enum" in spec and value not in spec["enum"]:
        found.append(f"{where}: {value!r} not in {spec['enum']}")
    if isinstance(value, dict):
        for key in spec.get("required", []):
            if key not in value:
                found.append(f"{where}: missing {key!r}")
        props = spec.get("properties", {})
        extra = spec.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                found += problems(item, props[key], f"{where}.{key}")
            elif extra is False:
                found.append(f"{where}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                found += problems(item, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in spec:
        for index, item in enumerate(value):
            found += problems(item, spec["items"], f"{where}[{index}]")
    return found
