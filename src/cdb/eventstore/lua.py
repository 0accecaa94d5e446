"""The Lua scripts the store runs, read from ``streams/lua/`` and called by their SHA1.

A script is sent once (``SCRIPT LOAD``) and then called with ``EVALSHA``; after a server
restart or ``SCRIPT FLUSH`` the server answers NOSCRIPT and the caller loads it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis

from cdb.errors import StoreError


def scripts_dir() -> Path:
    # src/cdb/eventstore/lua.py -> repository root / streams / lua
    return Path(__file__).resolve().parents[3] / "streams" / "lua"


class LuaScript:
    """One script: its source, its SHA1, and how to (re)load it."""

    def __init__(self, name: str, directory: Path | None = None) -> None:
        path = (directory or scripts_dir()) / f"{name}.lua"
        try:
            self.source = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise StoreError(f"Lua script not found: {path}") from None
        self.name = name
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    def load(self, client: redis.Redis) -> None:
        loaded = client.script_load(self.source)
        if _text(loaded) != self.sha:
            raise StoreError(f"script {self.name}: server SHA1 {loaded!r} != local {self.sha}")

    def call(self, client: redis.Redis, keys: list[str], args: Sequence[str | bytes]) -> Any:
        """EVALSHA, loading the script first if the server does not have it."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.load(client)
            return client.evalsha(self.sha, len(keys), *keys, *args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
