"""``evolve(state, field=value)``: :func:`dataclasses.replace` for the services' state records.

The pipeline folds every market tick into four services' immutable state, so a copy with a
field or two changed is made tens of thousands of times a second. ``dataclasses.replace``
re-runs ``__init__`` with keyword arguments and checks each field's ``init`` flag on every call;
for frozen, slotted records without ``__post_init__`` a plain field-by-field copy gives the same
record in about half the time. Records that do not fit (a ``__post_init__``, a field outside
``__init__``) are refused when first seen, so a later change to a record cannot silently skip
its checks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_FIELDS: dict[type, tuple[tuple[str, ...], frozenset[str]]] = {}
_set = object.__setattr__
_new = object.__new__


def _fields_of(cls: type) -> tuple[tuple[str, ...], frozenset[str]]:
    if not dataclasses.is_dataclass(cls) or not hasattr(cls, "__slots__"):
        raise TypeError(f"evolve() needs a slotted dataclass, got {cls.__name__}")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"evolve() would skip {cls.__name__}.__post_init__: use replace()")
    fields = dataclasses.fields(cls)
    if any(not f.init for f in fields):
        raise TypeError(f"{cls.__name__} has fields outside __init__: use replace()")
    names = tuple(f.name for f in fields)
    _FIELDS[cls] = found = (names, frozenset(names))
    return found


def evolve(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` with ``changes`` applied (unknown names raise TypeError)."""
    cls = type(obj)
    names, known = _FIELDS.get(cls) or _fields_of(cls)
    if not changes.keys() <= known:
        unknown = ", ".join(sorted(changes.keys() - known))
        raise TypeError(f"{cls.__name__} has no field(s) {unknown}")
    new = _new(cls)
    for name in names:
        _set(new, name, changes[name] if name in changes else getattr(obj, name))
    return new
