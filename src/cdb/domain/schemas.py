"""JSON Schema of every contract version, and the check for breaking drift against a committed one.

``cdb schema export`` writes :func:`current_schemas` to ``streams/schemas/`` (one file per
contract version, ``OrderV1.json``, plus ``index.json`` mapping ``EVENT_TYPE@version`` to its
file). A change is **breaking** when the current model can no longer read what the committed
schema allowed, i.e. events already stored:

* a field removed, or retyped (a type/format the committed schema accepted is no longer
  accepted, including ``null``);
* a new required field, or an optional field made required;
* a rule tightened: enum values removed, a pattern or const changed, a bound raised
  (minimum, exclusiveMinimum, minLength ...) or lowered (maximum, maxLength ...);
* a contract or an ``EVENT_TYPE@version`` registration removed or pointed at another contract.

New optional fields, new enum values, relaxed bounds and text changes (title, description)
are compatible. Pure functions: reading and writing files is the caller's job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cdb.domain.envelope import Contract
from cdb.domain.registry import contract_versions, event_types_of, registered

INDEX_FILE = "index.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_LOWER = (("minimum", False), ("exclusiveMinimum", True))
_UPPER = (("maximum", False), ("exclusiveMaximum", True))
_MIN_KEYWORDS = ("minLength", "minItems", "minProperties")
_MAX_KEYWORDS = ("maxLength", "maxItems", "maxProperties")


@dataclass(frozen=True)
class SchemaChange:
    """One breaking difference: where (``OrderV1.json:quantity``), what it was, is, and why."""

    path: str
    committed: Any
    current: Any
    rule: str

    def as_problem(self) -> tuple[str, Any, str]:
        """The ``(field, value, rule)`` triple of :class:`~cdb.errors.ContractError`."""
        return (self.path, f"{_brief(self.committed)} -> {_brief(self.current)}", self.rule)


@dataclass(frozen=True)
class Drift:
    """Result of comparing committed schema files with the current models."""

    breaking: list[SchemaChange]
    changed: list[str]
    """Files that differ compatibly, or are new: ``cdb schema export`` should be run."""

    @property
    def ok(self) -> bool:
        return not self.breaking


def schema_filename(contract: type[Contract]) -> str:
    return f"{contract.__name__}.json"


def contract_schema(contract: type[Contract], event_types: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON Schema of one contract version (what the model accepts as JSON input)."""
    schema = contract.model_json_schema(mode="validation")
    schema["$schema"] = SCHEMA_DIALECT
    schema["x-cdb-event-types"] = sorted(event_types)
    return schema


def current_schemas() -> dict[str, dict[str, Any]]:
    """Every file ``cdb schema export`` writes, by file name, from the registered contracts."""
    files = {
        schema_filename(contract): contract_schema(contract, event_types_of(contract))
        for contract in contract_versions().values()
    }
    files[INDEX_FILE] = schema_index()
    return files


def schema_index() -> dict[str, Any]:
    """``EVENT_TYPE@version`` -> schema file name, for every registration."""
    return {
        "registrations": {
            f"{event_type}@{version}": schema_filename(contract)
            for (event_type, version), contract in sorted(registered().items())
        }
    }


def render(document: Mapping[str, Any]) -> str:
    """Deterministic file content: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def drift(
    committed: Mapping[str, Mapping[str, Any]], current: Mapping[str, Mapping[str, Any]]
) -> Drift:
    """Compare committed files (name -> parsed JSON) with :func:`current_schemas` output."""
    breaking: list[SchemaChange] = []
    changed: list[str] = []
    for name in sorted(set(committed) | set(current)):
        old, new = committed.get(name), current.get(name)
        if old is None:
            changed.append(name)
            continue
        if new is None:
            breaking.append(SchemaChange(name, "committed", "absent", "contract version removed"))
            continue
        if name == INDEX_FILE:
            breaking.extend(index_breaking_changes(old, new))
        else:
            breaking.extend(breaking_changes(old, new, prefix=name))
        if render(old) != render(new):
            changed.append(name)
    return Drift(breaking, changed)


def index_breaking_changes(
    committed: Mapping[str, Any], current: Mapping[str, Any]
) -> list[SchemaChange]:
    old = committed.get("registrations", {})
    new = current.get("registrations", {})
    changes = []
    for key, file in sorted(old.items()):
        if key not in new:
            changes.append(
                SchemaChange(f"{INDEX_FILE}:{key}", file, "absent", "registration removed")
            )
        elif new[key] != file:
            changes.append(
                SchemaChange(
                    f"{INDEX_FILE}:{key}", file, new[key], "registration points at another contract"
                )
            )
    return changes


def breaking_changes(
    committed: Mapping[str, Any], current: Mapping[str, Any], prefix: str = ""
) -> list[SchemaChange]:
    """Every way ``current`` refuses what ``committed`` accepted (empty when compatible)."""
    root = f"{prefix}:" if prefix else ""
    return _Comparison(committed, current, root).compare(committed, current, "")


class _Comparison:
    def __init__(self, old_root: Mapping[str, Any], new_root: Mapping[str, Any], prefix: str):
        self.old_root = old_root
        self.new_root = new_root
        self.prefix = prefix

    def compare(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[SchemaChange]:
        changes: list[SchemaChange] = []
        new_variants = _variants(self.new_root, new)
        for old_variant in _variants(self.old_root, old):
            kind = _kind(old_variant)
            if any(_kind(v) == "any" for v in new_variants):
                continue
            candidates = [v for v in new_variants if _kind(v) == kind]
            if not candidates:
                changes.append(
                    self.change(
                        path,
                        kind,
                        sorted(_kind(v) for v in new_variants),
                        f"retyped: {kind} is no longer accepted",
                    )
                )
                continue
            # The closest matching variant decides: breaking only if none accepts the old one.
            options = [self.compare_variant(old_variant, v, path) for v in candidates]
            changes.extend(_fewest(options))
        return changes

    def compare_variant(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[SchemaChange]:
        changes: list[SchemaChange] = []
        for keyword in ("format", "pattern", "const"):
            if keyword in new and old.get(keyword) != new[keyword]:
                changes.append(
                    self.change(path, old.get(keyword), new[keyword], f"{keyword} changed")
                )
        if "enum" in new:
            if "enum" not in old:
                changes.append(self.change(path, "any value", new["enum"], "enum introduced"))
            elif removed := [v for v in old["enum"] if v not in new["enum"]]:
                changes.append(self.change(path, removed, new["enum"], "enum values removed"))
        changes.extend(self.bounds(old, new, path))
        if _kind(old) == "object":
            changes.extend(self.object(old, new, path))
        if _kind(old) == "array" and isinstance(old.get("items"), Mapping):
            changes.extend(self.compare(old["items"], new.get("items", {}), f"{path}[]"))
        return changes

    def bounds(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[SchemaChange]:
        changes: list[SchemaChange] = []
        old_low, new_low = _bound(old, _LOWER, higher=True), _bound(new, _LOWER, higher=True)
        if new_low is not None and (old_low is None or new_low > old_low):
            changes.append(self.change(path, old_low, new_low, "lower bound raised"))
        old_up, new_up = _bound(old, _UPPER, higher=False), _bound(new, _UPPER, higher=False)
        if new_up is not None and (old_up is None or new_up < old_up):
            changes.append(self.change(path, old_up, new_up, "upper bound lowered"))
        for keyword in _MIN_KEYWORDS:
            if keyword in new and new[keyword] > old.get(keyword, 0):
                changes.append(
                    self.change(path, old.get(keyword), new[keyword], f"{keyword} raised")
                )
        for keyword in _MAX_KEYWORDS:
            if keyword in new and (keyword not in old or new[keyword] < old[keyword]):
                changes.append(
                    self.change(path, old.get(keyword), new[keyword], f"{keyword} lowered")
                )
        return changes

    def object(
        self, old: Mapping[str, Any], new: Mapping[str, Any], path: str
    ) -> list[SchemaChange]:
        changes: list[SchemaChange] = []
        old_props: Mapping[str, Any] = old.get("properties", {})
        new_props: Mapping[str, Any] = new.get("properties", {})
        for name, old_field in old_props.items():
            field_path = f"{path}.{name}" if path else name
            if name not in new_props:
                changes.append(self.change(field_path, "field", "absent", "field removed"))
            else:
                changes.extend(self.compare(old_field, new_props[name], field_path))
        old_required = set(old.get("required", []))
        for name in sorted(set(new.get("required", [])) - old_required):
            field_path = f"{path}.{name}" if path else name
            if name in old_props:
                changes.append(
                    self.change(field_path, "optional", "required", "optional field made required")
                )
            else:
                changes.append(self.change(field_path, "absent", "required", "new required field"))
        old_extra, new_extra = old.get("additionalProperties"), new.get("additionalProperties")
        if new_extra is False and old_extra is not False:
            changes.append(self.change(path, old_extra, False, "additional properties refused"))
        if isinstance(old_extra, Mapping) and isinstance(new_extra, Mapping):
            changes.extend(self.compare(old_extra, new_extra, f"{path}.*"))
        if isinstance(new.get("propertyNames"), Mapping):
            changes.extend(
                self.compare(old.get("propertyNames", {}), new["propertyNames"], f"{path}.<key>")
            )
        return changes

    def change(self, path: str, committed: Any, current: Any, rule: str) -> SchemaChange:
        return SchemaChange(f"{self.prefix}{path or '<root>'}", committed, current, rule)


def _resolve(root: Mapping[str, Any], schema: Mapping[str, Any]) -> Mapping[str, Any]:
    seen: set[str] = set()
    while "$ref" in schema:
        ref = schema["$ref"]
        if ref in seen or not isinstance(ref, str) or not ref.startswith("#/"):
            break
        seen.add(ref)
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        outer = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **outer}
    return schema


def _variants(root: Mapping[str, Any], schema: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alternatives a schema accepts, flattening anyOf/oneOf and outer keywords."""
    schema = _resolve(root, schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            outer = {k: v for k, v in schema.items() if k != key}
            return [
                {**outer, **variant}
                for option in schema[key]
                for variant in _variants(root, option)
            ]
    return [schema]


def _kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "const" in schema:
        return type(schema["const"]).__name__
    return "any"


def _bound(
    schema: Mapping[str, Any], keywords: tuple[tuple[str, bool], ...], *, higher: bool
) -> tuple[float, int] | None:
    # (value, strictness) compares so that an exclusive bound is tighter than an inclusive one
    # at the same value: for lower bounds exclusive ranks above, for upper bounds below.
    found = [
        (float(schema[name]), (1 if exclusive else 0) * (1 if higher else -1))
        for name, exclusive in keywords
        if isinstance(schema.get(name), int | float)
    ]
    if not found:
        return None
    return max(found) if higher else min(found)


def _fewest(options: list[list[SchemaChange]]) -> list[SchemaChange]:
    best = options[0]
    for option in options[1:]:
        if len(option) < len(best):
            best = option
    return best


def _brief(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
