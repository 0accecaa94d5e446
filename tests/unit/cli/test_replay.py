"""`cdb replay`'s options share the library's defaults."""

from __future__ import annotations

import inspect

from cdb.cli import projections as projections_cli
from cdb.cli import replay
from cdb.projections import BUILD_BATCH


def test_replay_projections_builds_in_the_batches_of_a_rebuild() -> None:
    for command in (replay.projections, projections_cli.rebuild):
        assert inspect.signature(command).parameters["batch_size"].default == BUILD_BATCH
