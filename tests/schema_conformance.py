"""Check synthesized Terraform JSON against the real providers' schemas (tests/data/provider_schemas.json).

The snapshot comes from ``tofu providers schema -json`` of the provider binaries the toolchain builds
(regenerate with ``make provider-schemas``); this check needs no toolchain.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("data") / "provider_schemas.json"
META = {"//", "depends_on", "lifecycle", "provider", "count", "for_each", "provisioner", "connection"}
_EXPRESSION = re.compile(r"^\$\{.*\}$", re.S)


@lru_cache(maxsize=1)
def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    data = json.loads(SNAPSHOT.read_text())["provider_schemas"]
    resources: dict[str, Any] = {}
    providers: dict[str, Any] = {}
    for address, schema in data.items():
        providers[address.rsplit("/", 1)[-1]] = schema["provider"]["block"]
        for kind, resource in schema.get("resource_schemas", {}).items():
            resources[kind] = resource["block"]
    return resources, providers


def _is_expression(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _type_errors(where: str, cty: Any, value: Any) -> list[str]:
    """Does a JSON value fit a cty type? ``${...}`` expressions fit anything (Terraform checks them)."""
    if _is_expression(value) and (not isinstance(cty, str) or cty != "string" or _EXPRESSION.match(value)):
        return []
    if cty == "string":
        ok = isinstance(value, str)
    elif cty == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif cty == "bool":
        ok = isinstance(value, bool)
    elif cty == "dynamic":
        ok = True
    elif isinstance(cty, list) and cty[0] in ("list", "set"):
        if not isinstance(value, list):
            return [f"{where}: expected a {cty[0]}, got {type(value).__name__}"]
        return [e for i, item in enumerate(value) for e in _type_errors(f"{where}[{i}]", cty[1], item)]
    elif isinstance(cty, list) and cty[0] == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {type(value).__name__}"]
        return [e for k, item in value.items() for e in _type_errors(f"{where}[{k!r}]", cty[1], item)]
    elif isinstance(cty, list) and cty[0] == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        return [e for k, item in value.items() for e in _type_errors(f"{where}.{k}", cty[1].get(k, "dynamic"), item)]
    else:
        ok = True
    return [] if ok else [f"{where}: expected {cty}, got {type(value).__name__} {value!r}"]


def block_errors(where: str, block: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """Every way ``body`` breaks ``block``: unknown, missing, computed-only, wrong shape or type."""
    errors: list[str] = []
    attributes = block.get("attributes", {})
    nested = block.get("block_types", {})
    for name, value in body.items():
        if name in META:
            continue
        if name in attributes:
            spec = attributes[name]
            if spec.get("computed") and not spec.get("optional") and not spec.get("required"):
                errors.append(f"{where}.{name}: computed-only attribute set by us")
            if name in nested:
                continue
            errors += _type_errors(f"{where}.{name}", spec["type"], value)
        elif name in nested:
            spec = nested[name]
            items = value if isinstance(value, list) else [value]
            if _is_expression(value) or not all(isinstance(i, dict) for i in items):
                errors.append(f"{where}.{name}: is a block, given as an attribute value {value!r}")
                continue
            if spec.get("max_items") and len(items) > spec["max_items"]:
                errors.append(f"{where}.{name}: at most {spec['max_items']} block(s), got {len(items)}")
            for i, item in enumerate(items):
                errors += block_errors(f"{where}.{name}[{i}]", spec["block"], item)
        else:
            errors.append(f"{where}.{name}: the provider schema has no such attribute or block")
    for name, spec in attributes.items():
        if spec.get("required") and name not in body:
            errors.append(f"{where}.{name}: required attribute missing")
    for name, spec in nested.items():
        if spec.get("min_items", 0) > 0 and name not in body:
            errors.append(f"{where}.{name}: required block missing")
    return errors


def conformance_errors(doc: dict[str, Any]) -> list[str]:
    """All schema violations in one synthesized ``cdk.tf.json``."""
    resources, providers = _schemas()
    errors: list[str] = []
    for kind, instances in doc.get("resource", {}).items():
        if kind not in resources:
            errors.append(f"{kind}: not in the provider schema snapshot (add it to tools/dump_provider_schemas.py)")
            continue
        for name, body in instances.items():
            errors += block_errors(f"{kind}.{name}", resources[kind], body)
    for kind, configs in doc.get("provider", {}).items():
        for i, body in enumerate(configs):
            errors += block_errors(f"provider.{kind}[{i}]", providers[kind], body)
    return errors
