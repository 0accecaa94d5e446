"""Replay: rebuild state from stream offsets or times, and prove the logic deterministic.

* :mod:`.positions` -- OFFSET / TIME parsing and range checks (pure);
* :mod:`.aggregate` -- one aggregate's state at a point of its history;
* :mod:`.runners` -- each service's pure logic as a replay drives it (pure);
* :mod:`.topic` -- re-run a service over a recorded range into a sandbox and diff;
* :mod:`.diff` -- comparing replayed and recorded events (pure).

No wall clock is read anywhere here (tests/unit/services/test_replay_purity.py).
"""
