"""frozen_heap: the collector's settings are back as they were once the last batch is out."""

from __future__ import annotations

import gc

from cdb.heap import YOUNG_THRESHOLD, frozen_heap


def test_nested_scopes_freeze_once_and_restore_everything_on_the_last_exit() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    with frozen_heap():
        frozen = gc.get_freeze_count()
        assert frozen > frozen_before
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
        with frozen_heap():
            assert gc.get_freeze_count() == frozen
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD  # the outer scope still runs
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before


def test_an_exception_inside_still_restores_the_collector() -> None:
    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()
    try:
        with frozen_heap():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before
