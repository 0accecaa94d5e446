"""`cdb replay`'s options that mirror a library default without importing it."""

from __future__ import annotations

import inspect

from cdb.cli import projections as projections_cli
from cdb.cli import replay
from cdb.projections.rebuild import BUILD_BATCH


def test_replay_projections_builds_in_the_batches_of_a_rebuild() -> None:
    # replay.py names the number itself (importing the rebuild module would load psycopg for
    # every `cdb replay` command); `cdb projections rebuild` imports it.
    for command in (replay.projections, projections_cli.rebuild):
        assert inspect.signature(command).parameters["batch_size"].default == BUILD_BATCH
