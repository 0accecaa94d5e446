"""Lua scripts are found in streams/lua and named by the SHA1 Redis will give them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cdb.errors import StoreError
from cdb.eventstore.lua import LuaScript, scripts_dir


def test_the_append_script_ships_in_streams_lua_with_its_sha1() -> None:
    script = LuaScript("append")
    path = scripts_dir() / "append.lua"
    assert path.parent.name == "lua"
    assert path.parent.parent.name == "streams"
    assert script.source == path.read_text(encoding="utf-8")
    assert script.sha == hashlib.sha1(script.source.encode(), usedforsecurity=False).hexdigest()


def test_a_missing_script_is_a_store_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"nope\.lua"):
        LuaScript("nope", tmp_path)
